//! `keel describe KIND NAME`: one object in prose, as kubectl describes it, with its events.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use keel_schema::types::apps::Deployment;
use keel_schema::types::core::{Event, Node};
use keel_schema::types::meta::Condition;
use keel_schema::types::pod::{Container, ContainerStatus, Pod, PodPhase};
use keel_schema::{Kind, Object};
use serde::Serialize;

use super::ServerArg;
use crate::credentials::{connect, explain};
use crate::output::{human_duration, or_none, out, runtime};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The kind: name, plural or short form (po, deploy, no, …).
    pub kind: String,
    pub name: String,
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    #[command(flatten)]
    pub server: ServerArg,
}

pub fn run(args: &Args) -> i32 {
    let Some(runtime) = runtime("describe") else {
        return 1;
    };
    let server = &args.server.server;
    let fetched = connect(server).and_then(|client| {
        runtime.block_on(async {
            let Some(named) = super::get::kind_named(&client, &args.kind).await? else {
                return Ok(None);
            };
            let kind = named.kind;
            let object = client.object(kind, &args.namespace, &args.name).await?;
            // Events about cluster-scoped objects (nodes) live in `default`, as in Kubernetes.
            let events_ns = if kind.info().namespaced {
                args.namespace.as_str()
            } else {
                "default"
            };
            let events = client
                .list(Kind::Event, Some(events_ns))
                .await
                .unwrap_or_default();
            Ok(Some((object, events)))
        })
    });
    match fetched {
        Ok(None) => {
            eprintln!(
                "keel describe: the server doesn't have a resource type {:?}",
                args.kind
            );
            2
        }
        Ok(Some((object, events))) => {
            let events: Vec<Event> = events
                .into_iter()
                .filter_map(|e| e.try_into().ok())
                .collect();
            out(&describe(&object, &events, Utc::now()));
            0
        }
        Err(e) => {
            eprintln!("{}", explain(&e, server));
            1
        }
    }
}

/// `key=value` lines, aligned under the first.
fn map_lines(map: Option<&keel_schema::StringMap>, indent: usize) -> String {
    let pairs: Vec<String> = map
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    or_none(pairs.join(&format!("\n{}", " ".repeat(indent))))
}

fn field(out: &mut String, name: &str, value: impl AsRef<str>) {
    out.push_str(&format!("{:<15}{}\n", format!("{name}:"), value.as_ref()));
}

fn ago(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<String> {
    t.map(|t| human_duration(now - t))
}

/// Conditions as a small table.
fn conditions(out: &mut String, conditions: Option<&Vec<Condition>>) {
    let Some(cs) = conditions.filter(|c| !c.is_empty()) else {
        return;
    };
    out.push_str("Conditions:\n");
    let rows: Vec<Vec<String>> = cs
        .iter()
        .map(|c| {
            vec![
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    for line in crate::table::render(&["Type", "Status", "Reason", "Message"], &rows).lines() {
        out.push_str(&format!("  {line}\n"));
    }
}

fn pod_details(out: &mut String, pod: &Pod, now: DateTime<Utc>) {
    let status = pod.status.as_ref();
    field(
        out,
        "Node",
        or_none(pod.spec.node_name.clone().unwrap_or_default()),
    );
    field(
        out,
        "Status",
        pod.phase().unwrap_or(PodPhase::Pending).as_str(),
    );
    field(
        out,
        "IP",
        or_none(status.and_then(|s| s.pod_ip.clone()).unwrap_or_default()),
    );
    let inits = pod.spec.init_containers.as_deref().unwrap_or(&[]);
    if !inits.is_empty() {
        out.push_str("Init Containers:\n");
        containers(
            out,
            inits,
            status.and_then(|s| s.init_container_statuses.as_ref()),
            now,
        );
    }
    out.push_str("Containers:\n");
    containers(
        out,
        &pod.spec.containers,
        status.and_then(|s| s.container_statuses.as_ref()),
        now,
    );
    conditions(out, status.and_then(|s| s.conditions.as_ref()));
}

/// Each container with its image, state, readiness and restarts, as `kubectl describe`.
fn containers(
    out: &mut String,
    specs: &[Container],
    statuses: Option<&Vec<ContainerStatus>>,
    now: DateTime<Utc>,
) {
    for c in specs {
        out.push_str(&format!("  {}:\n", c.name));
        out.push_str(&format!(
            "    Image:          {}\n",
            c.image.as_deref().unwrap_or("")
        ));
        let st = statuses.and_then(|all| all.iter().find(|s| s.name == c.name));
        let state = match st.and_then(|s| s.state.as_ref()) {
            Some(s) if s.running.is_some() => format!(
                "Running (started {} ago)",
                ago(s.running.as_ref().and_then(|r| r.started_at), now).unwrap_or_default()
            ),
            Some(s) if s.waiting.is_some() => {
                let waiting = s.waiting.as_ref();
                let mut w = format!(
                    "Waiting ({})",
                    waiting.and_then(|w| w.reason.as_deref()).unwrap_or("")
                );
                if let Some(m) = waiting.and_then(|w| w.message.as_deref()) {
                    w.push_str(&format!(": {m}"));
                }
                w
            }
            Some(s) if s.terminated.is_some() => {
                let t = s.terminated.as_ref();
                format!(
                    "Terminated ({}, exit code {})",
                    t.and_then(|t| t.reason.as_deref()).unwrap_or(""),
                    t.map_or(0, |t| t.exit_code)
                )
            }
            _ => "Waiting".into(),
        };
        out.push_str(&format!("    State:          {state}\n"));
        let terminated = |s: Option<&keel_schema::types::pod::ContainerState>| {
            s.and_then(|s| s.terminated.clone())
        };
        if let Some(t) = terminated(st.and_then(|s| s.state.as_ref())) {
            message_lines(out, t.message.as_deref());
        }
        if let Some(t) = terminated(st.and_then(|s| s.last_state.as_ref())) {
            out.push_str(&format!(
                "    Last State:     Terminated ({}, exit code {})\n",
                t.reason.as_deref().unwrap_or(""),
                t.exit_code
            ));
            message_lines(out, t.message.as_deref());
        }
        if let Some(st) = st {
            out.push_str(&format!("    Ready:          {}\n", st.ready));
            out.push_str(&format!("    Restart Count:  {}\n", st.restart_count));
        }
    }
}

/// A container's termination message, as kubectl shows it: indented under `Message:`.
fn message_lines(out: &mut String, message: Option<&str>) {
    let Some(message) = message.map(str::trim_end).filter(|m| !m.is_empty()) else {
        return;
    };
    let mut lines = message.lines();
    out.push_str(&format!(
        "      Message:      {}\n",
        lines.next().unwrap_or_default()
    ));
    for line in lines {
        out.push_str(&format!("                    {line}\n"));
    }
}

fn deployment_details(out: &mut String, d: &Deployment) {
    let status = d.status.as_ref();
    let n = |v: Option<i64>| v.unwrap_or(0);
    let selector = d
        .spec
        .selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref());
    field(out, "Selector", map_lines(selector, 15));
    field(
        out,
        "Replicas",
        format!(
            "{} desired | {} updated | {} total | {} available | {} unavailable",
            n(d.spec.replicas),
            n(status.and_then(|s| s.updated_replicas)),
            n(status.and_then(|s| s.replicas)),
            n(status.and_then(|s| s.available_replicas)),
            n(status.and_then(|s| s.unavailable_replicas))
        ),
    );
    let strategy = d.spec.strategy.as_ref();
    let type_ = strategy
        .and_then(|s| s.type_.as_deref())
        .filter(|t| !t.is_empty())
        .unwrap_or("RollingUpdate");
    field(out, "StrategyType", type_);
    if type_ != "Recreate" {
        let ru = strategy.and_then(|s| s.rolling_update.as_ref());
        let show = |v: Option<&keel_schema::intorstr::IntOrString>| {
            v.map_or_else(|| "25%".to_string(), ToString::to_string)
        };
        field(
            out,
            "RollingUpdate",
            format!(
                "{} max unavailable, {} max surge",
                show(ru.and_then(|r| r.max_unavailable.as_ref())),
                show(ru.and_then(|r| r.max_surge.as_ref()))
            ),
        );
    }
    let images: Vec<&str> = d
        .spec
        .template
        .iter()
        .flat_map(|t| &t.spec.containers)
        .map(|c| c.image.as_deref().unwrap_or(""))
        .collect();
    field(out, "Images", images.join(", "));
    conditions(out, status.and_then(|s| s.conditions.as_ref()));
}

fn node_details(out: &mut String, node: &Node) {
    let status = node.status.as_ref();
    let address = status
        .and_then(|s| s.addresses.as_ref())
        .and_then(|a| a.first())
        .map(|a| a.address.as_str());
    field(out, "Address", address.unwrap_or(""));
    let annotation = |k: &str| node.metadata.annotation(k).unwrap_or("").to_string();
    field(out, "Agent", or_none(annotation("keel.dev/agent-address")));
    // When the certificate the agent registered with expires (renewed with a third left).
    field(
        out,
        "Certificate",
        match annotation("keel.dev/certificate-expires").as_str() {
            "" => "<none> (the cluster runs --insecure)".to_string(),
            t => format!("expires {t}"),
        },
    );
    let quantities = |m: Option<&BTreeMap<String, keel_schema::quantity::Quantity>>| {
        let text: keel_schema::StringMap = m
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        map_lines(Some(&text), 15)
    };
    field(
        out,
        "Capacity",
        quantities(status.and_then(|s| s.capacity.as_ref())),
    );
    field(
        out,
        "Allocatable",
        quantities(status.and_then(|s| s.allocatable.as_ref())),
    );
    conditions(out, status.and_then(|s| s.conditions.as_ref()));
}

fn yaml_section<T: Serialize>(out: &mut String, title: &str, value: Option<&T>) {
    let Some(value) = value else {
        return;
    };
    out.push_str(&format!("{title}:\n"));
    let text = serde_yaml::to_string(value).unwrap_or_default();
    for line in text.lines() {
        out.push_str(&format!("  {line}\n"));
    }
}

/// What is said of `object` after its metadata: prose for pods, Deployments and nodes; for
/// the other kinds, as kubectl, their body and status as YAML.
fn details(out: &mut String, object: &Object, now: DateTime<Utc>) {
    match object {
        Object::Pod(p) => pod_details(out, p, now),
        Object::Deployment(d) => deployment_details(out, d),
        Object::Node(n) => node_details(out, n),
        Object::Service(s) => {
            yaml_section(out, "Spec", Some(&s.spec));
            yaml_section(out, "Status", s.status.as_ref());
        }
        Object::ReplicationController(r) => {
            yaml_section(out, "Spec", Some(&r.spec));
            yaml_section(out, "Status", r.status.as_ref());
        }
        Object::ConfigMap(c) => yaml_section(out, "Spec", c.data.as_ref()),
        Object::Secret(s) => yaml_section(out, "Spec", s.data.as_ref().map(|d| &d.0)),
        Object::Namespace(n) => yaml_section(out, "Status", n.status.as_ref()),
        Object::Endpoints(e) => yaml_section(out, "Spec", e.subsets.as_ref()),
        Object::Event(_) => {}
        Object::Ingress(i) => {
            yaml_section(out, "Spec", Some(&i.spec));
            yaml_section(out, "Status", i.status.as_ref());
        }
        Object::IngressClass(c) => yaml_section(out, "Spec", Some(&c.spec)),
        Object::NetworkPolicy(p) => yaml_section(out, "Spec", Some(&p.spec)),
        Object::ResourceQuota(q) => yaml_section(out, "Hard", q.spec.hard.as_ref()),
        Object::LimitRange(r) => yaml_section(out, "Limits", Some(&r.spec.limits)),
        Object::PodDisruptionBudget(p) => yaml_section(out, "Spec", Some(&p.spec)),
        Object::HorizontalPodAutoscaler(h) => {
            yaml_section(out, "Spec", Some(&h.spec));
            yaml_section(out, "Status", h.status.as_ref());
        }
        Object::CustomResourceDefinition(c) => {
            yaml_section(out, "Spec", Some(&c.spec));
            yaml_section(out, "Status", c.status.as_ref());
        }
        Object::Custom(c) => {
            let declared: serde_json::Map<String, serde_json::Value> =
                c.declared().map(|(k, v)| (k.clone(), v.clone())).collect();
            yaml_section(out, "Spec", Some(&declared));
            yaml_section(out, "Status", c.status());
        }
        Object::CronJob(c) => {
            yaml_section(out, "Spec", Some(&c.spec));
            yaml_section(out, "Status", c.status.as_ref());
        }
        Object::ServiceAccount(a) => {
            yaml_section(out, "Secrets", a.secrets.as_ref());
            yaml_section(out, "Image pull secrets", a.image_pull_secrets.as_ref());
        }
        Object::Role(r) => yaml_section(out, "Rules", r.rules.as_ref()),
        Object::ClusterRole(r) => {
            yaml_section(out, "Rules", r.rules.as_ref());
            yaml_section(out, "Aggregation rule", r.aggregation_rule.as_ref());
        }
        Object::RoleBinding(b) => {
            yaml_section(out, "Role", Some(&b.role_ref));
            yaml_section(out, "Subjects", b.subjects.as_ref());
        }
        Object::ClusterRoleBinding(b) => {
            yaml_section(out, "Role", Some(&b.role_ref));
            yaml_section(out, "Subjects", b.subjects.as_ref());
        }
        Object::ReplicaSet(r) => {
            yaml_section(out, "Spec", Some(&r.spec));
            yaml_section(out, "Status", r.status.as_ref());
        }
        Object::DaemonSet(d) => {
            yaml_section(out, "Spec", Some(&d.spec));
            yaml_section(out, "Status", d.status.as_ref());
        }
        Object::Job(j) => {
            yaml_section(out, "Spec", Some(&j.spec));
            yaml_section(out, "Status", j.status.as_ref());
        }
        Object::StatefulSet(s) => {
            yaml_section(out, "Spec", Some(&s.spec));
            yaml_section(out, "Status", s.status.as_ref());
        }
        Object::ControllerRevision(r) => yaml_section(out, "Data", r.data.as_ref()),
        Object::PersistentVolumeClaim(c) => {
            yaml_section(out, "Spec", Some(&c.spec));
            yaml_section(out, "Status", c.status.as_ref());
        }
        Object::PersistentVolume(v) => {
            yaml_section(out, "Spec", Some(&v.spec));
            yaml_section(out, "Status", v.status.as_ref());
        }
    }
}

/// The events about `object`, oldest first, as a table.
fn events_table(out: &mut String, object: &Object, events: &[Event], now: DateTime<Utc>) {
    let meta = object.meta();
    let uid = meta.uid.as_deref().unwrap_or("");
    let mut about: Vec<&Event> = events
        .iter()
        .filter(|e| {
            let r = &e.involved_object;
            match r.uid.as_deref() {
                Some(u) if !uid.is_empty() && !u.is_empty() => u == uid,
                _ => {
                    r.kind.as_deref() == Some(object.kind().as_str())
                        && r.name.as_deref() == Some(object.name())
                }
            }
        })
        .collect();
    // Oldest first; within one second, in the order they were made.
    about.sort_by_key(|e| (e.last_timestamp, e.metadata.creation_timestamp));
    if about.is_empty() {
        out.push_str("Events:        <none>\n");
        return;
    }
    out.push_str("Events:\n");
    let rows: Vec<Vec<String>> = about
        .iter()
        .map(|e| {
            let last = ago(e.last_timestamp, now).unwrap_or_default();
            let count = e.count.unwrap_or(1);
            let when = if count > 1 {
                let first = ago(e.first_timestamp, now).unwrap_or_default();
                format!("{last} (x{count} over {first})")
            } else {
                last
            };
            vec![
                e.type_.map(|t| t.to_string()).unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                when,
                e.source
                    .as_ref()
                    .and_then(|s| s.component.clone())
                    .unwrap_or_default(),
                e.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let table = crate::table::render(&["Type", "Reason", "Age", "From", "Message"], &rows);
    for line in table.lines() {
        out.push_str(&format!("  {line}\n"));
    }
}

/// The description of `object`, with the events about it.
pub fn describe(object: &Object, events: &[Event], now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let meta = object.meta();
    field(&mut out, "Name", meta.name());
    if !meta.namespace().is_empty() {
        field(&mut out, "Namespace", meta.namespace());
    }
    field(&mut out, "Kind", object.kind().as_str());
    field(&mut out, "Labels", map_lines(meta.labels.as_ref(), 15));
    field(
        &mut out,
        "Annotations",
        map_lines(meta.annotations.as_ref(), 15),
    );
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    if let Some(owner) = controller {
        field(
            &mut out,
            "Controlled By",
            format!("{}/{}", owner.kind, owner.name),
        );
    }
    if let (Some(created), Some(a)) = (meta.creation_timestamp, ago(meta.creation_timestamp, now)) {
        let at = created.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        field(&mut out, "Created", format!("{at} ({a} ago)"));
    }
    details(&mut out, object, now);
    events_table(&mut out, object, events, now);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_is_described_with_its_containers_and_events() {
        let now = Utc::now();
        let t = |secs: i64| (now - chrono::Duration::seconds(secs)).to_rfc3339();
        let pod = Object::from_json(
            json!({"kind": "Pod", "metadata": {"name": "web-1", "namespace": "default",
            "uid": "u1", "labels": {"app": "web"}, "creationTimestamp": t(60),
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-abc", "controller": true}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "web:1"}]},
            "status": {"phase": "Running", "podIP": "172.17.0.2",
                "containerStatuses": [{"name": "web", "ready": false, "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}),
        )
        .unwrap();
        let events: Vec<Event> = serde_json::from_value(json!([
            {"involvedObject": {"uid": "u1"}, "type": "Warning", "reason": "BackOff",
             "message": "Back-off restarting failed container web", "count": 4,
             "firstTimestamp": t(50), "lastTimestamp": t(5), "source": {"component": "kubelet"}},
            {"involvedObject": {"uid": "other"}, "type": "Normal", "reason": "Scheduled",
             "message": "not this pod", "lastTimestamp": t(5)}]))
        .unwrap();
        let text = describe(&pod, &events, now);
        for expected in [
            "Name:          web-1",
            "Controlled By: ReplicaSet/web-abc",
            "Node:          n1",
            "State:          Waiting (CrashLoopBackOff)",
            "Restart Count:  3",
            "Warning   BackOff   5s (x4 over 50s)   kubelet   Back-off restarting failed container web",
        ] {
            assert!(text.contains(expected), "{expected:?} missing in:\n{text}");
        }
        assert!(!text.contains("not this pod"));
    }
}
