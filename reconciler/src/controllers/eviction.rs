//! Node lifecycle, the eviction half (the registry in [`crate::nodes`] marks a silent node's
//! Ready condition `Unknown`): once a node has not been Ready for `--pod-eviction-timeout`,
//! its pods are deleted from the store, so their controllers make replacements that the
//! scheduler places elsewhere. If the node comes back, its desired set no longer holds them
//! and its agent stops them.
//!
//! A StatefulSet's pod is only marked deleted (as Kubernetes' node lifecycle does): its name
//! must never run twice, and the node may only be cut off, its pod still running. It goes
//! when its node comes back and stops it, or when the node is deleted (`keel delete node`:
//! the operator's word that the machine is gone).

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use keel_schema::types::core::EventType;
use keel_schema::{Kind, Object};
use keel_store::ObjectKey;

use super::runtime::{Action, Controller, Ctx, Raced, Result};
use crate::cache::{Cache, Change};

#[derive(Default)]
pub struct EvictionController {
    /// Evictions are paused ([`disrupted`]): said once when they pause and once when they
    /// resume, not for every node every recheck.
    paused: std::sync::atomic::AtomicBool,
}

/// Kubernetes' `--unhealthy-zone-threshold` (0.55): when at least this percentage of the
/// nodes, and more than [`UNHEALTHY_FEW`] of them, are not Ready at once, the likelier fault
/// is the control plane's own (its network, or a restart its agents have not all come back
/// from), and evicting would delete healthy pods by the thousand. Evictions of nodes that
/// are not Ready pause until fewer are down, as Kubernetes' node lifecycle controller does
/// in a disrupted zone; a node deleted by the operator still has its pods deleted.
const UNHEALTHY_PERCENT: usize = 55;
/// Up to this many nodes down never pause evictions: a small cluster that loses two of its
/// three nodes still moves their pods (as Kubernetes counts).
const UNHEALTHY_FEW: usize = 2;

/// How many nodes are not Ready and how many report at all (a node with no Ready condition
/// yet is in neither), when so many are down that evictions pause: see [`UNHEALTHY_PERCENT`].
fn disrupted(cache: &Cache) -> Option<(usize, usize)> {
    let (mut down, mut reporting) = (0, 0);
    for s in cache.list(Kind::Node, None) {
        if let Object::Node(n) = &s.object
            && let Some(ready) = n.ready_condition()
        {
            reporting += 1;
            if ready.status != "True" {
                down += 1;
            }
        }
    }
    let all_down = down > 0 && down == reporting;
    let most_down = down > UNHEALTHY_FEW && down * 100 >= UNHEALTHY_PERCENT * reporting;
    (all_down || most_down).then_some((down, reporting))
}

/// How often a paused eviction looks again.
const DISRUPTED_RECHECK: Duration = Duration::from_secs(5);

/// The key of the Node named `node`.
fn node_key(node: &str) -> ObjectKey {
    ObjectKey::new(Kind::Node, "", node)
}

/// True when `node` exists and is not known to be down: its Ready condition is `True`, or
/// it has none yet. A pass leaves such a node's pods alone.
fn ready(node: &str, cache: &Cache) -> bool {
    cache.get(&node_key(node)).is_some_and(|s| match &s.object {
        Object::Node(n) => n.ready_condition().is_none_or(|c| c.status == "True"),
        _ => false,
    })
}

impl Controller for EvictionController {
    type Key = String;
    const NAME: &'static str = "node-lifecycle";
    const COMPONENT: &'static str = "node-controller";

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        let mut nodes: Vec<String> = cache
            .list(Kind::Node, None)
            .iter()
            .map(|s| s.object.name().to_string())
            .collect();
        // And the nodes that are gone but still have pods: deleted while no server ran, or
        // a deletion a lagging watch missed. Their pods change no more, so nothing else
        // would queue them.
        nodes.extend(
            cache
                .nodes_with_pods()
                .into_iter()
                .filter(|n| cache.get(&node_key(n)).is_none()),
        );
        nodes
    }

    fn keys_for(&self, change: &Change, cache: &Cache, out: &mut Vec<String>) {
        match change.kind() {
            Some(Kind::Node) => out.extend(change.objects().map(|o| o.name().to_string()).take(1)),
            // A pod on a node that is Ready needs nothing: only the nodes a pass would act
            // on are queued (at 100,000 pods, every status write queued its node's pass).
            Some(Kind::Pod) => {
                for o in change.objects() {
                    if let Object::Pod(p) = o
                        && let Some(node) = p.spec.node_name.as_deref().filter(|n| !n.is_empty())
                        && !ready(node, cache)
                    {
                        out.push(node.to_string());
                    }
                }
            }
            Some(_) => {}
            None => out.extend(self.all_keys(cache)),
        }
    }

    fn subject(&self, node: &String) -> Option<ObjectKey> {
        Some(node_key(node))
    }

    async fn reconcile(&self, node: &String, ctx: &Ctx) -> Result<Action> {
        let Some(stored) = ctx.cache().get(&node_key(node)) else {
            // The node was deleted (`keel delete node`): its pods have nowhere to run.
            self.evict(node, ctx, "was deleted", None).await?;
            return Ok(Action::Done);
        };
        let Object::Node(n) = &stored.object else {
            return Ok(Action::Done);
        };
        // As `ready` decides which pod changes queue a pass.
        let Some(ready) = n.ready_condition().filter(|c| c.status != "True") else {
            return Ok(Action::Done);
        };
        let since = ready.last_transition_time.unwrap_or_else(Utc::now);
        let down_for = (Utc::now() - since).to_std().unwrap_or_default();
        let timeout = ctx.config().pod_eviction_timeout;
        if down_for < timeout {
            return Ok(Action::RequeueAfter(
                timeout - down_for + Duration::from_millis(100),
            ));
        }
        let disrupted = disrupted(ctx.cache());
        if self.paused.swap(disrupted.is_some(), Ordering::Relaxed) != disrupted.is_some() {
            match disrupted {
                Some((down, reporting)) => tracing::warn!(
                    down,
                    nodes = reporting,
                    "evictions paused: so many nodes are not ready at once that the fault is likelier the control plane's own (its network, or a restart not all agents have come back from)"
                ),
                None => tracing::warn!("evictions resume: most nodes are ready again"),
            }
        }
        if disrupted.is_some() {
            return Ok(Action::RequeueAfter(DISRUPTED_RECHECK));
        }
        self.evict(node, ctx, "is not ready", Some(down_for))
            .await?;
        Ok(Action::Done)
    }
}

impl EvictionController {
    /// Deletes the pods bound to `node`, which `why` (is not ready for `down_for`, or was
    /// deleted: `None`).
    async fn evict(
        &self,
        node: &str,
        ctx: &Ctx,
        why: &str,
        down_for: Option<Duration>,
    ) -> Result<()> {
        // All at once, so the store commits them in groups: a node with hundreds of pods is
        // emptied in one commit's time, not hundreds.
        let writes = ctx
            .cache()
            .pods_on(node)
            .into_iter()
            .map(|pod| self.evict_pod(pod, node, ctx, why, down_for));
        for written in futures_util::future::join_all(writes).await {
            written?;
        }
        Ok(())
    }

    /// Deletes one pod of `node` (or marks it deleted: a StatefulSet's pod, while the node
    /// may still run it).
    async fn evict_pod(
        &self,
        pod: std::sync::Arc<keel_store::Stored>,
        node: &str,
        ctx: &Ctx,
        why: &str,
        down_for: Option<Duration>,
    ) -> Result<()> {
        let deleted = down_for.is_none();
        let key = ObjectKey::of(&pod.object);
        let Object::Pod(p) = &pod.object else {
            return Ok(());
        };
        let stateful = super::pods::controller_of(&p.metadata)
            .is_some_and(|r| r.kind == Kind::StatefulSet.as_str());
        if stateful && !deleted {
            if p.metadata.deletion_timestamp.is_some() {
                return Ok(());
            }
            tracing::warn!(node, pod = %key, not_ready_for = ?down_for, "marking a StatefulSet pod deleted: its node {why}");
            ctx.events().object(
                &pod.object,
                EventType::Warning,
                "NodeNotReady",
                format!(
                    "Node {node} {why}; the pod is marked deleted and is made again once its \
                     node has stopped it, or once the node is deleted (keel delete node): a \
                     StatefulSet's pod never runs twice"
                ),
                Self::COMPONENT,
            );
            let mut marked = p.clone();
            marked.metadata.deletion_timestamp = Some(Utc::now());
            ctx.update(Object::Pod(marked), pod.resource_version)
                .await
                .or_raced()?;
            return Ok(());
        }
        tracing::warn!(node, pod = %key, not_ready_for = ?down_for, "evicting a pod: its node {why}");
        ctx.events().object(
            &pod.object,
            EventType::Warning,
            "NodeNotReady",
            format!("Node {node} {why}; the pod is deleted so that it runs elsewhere"),
            Self::COMPONENT,
        );
        ctx.delete(&key, pod.resource_version).await.or_raced()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use keel_store::Stored;
    use serde_json::{Value, json};

    use super::*;

    fn node(name: &str, ready: Option<&str>) -> Object {
        let conditions: Value = ready.map_or(json!([]), |status| {
            json!([{"type": "Ready", "status": status, "lastTransitionTime": "2026-01-01T00:00:00Z"}])
        });
        Object::from_json(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name}, "status": {"conditions": conditions}}))
        .unwrap()
    }

    fn pod_on(node: &str) -> Option<Arc<Stored>> {
        let object = Object::from_json(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("p-{node}"), "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running"}}))
        .unwrap();
        Some(Arc::new(Stored {
            object,
            resource_version: 2,
        }))
    }

    #[test]
    fn a_pod_change_queues_its_node_only_when_a_pass_would_act_on_it() {
        let cache = Cache::holding([
            node("up", Some("True")),
            node("down", Some("Unknown")),
            node("new", None),
        ]);
        let queued = |node: &str| {
            let mut out = Vec::new();
            let change = Change::Object {
                old: None,
                new: pod_on(node),
            };
            EvictionController::default().keys_for(&change, &cache, &mut out);
            out
        };
        assert!(queued("up").is_empty(), "a Ready node's pods need nothing");
        assert!(
            queued("new").is_empty(),
            "nor those of a node not yet reporting"
        );
        assert_eq!(
            queued("down"),
            ["down"],
            "a node that is not Ready is looked at"
        );
        assert_eq!(queued("deleted"), ["deleted"], "and so is a deleted one");
    }

    #[test]
    fn evictions_pause_while_most_nodes_are_down_at_once() {
        let nodes = |up: usize, down: usize, new: usize| {
            let mut objects = Vec::new();
            objects.extend((0..up).map(|i| node(&format!("up-{i}"), Some("True"))));
            objects.extend((0..down).map(|i| node(&format!("down-{i}"), Some("Unknown"))));
            objects.extend((0..new).map(|i| node(&format!("new-{i}"), None)));
            disrupted(&Cache::holding(objects))
        };
        assert_eq!(nodes(5, 0, 0), None, "all up");
        assert_eq!(nodes(90, 10, 0), None, "a tenth down: their pods move");
        assert_eq!(nodes(1, 2, 0), None, "two of three down: still moved");
        assert_eq!(nodes(5, 5, 0), None, "half down: under 55%");
        assert_eq!(nodes(45, 55, 0), Some((55, 100)), "55% down: paused");
        assert_eq!(
            nodes(0, 1, 0),
            Some((1, 1)),
            "every node down: nowhere to go"
        );
        assert_eq!(
            nodes(2, 3, 10),
            Some((3, 5)),
            "nodes not yet reporting are not counted"
        );
    }

    #[test]
    fn a_resync_looks_at_every_node_and_at_a_gone_node_that_still_has_pods() {
        let mut objects = vec![node("up", Some("True")), node("down", Some("Unknown"))];
        objects.extend(["up", "gone"].map(|n| pod_on(n).unwrap().object.clone()));
        let cache = Cache::holding(objects);
        let mut keys = EvictionController::default().all_keys(&cache);
        keys.sort();
        assert_eq!(keys, ["down", "gone", "up"]);
    }
}
