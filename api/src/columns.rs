//! The columns `keel get` prints for each kind, as kubectl prints them: one exhaustive table
//! from kind to columns, each column a header and a cell read from the typed object.

use std::borrow::Borrow;

use chrono::{DateTime, Utc};
use keel_schema::types::core::{
    ConfigMap, Endpoints, Event, Namespace, Node, ReplicationController, Secret, Service,
    ServiceAccount,
};
use keel_schema::types::meta::ObjectMeta;
use keel_schema::types::networking::{Ingress, IngressClass};
use keel_schema::types::pod::{Pod, PodPhase, PodTemplateSpec};
use keel_schema::types::rbac::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, Subject};
use keel_schema::{Kind, Object, OfKind, Resource};

pub use format::{human_duration, or_none};

pub mod autoscaling;
mod definitions;
pub mod format;
mod policy;
mod printer;
mod server_table;
mod storage;
mod workloads;

pub use printer::custom_table;
pub use server_table::all_columns;

/// One column: its header, and its cell for an object at a moment (for ages).
type Column<T> = (&'static str, fn(&T, DateTime<Utc>) -> String);

/// A kind's columns: always, and with `-o wide`.
struct Columns<T: 'static> {
    normal: &'static [Column<T>],
    wide: &'static [Column<T>],
}

/// The header and rows for `objects` of `kind` (objects of another kind are skipped), owned
/// or borrowed (a list's snapshot is not copied to be printed).
pub fn table<O: Borrow<Object>>(
    kind: Kind,
    objects: &[O],
    wide: bool,
    now: DateTime<Utc>,
) -> (Vec<&'static str>, Vec<Vec<String>>) {
    match kind {
        Kind::Pod => render(&POD, objects, wide, now),
        Kind::Service => render(&SERVICE, objects, wide, now),
        Kind::ReplicationController => render(&RC, objects, wide, now),
        Kind::ConfigMap => render(&CONFIG_MAP, objects, wide, now),
        Kind::Secret => render(&SECRET, objects, wide, now),
        Kind::Namespace => render(&NAMESPACE, objects, wide, now),
        Kind::Node => render(&NODE, objects, wide, now),
        Kind::Endpoints => render(&ENDPOINTS, objects, wide, now),
        Kind::Event => render(&EVENT, objects, wide, now),
        Kind::Deployment => render(&workloads::DEPLOYMENT, objects, wide, now),
        Kind::ReplicaSet => render(&workloads::REPLICA_SET, objects, wide, now),
        Kind::DaemonSet => render(&workloads::DAEMON_SET, objects, wide, now),
        Kind::PersistentVolumeClaim => render(&storage::CLAIM, objects, wide, now),
        Kind::NetworkPolicy => render(&policy::NETWORK_POLICY, objects, wide, now),
        Kind::ResourceQuota => render(&policy::QUOTA, objects, wide, now),
        Kind::LimitRange => render(&policy::LIMIT_RANGE, objects, wide, now),
        Kind::PodDisruptionBudget => render(&policy::BUDGET, objects, wide, now),
        Kind::HorizontalPodAutoscaler => render(&autoscaling::AUTOSCALER, objects, wide, now),
        Kind::PersistentVolume => render(&storage::VOLUME, objects, wide, now),
        Kind::StatefulSet => render(&workloads::STATEFUL_SET, objects, wide, now),
        Kind::ControllerRevision => render(&workloads::CONTROLLER_REVISION, objects, wide, now),
        Kind::Job => render(&workloads::JOB, objects, wide, now),
        Kind::CronJob => render(&workloads::CRON_JOB, objects, wide, now),
        Kind::Ingress => render(&INGRESS, objects, wide, now),
        Kind::IngressClass => render(&INGRESS_CLASS, objects, wide, now),
        Kind::ServiceAccount => render(&SERVICE_ACCOUNT, objects, wide, now),
        Kind::Role => render(&ROLE, objects, wide, now),
        Kind::ClusterRole => render(&CLUSTER_ROLE, objects, wide, now),
        Kind::RoleBinding => render(&ROLE_BINDING, objects, wide, now),
        Kind::ClusterRoleBinding => render(&CLUSTER_ROLE_BINDING, objects, wide, now),
        Kind::CustomResourceDefinition => render(&definitions::CRD, objects, wide, now),
        // kubectl's columns for a kind whose definition names none (`keel get` gives
        // [`custom_table`] the definition's own).
        Kind::Custom(_) => {
            let rows = objects
                .iter()
                .map(Borrow::borrow)
                .filter(|o: &&Object| o.kind() == kind)
                .map(|o| vec![name(o.meta()), age(o.meta(), now)])
                .collect();
            (vec!["NAME", "AGE"], rows)
        }
    }
}

fn render<T: OfKind, O: Borrow<Object>>(
    columns: &Columns<T>,
    objects: &[O],
    wide: bool,
    now: DateTime<Utc>,
) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let wide: &[Column<T>] = if wide { columns.wide } else { &[] };
    let all = || columns.normal.iter().chain(wide);
    let header = all().map(|(h, _)| *h).collect();
    let rows = objects
        .iter()
        .filter_map(|o| T::of(o.borrow()))
        .map(|o| all().map(|(_, cell)| cell(o, now)).collect())
        .collect();
    (header, rows)
}

fn name(meta: &ObjectMeta) -> String {
    meta.name().to_string()
}

fn age(meta: &ObjectMeta, now: DateTime<Utc>) -> String {
    meta.creation_timestamp
        .map_or_else(|| "<unknown>".into(), |t| human_duration(now - t))
}

fn count(n: Option<i64>) -> String {
    n.unwrap_or(0).to_string()
}

/// `IMAGES` and `SELECTOR` of a workload's template, for `-o wide`.
fn images(template: Option<&PodTemplateSpec>) -> String {
    template
        .iter()
        .flat_map(|t| &t.spec.containers)
        .filter_map(|c| c.image.as_deref())
        .collect::<Vec<_>>()
        .join(",")
}

/// `CONTAINERS` of a workload's template, for `-o wide`.
fn containers(template: Option<&PodTemplateSpec>) -> String {
    template
        .iter()
        .flat_map(|t| &t.spec.containers)
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn selector_text<'a>(pairs: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    pairs
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

const POD: Columns<Pod> = Columns {
    normal: &[
        ("NAME", |p, _| name(&p.metadata)),
        ("READY", |p, _| pod_ready(p)),
        ("STATUS", |p, _| pod_status(p)),
        ("RESTARTS", |p, _| pod_restarts(p).to_string()),
        ("AGE", |p, now| age(&p.metadata, now)),
    ],
    wide: &[
        ("IP", |p, _| {
            or_none(
                p.status
                    .as_ref()
                    .and_then(|s| s.pod_ip.clone())
                    .unwrap_or_default(),
            )
        }),
        ("NODE", |p, _| {
            or_none(p.spec.node_name.clone().unwrap_or_default())
        }),
    ],
};

fn pod_ready(p: &Pod) -> String {
    let ready = p
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter(|c| c.ready)
        .count();
    format!("{ready}/{}", p.spec.containers.len())
}

/// kubectl's STATUS while init containers run: `Init:N/M` (N completed of M), or the
/// reason of the one that is failing (`Init:Error`, `Init:CrashLoopBackOff`, ...); `None`
/// once every one has completed.
fn init_status(p: &Pod) -> Option<String> {
    let total = p.spec.init_containers.as_ref().map_or(0, Vec::len);
    let statuses: Vec<_> = p
        .status
        .iter()
        .flat_map(|s| s.init_container_statuses.iter().flatten())
        .collect();
    // A pod no node has reported on yet is Pending, as kubectl shows it.
    if statuses.is_empty() {
        return None;
    }
    let mut completed = 0;
    for c in statuses {
        let state = c.state.as_ref();
        if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            if t.exit_code == 0 {
                completed += 1;
                continue;
            }
            return Some(match t.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(reason) => format!("Init:{reason}"),
                None => format!("Init:ExitCode:{}", t.exit_code),
            });
        }
        let waiting = state
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref())
            .filter(|r| !["", "PodInitializing", "ContainerCreating"].contains(r));
        if let Some(reason) = waiting {
            return Some(format!("Init:{reason}"));
        }
        break;
    }
    (completed < total).then(|| format!("Init:{completed}/{total}"))
}

/// kubectl's STATUS: how far init containers are, a waiting or terminated container's
/// reason, else the phase.
pub fn pod_status(p: &Pod) -> String {
    // As kubectl: a pod deleted gracefully, its node still stopping it.
    if p.metadata.deletion_timestamp.is_some() {
        return "Terminating".to_string();
    }
    if let Some(init) = init_status(p) {
        return init;
    }
    for c in p
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
    {
        let state = c.state.as_ref();
        if let Some(reason) = state
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref())
            .filter(|r| !r.is_empty() && *r != "ContainerCreating")
        {
            return reason.to_string();
        }
        // kubectl shows a finished container's reason (`Completed`, `Error`, `OOMKilled`).
        if let Some(reason) = state
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.reason.as_deref())
        {
            return reason.to_string();
        }
    }
    if p.condition("PodScheduled")
        .is_some_and(|c| c.status == "False")
    {
        return PodPhase::Pending.to_string();
    }
    p.phase().unwrap_or(PodPhase::Pending).to_string()
}

fn pod_restarts(p: &Pod) -> i64 {
    p.status
        .iter()
        .flat_map(|s| {
            let init = s.init_container_statuses.iter().flatten();
            init.chain(s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum()
}

const RC: Columns<ReplicationController> = Columns {
    normal: &[
        ("NAME", |r, _| name(&r.metadata)),
        ("DESIRED", |r, _| count(r.spec.replicas)),
        ("CURRENT", |r, _| {
            count(r.status.as_ref().map(|s| s.replicas))
        }),
        ("READY", |r, _| {
            count(r.status.as_ref().and_then(|s| s.ready_replicas))
        }),
        ("AGE", |r, now| age(&r.metadata, now)),
    ],
    wide: &[
        ("IMAGES", |r, _| images(r.spec.template.as_ref())),
        ("SELECTOR", |r, _| {
            selector_text(r.spec.selector.iter().flatten())
        }),
    ],
};

const SERVICE: Columns<Service> = Columns {
    normal: &[
        ("NAME", |s, _| name(&s.metadata)),
        ("TYPE", |s, _| {
            s.spec
                .type_
                .clone()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "ClusterIP".into())
        }),
        ("CLUSTER-IP", |s, _| {
            or_none(s.spec.cluster_ip.clone().unwrap_or_default())
        }),
        ("EXTERNAL-IP", |s, _| external_ips(s)),
        ("PORT(S)", |s, _| service_ports(s)),
        ("AGE", |s, now| age(&s.metadata, now)),
    ],
    wide: &[],
};

/// As kubectl: the LoadBalancer addresses, `<pending>` until there is one.
fn external_ips(s: &Service) -> String {
    let ips = s.load_balancer_ips();
    match (ips.is_empty(), s.spec.type_.as_deref()) {
        (false, _) => ips.join(","),
        (true, Some("LoadBalancer")) => "<pending>".into(),
        (true, _) => "<none>".into(),
    }
}

const INGRESS: Columns<Ingress> = Columns {
    normal: &[
        ("NAME", |i, _| name(&i.metadata)),
        ("CLASS", |i, _| {
            i.spec
                .ingress_class_name
                .clone()
                .unwrap_or_else(|| "<none>".into())
        }),
        ("HOSTS", |i, _| {
            let hosts: Vec<&str> = i
                .spec
                .rules
                .iter()
                .flatten()
                .filter_map(|r| r.host.as_deref())
                .collect();
            if hosts.is_empty() {
                "*".into()
            } else {
                hosts.join(",")
            }
        }),
        ("ADDRESS", |i, _| i.load_balancer_ips().join(",")),
        ("PORTS", |i, _| {
            if i.spec.tls.as_ref().is_some_and(|t| !t.is_empty()) {
                "80, 443".into()
            } else {
                "80".into()
            }
        }),
        ("AGE", |i, now| age(&i.metadata, now)),
    ],
    wide: &[],
};

const INGRESS_CLASS: Columns<IngressClass> = Columns {
    normal: &[
        ("NAME", |c, _| name(&c.metadata)),
        ("CONTROLLER", |c, _| {
            c.spec.controller.clone().unwrap_or_default()
        }),
        ("AGE", |c, now| age(&c.metadata, now)),
    ],
    wide: &[],
};

fn service_ports(s: &Service) -> String {
    let ports: Vec<String> = s
        .spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let protocol = p.protocol.as_deref().unwrap_or("TCP");
            match p.node_port {
                Some(np) => format!("{}:{np}/{protocol}", p.port),
                None => format!("{}/{protocol}", p.port),
            }
        })
        .collect();
    or_none(ports.join(","))
}

const ENDPOINTS: Columns<Endpoints> = Columns {
    normal: &[
        ("NAME", |e, _| name(&e.metadata)),
        ("ENDPOINTS", |e, _| endpoints(e)),
        ("AGE", |e, now| age(&e.metadata, now)),
    ],
    wide: &[],
};

/// `IP:PORT` of ready addresses, the first three and how many more, as kubectl.
fn endpoints(e: &Endpoints) -> String {
    let mut all = Vec::new();
    for subset in e.subsets.iter().flatten() {
        for address in subset.addresses.iter().flatten() {
            for port in subset.ports.iter().flatten() {
                all.push(format!("{}:{}", address.ip, port.port));
            }
        }
    }
    let more = all.len().saturating_sub(3);
    all.truncate(3);
    let mut text = or_none(all.join(","));
    if more > 0 {
        text.push_str(&format!(" + {more} more..."));
    }
    text
}

const NODE: Columns<Node> = Columns {
    normal: &[
        ("NAME", |n, _| name(&n.metadata)),
        ("STATUS", |n, _| {
            let ready = if n.is_ready() { "Ready" } else { "NotReady" };
            if n.spec.unschedulable == Some(true) {
                format!("{ready},SchedulingDisabled")
            } else {
                ready.into()
            }
        }),
        ("AGE", |n, now| age(&n.metadata, now)),
        ("VERSION", |n, _| {
            let info = n.status.as_ref().and_then(|s| s.node_info.as_ref());
            info.and_then(|i| i.agent_version.clone())
                .unwrap_or_default()
        }),
    ],
    wide: &[("INTERNAL-IP", |n, _| {
        let addresses = n.status.as_ref().and_then(|s| s.addresses.as_ref());
        addresses
            .and_then(|a| a.first())
            .map(|a| a.address.clone())
            .unwrap_or_default()
    })],
};

const CONFIG_MAP: Columns<ConfigMap> = Columns {
    normal: &[
        ("NAME", |c, _| name(&c.metadata)),
        ("DATA", |c, _| {
            let n = c.data.as_ref().map_or(0, |m| m.len())
                + c.binary_data.as_ref().map_or(0, |m| m.len());
            n.to_string()
        }),
        ("AGE", |c, now| age(&c.metadata, now)),
    ],
    wide: &[],
};

const SECRET: Columns<Secret> = Columns {
    normal: &[
        ("NAME", |s, _| name(&s.metadata)),
        ("TYPE", |s, _| {
            s.type_
                .clone()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "Opaque".into())
        }),
        ("DATA", |s, _| {
            let n = s.data.as_ref().map_or(0, |d| d.0.len())
                + s.string_data.as_ref().map_or(0, |d| d.0.len());
            n.to_string()
        }),
        ("AGE", |s, now| age(&s.metadata, now)),
    ],
    wide: &[],
};

const SERVICE_ACCOUNT: Columns<ServiceAccount> = Columns {
    normal: &[
        ("NAME", |a, _| name(&a.metadata)),
        ("SECRETS", |a, _| {
            a.secrets.as_ref().map_or(0, Vec::len).to_string()
        }),
        ("AGE", |a, now| age(&a.metadata, now)),
    ],
    wide: &[],
};

/// kubectl shows roles, LimitRanges and CustomResourceDefinitions with their creation time
/// rather than an age.
fn created_at(meta: &ObjectMeta) -> String {
    meta.creation_timestamp.map_or_else(
        || "<unknown>".into(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

const ROLE: Columns<Role> = Columns {
    normal: &[
        ("NAME", |r, _| name(&r.metadata)),
        ("CREATED AT", |r, _| created_at(&r.metadata)),
    ],
    wide: &[],
};

const CLUSTER_ROLE: Columns<ClusterRole> = Columns {
    normal: &[
        ("NAME", |r, _| name(&r.metadata)),
        ("CREATED AT", |r, _| created_at(&r.metadata)),
    ],
    wide: &[],
};

/// A binding's subjects of one kind, comma-separated, as kubectl's wide columns.
fn subjects(list: Option<&Vec<Subject>>, kind: &str) -> String {
    let names: Vec<String> = list
        .into_iter()
        .flatten()
        .filter(|s| s.kind == kind)
        .map(
            |s| match s.namespace.as_deref().filter(|_| kind == "ServiceAccount") {
                Some(ns) => format!("{ns}/{}", s.name),
                None => s.name.clone(),
            },
        )
        .collect();
    names.join(", ")
}

fn role_ref(r: &keel_schema::types::rbac::RoleRef) -> String {
    format!("{}/{}", r.kind, r.name)
}

const ROLE_BINDING: Columns<RoleBinding> = Columns {
    normal: &[
        ("NAME", |b, _| name(&b.metadata)),
        ("ROLE", |b, _| role_ref(&b.role_ref)),
        ("AGE", |b, now| age(&b.metadata, now)),
    ],
    wide: &[
        ("USERS", |b, _| subjects(b.subjects.as_ref(), "User")),
        ("GROUPS", |b, _| subjects(b.subjects.as_ref(), "Group")),
        ("SERVICEACCOUNTS", |b, _| {
            subjects(b.subjects.as_ref(), "ServiceAccount")
        }),
    ],
};

const CLUSTER_ROLE_BINDING: Columns<ClusterRoleBinding> = Columns {
    normal: &[
        ("NAME", |b, _| name(&b.metadata)),
        ("ROLE", |b, _| role_ref(&b.role_ref)),
        ("AGE", |b, now| age(&b.metadata, now)),
    ],
    wide: &[
        ("USERS", |b, _| subjects(b.subjects.as_ref(), "User")),
        ("GROUPS", |b, _| subjects(b.subjects.as_ref(), "Group")),
        ("SERVICEACCOUNTS", |b, _| {
            subjects(b.subjects.as_ref(), "ServiceAccount")
        }),
    ],
};

const NAMESPACE: Columns<Namespace> = Columns {
    normal: &[
        ("NAME", |n, _| name(&n.metadata)),
        ("STATUS", |n, _| {
            let phase = n.status.as_ref().and_then(|s| s.phase.clone());
            phase
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "Active".into())
        }),
        ("AGE", |n, now| age(&n.metadata, now)),
    ],
    wide: &[],
};

const EVENT: Columns<Event> = Columns {
    normal: &[
        ("LAST SEEN", |e, now| {
            e.last_timestamp
                .map_or_else(String::new, |t| human_duration(now - t))
        }),
        ("TYPE", |e, _| {
            e.type_.map(|t| t.to_string()).unwrap_or_default()
        }),
        ("REASON", |e, _| e.reason.clone().unwrap_or_default()),
        ("OBJECT", |e, _| {
            let o = &e.involved_object;
            let kind = o.kind.as_deref().unwrap_or("").to_lowercase();
            format!("{kind}/{}", o.name.as_deref().unwrap_or(""))
        }),
        ("MESSAGE", |e, _| e.message.clone().unwrap_or_default()),
    ],
    wide: &[],
};

#[cfg(test)]
mod tests;
