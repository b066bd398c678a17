//! `keel describe KIND NAME`: one object in prose, as kubectl describes it, with its events.

use chrono::{DateTime, Utc};
use keel_schema::object::lookup_kind;
use serde_json::Value;

use super::get::{get_json, human_duration, path};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The kind: name, plural or short form (po, deploy, no, …).
    pub kind: String,
    pub name: String,
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// The keel server's API.
    #[arg(long, env = "KEEL_SERVER", default_value = "http://127.0.0.1:7400")]
    pub server: String,
}

pub fn run(args: &Args) -> i32 {
    let Some(info) = lookup_kind(&args.kind) else {
        eprintln!(
            "keel describe: the server doesn't have a resource type {:?}",
            args.kind
        );
        return 2;
    };
    let Some(runtime) = super::runtime("describe") else {
        return 1;
    };
    let fetched = runtime.block_on(async {
        let ns = info.namespaced.then_some(args.namespace.as_str());
        let object = get_json(&args.server, &path(info, ns, Some(&args.name))).await?;
        let events_ns = if info.namespaced {
            args.namespace.as_str()
        } else {
            "default"
        };
        let events = get_json(
            &args.server,
            &format!("/api/v1/namespaces/{events_ns}/events"),
        )
        .await
        .unwrap_or(Value::Null);
        anyhow::Ok((object, events))
    });
    match fetched {
        Ok((object, events)) => {
            super::out(&describe(&object, &events, Utc::now()));
            0
        }
        Err(e) => {
            eprintln!("{e:#}");
            1
        }
    }
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn or_none(text: String) -> String {
    if text.is_empty() {
        "<none>".into()
    } else {
        text
    }
}

/// `key=value` lines, aligned under the first.
fn map_lines(v: &Value, indent: usize) -> String {
    let pairs: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(&v.to_string())))
        .collect();
    or_none(pairs.join(&format!("\n{}", " ".repeat(indent))))
}

fn field(out: &mut String, name: &str, value: impl AsRef<str>) {
    out.push_str(&format!("{:<15}{}\n", format!("{name}:"), value.as_ref()));
}

fn age(v: &Value, pointer: &str, now: DateTime<Utc>) -> Option<String> {
    let t = DateTime::parse_from_rfc3339(s(v, pointer)).ok()?;
    Some(human_duration(now - t.with_timezone(&Utc)))
}

/// Conditions as a small table.
fn conditions(out: &mut String, v: &Value) {
    let Some(cs) = v.as_array().filter(|c| !c.is_empty()) else {
        return;
    };
    out.push_str("Conditions:\n");
    let rows: Vec<Vec<String>> = cs
        .iter()
        .map(|c| {
            vec![
                s(c, "/type").to_string(),
                s(c, "/status").to_string(),
                s(c, "/reason").to_string(),
                s(c, "/message").to_string(),
            ]
        })
        .collect();
    for line in super::table::render(&["Type", "Status", "Reason", "Message"], &rows).lines() {
        out.push_str(&format!("  {line}\n"));
    }
}

fn pod_details(out: &mut String, o: &Value, now: DateTime<Utc>) {
    field(out, "Node", or_none(s(o, "/spec/nodeName").to_string()));
    let phase = s(o, "/status/phase");
    field(
        out,
        "Status",
        if phase.is_empty() { "Pending" } else { phase },
    );
    field(out, "IP", or_none(s(o, "/status/podIP").to_string()));
    out.push_str("Containers:\n");
    let statuses = o["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in o["spec"]["containers"].as_array().into_iter().flatten() {
        let name = s(c, "/name");
        out.push_str(&format!("  {name}:\n"));
        out.push_str(&format!("    Image:          {}\n", s(c, "/image")));
        let st = statuses.iter().find(|x| x["name"] == name);
        let state = match st.map(|x| &x["state"]) {
            Some(state) if state["running"].is_object() => format!(
                "Running (started {} ago)",
                age(state, "/running/startedAt", now).unwrap_or_default()
            ),
            Some(state) if state["waiting"].is_object() => {
                let mut w = format!("Waiting ({})", s(state, "/waiting/reason"));
                if let Some(m) = state["waiting"]["message"].as_str() {
                    w.push_str(&format!(": {m}"));
                }
                w
            }
            Some(state) if state["terminated"].is_object() => format!(
                "Terminated ({}, exit code {})",
                s(state, "/terminated/reason"),
                state["terminated"]["exitCode"]
            ),
            _ => "Waiting".into(),
        };
        out.push_str(&format!("    State:          {state}\n"));
        if let Some(st) = st {
            out.push_str(&format!("    Ready:          {}\n", st["ready"] == true));
            out.push_str(&format!(
                "    Restart Count:  {}\n",
                st["restartCount"].as_i64().unwrap_or(0)
            ));
        }
    }
    conditions(out, &o["status"]["conditions"]);
}

fn deployment_details(out: &mut String, o: &Value) {
    let n = |p: &str| o.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    field(
        out,
        "Selector",
        map_lines(&o["spec"]["selector"]["matchLabels"], 15),
    );
    field(
        out,
        "Replicas",
        format!(
            "{} desired | {} updated | {} total | {} available | {} unavailable",
            n("/spec/replicas"),
            n("/status/updatedReplicas"),
            n("/status/replicas"),
            n("/status/availableReplicas"),
            n("/status/unavailableReplicas")
        ),
    );
    let strategy = s(o, "/spec/strategy/type");
    field(
        out,
        "StrategyType",
        if strategy.is_empty() {
            "RollingUpdate"
        } else {
            strategy
        },
    );
    if strategy != "Recreate" {
        let ru = &o["spec"]["strategy"]["rollingUpdate"];
        let show = |v: &Value| match v {
            Value::Null => "25%".to_string(),
            Value::String(x) => x.clone(),
            other => other.to_string(),
        };
        field(
            out,
            "RollingUpdate",
            format!(
                "{} max unavailable, {} max surge",
                show(&ru["maxUnavailable"]),
                show(&ru["maxSurge"])
            ),
        );
    }
    let images: Vec<&str> = o["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| s(c, "/image"))
        .collect();
    field(out, "Images", images.join(", "));
    conditions(out, &o["status"]["conditions"]);
}

fn node_details(out: &mut String, o: &Value) {
    field(out, "Address", s(o, "/status/addresses/0/address"));
    field(
        out,
        "Agent",
        or_none(s(o, "/metadata/annotations/keel.dev~1agent-address").to_string()),
    );
    // When the certificate the agent registered with expires (renewed with a third left).
    field(
        out,
        "Certificate",
        match s(o, "/metadata/annotations/keel.dev~1certificate-expires") {
            "" => "<none> (the cluster runs --insecure)".to_string(),
            t => format!("expires {t}"),
        },
    );
    field(out, "Capacity", map_lines(&o["status"]["capacity"], 15));
    field(
        out,
        "Allocatable",
        map_lines(&o["status"]["allocatable"], 15),
    );
    conditions(out, &o["status"]["conditions"]);
}

fn yaml_section(out: &mut String, title: &str, v: &Value) {
    if v.is_null() {
        return;
    }
    out.push_str(&format!("{title}:\n"));
    let text = serde_yaml::to_string(v).unwrap_or_default();
    for line in text.lines() {
        out.push_str(&format!("  {line}\n"));
    }
}

/// The description of `o`, with the events (an Event list) about it.
pub fn describe(o: &Value, events: &Value, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    field(&mut out, "Name", s(o, "/metadata/name"));
    if !s(o, "/metadata/namespace").is_empty() {
        field(&mut out, "Namespace", s(o, "/metadata/namespace"));
    }
    field(&mut out, "Kind", s(o, "/kind"));
    field(&mut out, "Labels", map_lines(&o["metadata"]["labels"], 15));
    field(
        &mut out,
        "Annotations",
        map_lines(&o["metadata"]["annotations"], 15),
    );
    if let Some(owner) = o["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|refs| refs.iter().find(|r| r["controller"] == true))
    {
        field(
            &mut out,
            "Controlled By",
            format!("{}/{}", s(owner, "/kind"), s(owner, "/name")),
        );
    }
    if let Some(a) = age(o, "/metadata/creationTimestamp", now) {
        field(
            &mut out,
            "Created",
            format!("{} ({a} ago)", s(o, "/metadata/creationTimestamp")),
        );
    }
    match s(o, "/kind") {
        "Pod" => pod_details(&mut out, o, now),
        "Deployment" => deployment_details(&mut out, o),
        "Node" => node_details(&mut out, o),
        _ => {
            let spec = o
                .get("spec")
                .or_else(|| o.get("data"))
                .or_else(|| o.get("subsets"));
            yaml_section(&mut out, "Spec", spec.unwrap_or(&Value::Null));
            yaml_section(&mut out, "Status", o.get("status").unwrap_or(&Value::Null));
        }
    }
    let uid = s(o, "/metadata/uid");
    let mut about: Vec<&Value> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            let r = &e["involvedObject"];
            if !uid.is_empty() && !s(r, "/uid").is_empty() {
                s(r, "/uid") == uid
            } else {
                s(r, "/kind") == s(o, "/kind") && s(r, "/name") == s(o, "/metadata/name")
            }
        })
        .collect();
    // Oldest first; within one second, in the order they were made.
    about.sort_by_key(|e| {
        (
            s(e, "/lastTimestamp").to_string(),
            s(e, "/metadata/creationTimestamp").to_string(),
        )
    });
    if about.is_empty() {
        out.push_str("Events:        <none>\n");
        return out;
    }
    out.push_str("Events:\n");
    let rows: Vec<Vec<String>> = about
        .iter()
        .map(|e| {
            let last = age(e, "/lastTimestamp", now).unwrap_or_default();
            let count = e["count"].as_i64().unwrap_or(1);
            let when = if count > 1 {
                let first = age(e, "/firstTimestamp", now).unwrap_or_default();
                format!("{last} (x{count} over {first})")
            } else {
                last
            };
            vec![
                s(e, "/type").to_string(),
                s(e, "/reason").to_string(),
                when,
                s(e, "/source/component").to_string(),
                s(e, "/message").to_string(),
            ]
        })
        .collect();
    let table = super::table::render(&["Type", "Reason", "Age", "From", "Message"], &rows);
    for line in table.lines() {
        out.push_str(&format!("  {line}\n"));
    }
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
        let pod = json!({"kind": "Pod", "metadata": {"name": "web-1", "namespace": "default",
            "uid": "u1", "labels": {"app": "web"}, "creationTimestamp": t(60),
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-abc", "controller": true}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "web:1"}]},
            "status": {"phase": "Running", "podIP": "172.17.0.2",
                "containerStatuses": [{"name": "web", "ready": false, "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let events = json!({"items": [
            {"involvedObject": {"uid": "u1"}, "type": "Warning", "reason": "BackOff",
             "message": "Back-off restarting failed container web", "count": 4,
             "firstTimestamp": t(50), "lastTimestamp": t(5), "source": {"component": "kubelet"}},
            {"involvedObject": {"uid": "other"}, "type": "Normal", "reason": "Scheduled",
             "message": "not this pod", "lastTimestamp": t(5)}]});
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
