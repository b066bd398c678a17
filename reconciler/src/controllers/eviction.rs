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

use std::time::Duration;

use chrono::Utc;
use keel_schema::types::core::EventType;
use keel_schema::{Kind, Object};
use keel_store::ObjectKey;

use super::runtime::{Action, Controller, Ctx, Raced, Result};
use crate::cache::{Cache, Change};

pub struct EvictionController;

impl Controller for EvictionController {
    type Key = String;
    const NAME: &'static str = "node-lifecycle";
    const COMPONENT: &'static str = "node-controller";

    fn all_keys(&self, cache: &Cache) -> Vec<String> {
        cache
            .list(Kind::Node, None)
            .iter()
            .map(|s| s.object.name().to_string())
            .collect()
    }

    fn keys_for(&self, change: &Change, cache: &Cache, out: &mut Vec<String>) {
        match change.kind() {
            Some(Kind::Node) => out.extend(change.objects().map(|o| o.name().to_string()).take(1)),
            Some(Kind::Pod) => {
                for o in change.objects() {
                    if let Object::Pod(p) = o
                        && let Some(node) = p.spec.node_name.as_deref().filter(|n| !n.is_empty())
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
        Some(ObjectKey::new(Kind::Node, "", node))
    }

    async fn reconcile(&self, node: &String, ctx: &Ctx) -> Result<Action> {
        let Some(stored) = ctx.cache().get(&ObjectKey::new(Kind::Node, "", node)) else {
            // The node was deleted (`keel delete node`): its pods have nowhere to run.
            self.evict(node, ctx, "was deleted", None).await?;
            return Ok(Action::Done);
        };
        let Object::Node(n) = &stored.object else {
            return Ok(Action::Done);
        };
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
