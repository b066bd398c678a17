//! The controllers: level-triggered loops that make derived state follow declared state, each
//! run by the [`runtime`] (work queue, workers, expectations, error policy).
//!
//! # Layout
//! - [`runtime`]: the contract and the machinery every controller runs on.
//! - [`replicas`]: ReplicaSet and ReplicationController; [`deployment`]: Deployments;
//!   [`daemonset`]: DaemonSets; [`statefulset`]: StatefulSets; [`job`]: Jobs; [`cronjob`]: CronJobs. Each decides in pure functions (table-tested)
//!   and acts in its `reconcile`.
//! - [`endpoints`]: Endpoints for Services with selectors; [`loadbalancer`]: external
//!   addresses of LoadBalancer Services.
//! - [`ingress`]: which Ingresses keel serves, and their status (the Ready nodes).
//! - [`scheduling`]: binds pending pods with `keel_scheduler`.
//! - [`volumes`]: the `local-path` provisioner: a claim's volume on its first pod's node.
//! - [`autoscaler`]: HorizontalPodAutoscalers set their targets' replicas from the pods'
//!   measured CPU and memory.
//! - [`gc`]: deletes objects whose owners are gone.
//! - [`eviction`]: deletes the pods of nodes that stayed not ready.
//! - [`pods`]: what several controllers ask of a pod (active, ready, available, owner).

pub mod autoscaler;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod eviction;
pub mod gc;
pub mod ingress;
pub mod job;
pub mod loadbalancer;
pub mod pods;
pub mod replicas;
pub mod runtime;
pub mod scheduling;
pub mod statefulset;
pub mod volumes;

use std::sync::Arc;

use keel_schema::Kind;
use keel_store::{ObjectKey, Store};

use crate::cache::{Cache, Change};
use crate::events::Recorder;
use crate::tasks::Tasks;
pub use runtime::Config;
use runtime::{Controller, Shared};

/// Starts every controller on `tasks`; they run until the tasks' stop, and a shutdown waits
/// for the reconciles in flight.
pub fn start(
    tasks: &Tasks,
    store: Store,
    cache: Cache,
    config: Config,
    events: Recorder,
    agents: crate::nodes::dial::AgentDialer,
) {
    let pool = config.load_balancer_pool;
    let shared = Arc::new(Shared::new(store, cache, config, events));
    spawn(tasks, &shared, replicas::ReplicaController, 4);
    spawn(tasks, &shared, deployment::DeploymentController, 2);
    spawn(tasks, &shared, daemonset::DaemonSetController, 1);
    spawn(tasks, &shared, statefulset::StatefulSetController, 1);
    spawn(tasks, &shared, volumes::VolumeController, 1);
    spawn(tasks, &shared, job::JobController, 2);
    spawn(tasks, &shared, cronjob::CronJobController, 1);
    spawn(tasks, &shared, endpoints::EndpointsController, 2);
    // One worker: addresses are handed out one at a time.
    spawn(
        tasks,
        &shared,
        loadbalancer::LoadBalancerController::new(pool),
        1,
    );
    spawn(tasks, &shared, ingress::IngressStatusController, 1);
    spawn(tasks, &shared, gc::GarbageCollector, 2);
    spawn(tasks, &shared, eviction::EvictionController::default(), 1);
    spawn(
        tasks,
        &shared,
        autoscaler::AutoscalerController::new(agents),
        1,
    );
    let scheduler = scheduling::SchedulingController::default();
    spawn(tasks, &shared, scheduler, scheduling::WORKERS);
}

/// The Ready nodes' addresses, sorted: where LoadBalancer Services (`nodes` pool) and
/// Ingresses answer.
pub fn ready_node_ips(cache: &Cache) -> Vec<std::net::Ipv4Addr> {
    let mut ips: Vec<std::net::Ipv4Addr> = cache
        .list(Kind::Node, None)
        .iter()
        .filter_map(|s| match &s.object {
            keel_schema::Object::Node(n) if n.is_ready() => n.internal_ip()?.parse().ok(),
            _ => None,
        })
        .collect();
    ips.sort();
    ips
}

/// Runs `controller` with `workers` workers on `tasks`.
fn spawn<C: Controller>(tasks: &Tasks, shared: &Arc<Shared>, controller: C, workers: usize) {
    let run = runtime::runner::run(Arc::new(controller), shared.clone(), workers, tasks.stop());
    tasks.spawn(run);
}

/// The keys of a controller of `kind` whose dependents are `dependent`s: a changed `kind`
/// object itself, the controller a changed dependent names, and everything after a relist.
pub fn owner_keys(
    change: &Change,
    kind: Kind,
    dependent: Kind,
    cache: &Cache,
    out: &mut Vec<ObjectKey>,
) {
    match change.kind() {
        Some(k) if k == kind => out.extend(change.objects().map(ObjectKey::of).take(1)),
        Some(k) if k == dependent => {
            for o in change.objects() {
                if let Some(r) = pods::controller_of(o.meta())
                    && kind == r.kind.as_str()
                {
                    out.push(ObjectKey::new(kind, o.namespace(), &r.name));
                }
            }
        }
        Some(_) => {}
        None => out.extend(keys_of_kind(cache, kind)),
    }
}

/// Every object key of `kind` in the cache.
pub fn keys_of_kind(cache: &Cache, kind: Kind) -> Vec<ObjectKey> {
    cache
        .list(kind, None)
        .iter()
        .map(|s| ObjectKey::of(&s.object))
        .collect()
}
