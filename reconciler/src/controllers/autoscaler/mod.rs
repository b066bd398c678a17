//! The HorizontalPodAutoscaler controller: every 15 s, each autoscaler's target pods are
//! measured (the agents' latest CPU and memory samples), each metric proposes a replica
//! count ([`replicas`]), the highest wins, `behavior` paces it ([`behavior`]), and the
//! target's `spec.replicas` is set in the store, as Kubernetes' scale subresource would.
//!
//! Git's `replicas` of an autoscaled workload is its starting count: applying a revision
//! keeps the live count of a workload an autoscaler of that revision scales
//! (`crate::apply::live`), and plans show no drift for it. An autoscaler removed from git
//! hands the count back: the next apply sets git's.
//!
//! Status is what `kubectl get hpa` and `describe` show: current and desired replicas, each
//! metric's current value, and the conditions AbleToScale, ScalingActive and ScalingLimited
//! with Kubernetes' reasons. Rescales are Events (`SuccessfulRescale`).

pub mod behavior;
pub mod measure;
pub mod replicas;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use keel_agent_protocol::MetricsReport;
use keel_schema::selector::Selector;
use keel_schema::types::autoscaling::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerStatus, MetricStatus,
};
use keel_schema::types::core::EventType;
use keel_schema::types::meta::Condition;
use keel_schema::types::pod::Pod;
use keel_schema::{Kind, Object, Resource};
use keel_store::{ObjectKey, Stored};

use self::behavior::{History, Rules};
use super::keys_of_kind;
use super::runtime::{Action, Controller, Ctx, Raced, Result};
use crate::cache::{Cache, Change};
use crate::nodes::dial::AgentDialer;

/// The conditions an autoscaler reports, in Kubernetes' order.
const CONDITIONS: [&str; 3] = ["AbleToScale", "ScalingActive", "ScalingLimited"];

/// How often each autoscaler looks again (`--horizontal-pod-autoscaler-sync-period`).
pub const SYNC_PERIOD: Duration = Duration::from_secs(15);

pub struct AutoscalerController {
    dialer: AgentDialer,
    histories: Mutex<HashMap<ObjectKey, History>>,
    /// Each node's agent: when it was last asked, and its answer.
    asked: Mutex<HashMap<String, Asked>>,
}

type Asked = (Instant, Option<Arc<MetricsReport>>);

/// How long a node's sample is used again before its agent is asked anew.
const SAMPLE_REUSE: Duration = Duration::from_secs(10);

impl AutoscalerController {
    pub fn new(dialer: AgentDialer) -> AutoscalerController {
        AutoscalerController {
            dialer,
            histories: Mutex::default(),
            asked: Mutex::default(),
        }
    }
}

/// What one pass found, for the status and the Event.
struct Pass {
    current: i64,
    desired: i64,
    metrics: Vec<MetricStatus>,
    conditions: Vec<(&'static str, bool, &'static str, String)>,
    rescaled: Option<String>,
}

impl Controller for AutoscalerController {
    type Key = ObjectKey;
    const NAME: &'static str = "horizontalpodautoscaler";
    const COMPONENT: &'static str = "horizontal-pod-autoscaler";

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of_kind(cache, Kind::HorizontalPodAutoscaler)
    }

    fn keys_for(&self, change: &Change, cache: &Cache, out: &mut Vec<ObjectKey>) {
        match change.kind() {
            Some(Kind::HorizontalPodAutoscaler) => {
                out.extend(change.objects().map(ObjectKey::of).take(1));
            }
            None => out.extend(self.all_keys(cache)),
            // Pods and targets are looked at every period; their changes need no pass.
            Some(_) => {}
        }
    }

    fn subject(&self, key: &ObjectKey) -> Option<ObjectKey> {
        Some(key.clone())
    }

    async fn reconcile(&self, key: &ObjectKey, ctx: &Ctx) -> Result<Action> {
        let Some(stored) = ctx.cache().get(key) else {
            self.lock().remove(key);
            return Ok(Action::Done);
        };
        let Object::HorizontalPodAutoscaler(hpa) = &stored.object else {
            return Ok(Action::Done);
        };
        let pass = self.pass(key, hpa, ctx).await?;
        let Some(pass) = pass else {
            // The target changed under the pass: look again at once.
            return Ok(Action::RequeueAfter(Duration::ZERO));
        };
        // A failure newly reported is told once as a Warning, not at every period.
        // (ScalingLimited False is good news: within range.)
        let was_false = |type_: &str, reason: &str| {
            hpa.condition(type_)
                .is_some_and(|c| c.status == "False" && c.reason.as_deref() == Some(reason))
        };
        for (type_, ok, reason, message) in &pass.conditions {
            if !ok && *type_ != "ScalingLimited" && !was_false(type_, reason) {
                ctx.events().object(
                    &stored.object,
                    EventType::Warning,
                    reason,
                    message.clone(),
                    Self::COMPONENT,
                );
            }
        }
        if let Some(message) = &pass.rescaled {
            ctx.events().object(
                &stored.object,
                EventType::Normal,
                "SuccessfulRescale",
                message.clone(),
                Self::COMPONENT,
            );
        }
        write_status(&stored, hpa, pass, ctx).await?;
        Ok(Action::RequeueAfter(SYNC_PERIOD))
    }
}

impl AutoscalerController {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, History>> {
        self.histories
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Measures and scales; `None` when the target's write lost a race.
    async fn pass(
        &self,
        key: &ObjectKey,
        hpa: &HorizontalPodAutoscaler,
        ctx: &Ctx,
    ) -> Result<Option<Pass>> {
        let namespace = hpa.metadata.namespace();
        let reference = &hpa.spec.scale_target_ref;
        let mut pass = Pass {
            current: hpa
                .status
                .as_ref()
                .and_then(|s| s.current_replicas)
                .map_or(0, i64::from),
            desired: hpa
                .status
                .as_ref()
                .map_or(0, |s| i64::from(s.desired_replicas)),
            metrics: Vec::new(),
            conditions: Vec::new(),
            rescaled: None,
        };
        let target = Kind::from_name(&reference.kind).and_then(|kind| {
            ctx.cache()
                .get(&ObjectKey::new(kind, namespace, &reference.name))
        });
        let Some(target) = target else {
            pass.conditions.push((
                "AbleToScale",
                false,
                "FailedGetScale",
                format!(
                    "the HPA controller was unable to get the target's current scale: {} {:?} not found in namespace {namespace:?}",
                    reference.kind, reference.name
                ),
            ));
            return Ok(Some(pass));
        };
        let current = target.object.replicas().unwrap_or(1);
        pass.current = current;
        pass.desired = current;
        if current == 0 {
            pass.conditions.push((
                "AbleToScale",
                true,
                "SucceededGetScale",
                "the HPA controller was able to get the target's current scale".into(),
            ));
            pass.conditions.push((
                "ScalingActive",
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".into(),
            ));
            return Ok(Some(pass));
        }
        let pods = target_pods(ctx.cache(), &target.object);
        let reports = self.samples(ctx.cache(), &pods).await;
        let samples: measure::Samples<'_> = reports
            .iter()
            .flat_map(|r| &r.pods)
            .map(|p| ((p.namespace.as_str(), p.name.as_str()), p))
            .collect();
        let pod_refs: Vec<&Pod> = pods.iter().map(|(_, p)| p).collect();
        let mut proposals: Vec<(i64, String)> = Vec::new();
        let mut failures = Vec::new();
        for metric in hpa.spec.metrics.iter().flatten() {
            let found = measure::measure(metric, &pod_refs, &samples)
                .and_then(|m| {
                    let proposal = replicas::propose(&m.parts, m.goal, current)?;
                    Ok((proposal, m))
                })
                .map_err(|e| {
                    format!(
                        "failed to get {} utilization: {e}",
                        measure::resource_name(metric)
                    )
                });
            match found {
                Ok((proposal, measured)) => {
                    pass.metrics
                        .push(measure::status(metric, proposal.measured, &measured.parts));
                    proposals.push((proposal.replicas, measured.title));
                }
                Err(e) => {
                    pass.metrics.push(MetricStatus {
                        type_: metric.type_.clone(),
                        ..Default::default()
                    });
                    failures.push(e);
                }
            }
        }
        pass.conditions.push((
            "AbleToScale",
            true,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale".into(),
        ));
        let Some((recommended, title)) = proposals.iter().max_by_key(|(r, _)| *r).cloned() else {
            let why = failures
                .first()
                .cloned()
                .unwrap_or_else(|| "no metrics".into());
            pass.conditions
                .push(("ScalingActive", false, "FailedGetResourceMetric", why));
            return Ok(Some(pass));
        };
        // A metric that could not be read might want more: never scale down without it.
        let recommended = if !failures.is_empty() && recommended < current {
            current
        } else {
            recommended
        };
        pass.conditions.push((
            "ScalingActive",
            true,
            "ValidMetricFound",
            format!("the HPA was able to successfully calculate a replica count from {title}"),
        ));
        let rules = Rules::of(&hpa.spec);
        let now = Instant::now();
        let decision =
            self.lock()
                .entry(key.clone())
                .or_default()
                .decide(&rules, recommended, current, now);
        pass.desired = decision.replicas;
        if let Some((reason, message)) = decision.stabilized {
            pass.conditions.retain(|c| c.0 != "AbleToScale");
            pass.conditions
                .push(("AbleToScale", true, reason, message.into()));
        }
        match decision.limited {
            Some((reason, message)) => {
                pass.conditions
                    .push(("ScalingLimited", true, reason, message))
            }
            None => pass.conditions.push((
                "ScalingLimited",
                false,
                "DesiredWithinRange",
                "the desired count is within the acceptable range".into(),
            )),
        }
        if decision.replicas != current {
            let mut scaled = target.object.clone();
            if let Some(count) = scaled.replicas_mut() {
                *count = Some(decision.replicas);
            }
            if ctx
                .update(scaled, target.resource_version)
                .await
                .or_raced()?
                .is_none()
            {
                return Ok(None);
            }
            self.lock().entry(key.clone()).or_default().scaled(
                current,
                decision.replicas,
                now,
                &rules,
            );
            let reason = if decision.replicas > current {
                format!("{title} above target")
            } else {
                "All metrics below target".to_string()
            };
            tracing::info!(autoscaler = %key, from = current, to = decision.replicas, %reason, "rescaled");
            pass.rescaled = Some(format!("New size: {}; reason: {reason}", decision.replicas));
            pass.conditions.retain(|c| c.0 != "AbleToScale");
            pass.conditions.push((
                "AbleToScale",
                true,
                "SucceededRescale",
                format!(
                    "the HPA controller was able to update the target scale to {}",
                    decision.replicas
                ),
            ));
        }
        Ok(Some(pass))
    }

    /// The latest samples of the nodes the pods run on. A node asked within
    /// [`SAMPLE_REUSE`] is not asked again (its agent samples every 15 s anyway): many
    /// autoscalers, or a node whose agent does not answer, cost one ask per node per period.
    async fn samples(&self, cache: &Cache, pods: &[(String, Pod)]) -> Vec<Arc<MetricsReport>> {
        let now = Instant::now();
        let mut names: Vec<&str> = pods.iter().map(|(node, _)| node.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut reports = Vec::new();
        let mut to_ask = Vec::new();
        {
            let asked = self.asked_lock();
            for name in names {
                match asked.get(name) {
                    Some((at, report)) if now.duration_since(*at) < SAMPLE_REUSE => {
                        reports.extend(report.clone());
                    }
                    _ => to_ask.push(name),
                }
            }
        }
        if to_ask.is_empty() {
            return reports;
        }
        let nodes: Vec<Arc<Stored>> = to_ask
            .iter()
            .filter_map(|n| cache.get(&ObjectKey::new(Kind::Node, "", n)))
            .collect();
        let mut answers =
            crate::nodes::usage::samples(&self.dialer, nodes.iter().map(|s| &s.object)).await;
        let mut asked = self.asked_lock();
        for name in to_ask {
            let answer = answers
                .iter()
                .position(|(node, _)| node == name)
                .map(|i| Arc::new(answers.swap_remove(i).1));
            reports.extend(answer.clone());
            asked.insert(name.to_string(), (now, answer));
        }
        // Nodes no pod runs on any more are forgotten.
        asked.retain(|_, (at, _)| now.duration_since(*at) < SAMPLE_REUSE * 10);
        reports
    }

    fn asked_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Asked>> {
        self.asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The target's active pods that its selector picks, with the node each runs on.
fn target_pods(cache: &Cache, target: &Object) -> Vec<(String, Pod)> {
    let selector = match target {
        Object::Deployment(d) => Selector::from_label_selector(d.spec.selector.as_ref()),
        Object::StatefulSet(s) => Selector::from_label_selector(s.spec.selector.as_ref()),
        Object::ReplicaSet(r) => Selector::from_label_selector(r.spec.selector.as_ref()),
        Object::ReplicationController(r) => Ok(r
            .spec
            .selector
            .as_ref()
            .map_or_else(Selector::nothing, Selector::from_map)),
        _ => Ok(Selector::nothing()),
    }
    .unwrap_or_else(|_| Selector::nothing());
    cache
        .list(Kind::Pod, Some(target.meta().namespace()))
        .iter()
        .filter_map(|s| match &s.object {
            Object::Pod(p)
                if super::pods::is_active(p) && selector.matches(p.metadata.labels()) =>
            {
                Some((p.spec.node_name.clone().unwrap_or_default(), p.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Writes the pass's status when it says something new; conditions keep their transition
/// time while their status stays.
async fn write_status(
    stored: &Stored,
    hpa: &HorizontalPodAutoscaler,
    pass: Pass,
    ctx: &Ctx,
) -> Result<()> {
    let before = hpa.status.clone().unwrap_or_default();
    let now = Utc::now();
    let mut listed = pass.conditions;
    listed.sort_by_key(|c| CONDITIONS.iter().position(|t| *t == c.0));
    let conditions: Vec<Condition> = listed
        .into_iter()
        .map(|(type_, ok, reason, message)| {
            let status = if ok { "True" } else { "False" };
            let since = before
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == type_ && c.status == status)
                .and_then(|c| c.last_transition_time)
                .unwrap_or(now);
            Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                last_transition_time: Some(since),
                reason: Some(reason.to_string()),
                message: Some(message),
                ..Default::default()
            }
        })
        .collect();
    let status = HorizontalPodAutoscalerStatus {
        observed_generation: hpa.metadata.generation,
        last_scale_time: if pass.rescaled.is_some() {
            Some(now)
        } else {
            before.last_scale_time
        },
        current_replicas: Some(i32::try_from(pass.current).unwrap_or(i32::MAX)),
        desired_replicas: i32::try_from(pass.desired).unwrap_or(i32::MAX),
        current_metrics: (!pass.metrics.is_empty()).then_some(pass.metrics),
        conditions: Some(conditions),
    };
    if hpa.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let mut updated = hpa.clone();
    updated.status = Some(status);
    ctx.update(
        Object::HorizontalPodAutoscaler(updated),
        stored.resource_version,
    )
    .await
    .or_raced()?;
    Ok(())
}
