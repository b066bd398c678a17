//! `keel get KIND [NAME]`: objects from a running server's API, as kubectl prints them.

use chrono::{DateTime, Utc};
use keel_schema::object::{KindInfo, lookup_kind};
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The kind: name, plural or short form (po, svc, deploy, rs, rc, ds, no, ep, cm, ns, …).
    pub kind: String,
    /// One object by name (all of the kind when absent).
    pub name: Option<String>,
    /// The namespace (namespaced kinds).
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with = "name")]
    pub all_namespaces: bool,
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
    /// The keel server's API.
    #[arg(long, env = "KEEL_SERVER", default_value = "http://127.0.0.1:7400")]
    pub server: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// More columns (pod IP and node, say).
    Wide,
    Yaml,
    /// A list prints as Kubernetes' `{"apiVersion":"v1","kind":"List","items":[...]}`.
    Json,
}

pub fn run(args: &Args) -> i32 {
    let Some(info) = lookup_kind(&args.kind) else {
        eprintln!(
            "keel get: the server doesn't have a resource type {:?} (try po, svc, deploy, rs, rc, ds, job, no, ep, cm, secret, ns, ev)",
            args.kind
        );
        return 2;
    };
    let Some(runtime) = super::runtime("get") else {
        return 1;
    };
    match runtime.block_on(fetch(args, info)) {
        Ok(value) => match render(args, info, &value, Utc::now()) {
            Ok(text) => {
                super::out(&text);
                0
            }
            Err(e) => {
                eprintln!("keel get: {e}");
                1
            }
        },
        Err(e) => {
            eprintln!("{e:#}");
            1
        }
    }
}

/// The API path of `info`'s objects (in `namespace` for namespaced kinds unless `all`).
pub fn path(info: &KindInfo, namespace: Option<&str>, name: Option<&str>) -> String {
    let mut path = if info.group.is_empty() {
        format!("/api/{}", info.api_version)
    } else {
        format!("/apis/{}", info.api_version)
    };
    if let Some(ns) = namespace.filter(|_| info.namespaced) {
        path.push_str(&format!("/namespaces/{ns}"));
    }
    path.push('/');
    path.push_str(info.plural);
    if let Some(name) = name {
        path.push('/');
        path.push_str(name);
    }
    path
}

/// GETs `path` from the server: the JSON, or the server's own message for an error.
pub async fn get_json(server: &str, path: &str) -> anyhow::Result<Value> {
    let url = format!("{}{path}", server.trim_end_matches('/'));
    json_answer(server, super::http::client_for(server).get(&url)).await
}

/// Sends `request` to the server: the JSON answer, or the server's own message for an error.
pub async fn json_answer(server: &str, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let resp = request
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the keel server at {server}: {e}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(server_error(server, status, &body));
    }
    Ok(body)
}

/// The server's refusal (a Kubernetes `Status` or `{"error": …}`) as the CLI reports it; a
/// 401 also says where the token sent came from.
pub fn server_error(server: &str, status: reqwest::StatusCode, body: &Value) -> anyhow::Error {
    let reason = body["reason"].as_str().unwrap_or("Error");
    let message = body["message"]
        .as_str()
        .or_else(|| body["error"].as_str())
        .map_or_else(|| status.to_string(), str::to_string);
    if status == reqwest::StatusCode::UNAUTHORIZED {
        let hint = super::http::token_hint(server);
        return anyhow::anyhow!("Error from server ({reason}): {message} ({hint})");
    }
    anyhow::anyhow!("Error from server ({reason}): {message}")
}

async fn fetch(args: &Args, info: &KindInfo) -> anyhow::Result<Value> {
    let namespace = (!args.all_namespaces).then_some(args.namespace.as_str());
    get_json(&args.server, &path(info, namespace, args.name.as_deref())).await
}

fn render(
    args: &Args,
    info: &KindInfo,
    value: &Value,
    now: DateTime<Utc>,
) -> anyhow::Result<String> {
    let shaped = if args.name.is_some() {
        value.clone()
    } else {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": value["items"].as_array().cloned().unwrap_or_default(),
        })
    };
    match args.output {
        Some(Output::Json) => return Ok(serde_json::to_string_pretty(&shaped)? + "\n"),
        Some(Output::Yaml) => return Ok(serde_yaml::to_string(&shaped)?),
        _ => {}
    }
    let items: Vec<&Value> = match args.name {
        Some(_) => vec![value],
        None => value["items"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
    };
    if items.is_empty() {
        return Ok(if info.namespaced && !args.all_namespaces {
            format!("No resources found in {} namespace.\n", args.namespace)
        } else {
            "No resources found\n".to_string()
        });
    }
    let wide = args.output == Some(Output::Wide);
    let (mut header, columns) = columns(info.kind, wide);
    let with_ns = args.all_namespaces && info.namespaced;
    if with_ns {
        header.insert(0, "NAMESPACE");
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|o| {
            let mut row = Vec::with_capacity(header.len());
            if with_ns {
                row.push(str_at(o, "/metadata/namespace"));
            }
            row.extend(columns.iter().map(|c| c(o, now)));
            row
        })
        .collect();
    Ok(super::table::render(&header, &rows))
}

type Column = fn(&Value, DateTime<Utc>) -> String;

fn str_at(o: &Value, pointer: &str) -> String {
    match o.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

fn int_at(o: &Value, pointer: &str) -> i64 {
    o.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn name(o: &Value, _: DateTime<Utc>) -> String {
    str_at(o, "/metadata/name")
}

fn age(o: &Value, now: DateTime<Utc>) -> String {
    o.pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(
            || "<unknown>".into(),
            |t| human_duration(now - t.with_timezone(&Utc)),
        )
}

/// kubectl's short ages: `45s`, `12m`, `5h`, `3d`.
pub fn human_duration(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..10_800 => format!("{}m", s / 60),
        10_800..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn condition(o: &Value, pointer: &str, type_: &str) -> Option<String> {
    o.pointer(pointer)?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .and_then(|c| c["status"].as_str().map(str::to_string))
}

fn pod_ready(o: &Value, _: DateTime<Utc>) -> String {
    let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = o["status"]["containerStatuses"]
        .as_array()
        .map_or(0, |cs| cs.iter().filter(|c| c["ready"] == true).count());
    format!("{ready}/{total}")
}

/// kubectl's STATUS: a waiting or terminated container's reason, else the phase.
fn pod_status(o: &Value, _: DateTime<Utc>) -> String {
    for c in o["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(r) = c["state"]["waiting"]["reason"]
            .as_str()
            .filter(|r| !r.is_empty())
            && r != "ContainerCreating"
        {
            return r.to_string();
        }
        // kubectl shows a finished container's reason (`Completed`, `Error`, `OOMKilled`).
        if let Some(r) = c["state"]["terminated"]["reason"].as_str() {
            return r.to_string();
        }
    }
    if condition(o, "/status/conditions", "PodScheduled").as_deref() == Some("False") {
        return "Pending".into();
    }
    let phase = str_at(o, "/status/phase");
    if phase.is_empty() {
        "Pending".into()
    } else {
        phase
    }
}

fn pod_restarts(o: &Value, _: DateTime<Utc>) -> String {
    o["status"]["containerStatuses"]
        .as_array()
        .map_or(0, |cs| {
            cs.iter()
                .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                .sum::<i64>()
        })
        .to_string()
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

fn columns(kind: &str, wide: bool) -> (Vec<&'static str>, Vec<Column>) {
    let (mut header, mut cols): (Vec<&'static str>, Vec<Column>) = match kind {
        "Pod" => (
            vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            vec![name, pod_ready, pod_status, pod_restarts, age],
        ),
        "Deployment" => (
            vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            vec![
                name,
                |o, _| {
                    format!(
                        "{}/{}",
                        int_at(o, "/status/readyReplicas"),
                        int_at(o, "/spec/replicas")
                    )
                },
                |o, _| int_at(o, "/status/updatedReplicas").to_string(),
                |o, _| int_at(o, "/status/availableReplicas").to_string(),
                age,
            ],
        ),
        "ReplicaSet" | "ReplicationController" => (
            vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
            vec![
                name,
                |o, _| int_at(o, "/spec/replicas").to_string(),
                |o, _| int_at(o, "/status/replicas").to_string(),
                |o, _| int_at(o, "/status/readyReplicas").to_string(),
                age,
            ],
        ),
        "DaemonSet" => (
            vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
            vec![
                name,
                |o, _| int_at(o, "/status/desiredNumberScheduled").to_string(),
                |o, _| int_at(o, "/status/currentNumberScheduled").to_string(),
                |o, _| int_at(o, "/status/numberReady").to_string(),
                age,
            ],
        ),
        "Job" => (
            vec!["NAME", "COMPLETIONS", "AGE"],
            vec![
                name,
                |o, _| {
                    let want = o
                        .pointer("/spec/completions")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    format!("{}/{want}", int_at(o, "/status/succeeded"))
                },
                age,
            ],
        ),
        "Service" => (
            vec!["NAME", "TYPE", "CLUSTER-IP", "PORT(S)", "AGE"],
            vec![
                name,
                |o, _| {
                    let t = str_at(o, "/spec/type");
                    if t.is_empty() { "ClusterIP".into() } else { t }
                },
                |o, _| or_none(str_at(o, "/spec/clusterIP")),
                |o, _| {
                    let ports: Vec<String> = o["spec"]["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| {
                            let proto = p["protocol"].as_str().unwrap_or("TCP");
                            match p["nodePort"].as_i64() {
                                Some(np) => format!("{}:{np}/{proto}", p["port"]),
                                None => format!("{}/{proto}", p["port"]),
                            }
                        })
                        .collect();
                    or_none(ports.join(","))
                },
                age,
            ],
        ),
        "Endpoints" => (
            vec!["NAME", "ENDPOINTS", "AGE"],
            vec![
                name,
                |o, _| {
                    let mut eps = Vec::new();
                    for s in o["subsets"].as_array().into_iter().flatten() {
                        for a in s["addresses"].as_array().into_iter().flatten() {
                            for p in s["ports"].as_array().into_iter().flatten() {
                                eps.push(format!(
                                    "{}:{}",
                                    a["ip"].as_str().unwrap_or(""),
                                    p["port"]
                                ));
                            }
                        }
                    }
                    let more = eps.len().saturating_sub(3);
                    eps.truncate(3);
                    let mut s = or_none(eps.join(","));
                    if more > 0 {
                        s.push_str(&format!(" + {more} more..."));
                    }
                    s
                },
                age,
            ],
        ),
        "Node" => (
            vec!["NAME", "STATUS", "AGE", "VERSION"],
            vec![
                name,
                |o, _| match condition(o, "/status/conditions", "Ready").as_deref() {
                    Some("True") => "Ready".into(),
                    _ => "NotReady".into(),
                },
                age,
                |o, _| str_at(o, "/status/nodeInfo/agentVersion"),
            ],
        ),
        "ConfigMap" => (
            vec!["NAME", "DATA", "AGE"],
            vec![
                name,
                |o, _| {
                    let n = o["data"].as_object().map_or(0, |m| m.len())
                        + o["binaryData"].as_object().map_or(0, |m| m.len());
                    n.to_string()
                },
                age,
            ],
        ),
        "Secret" => (
            vec!["NAME", "TYPE", "DATA", "AGE"],
            vec![
                name,
                |o, _| {
                    let t = str_at(o, "/type");
                    if t.is_empty() { "Opaque".into() } else { t }
                },
                |o, _| {
                    let n = o["data"].as_object().map_or(0, |m| m.len())
                        + o["stringData"].as_object().map_or(0, |m| m.len());
                    n.to_string()
                },
                age,
            ],
        ),
        "Namespace" => (
            vec!["NAME", "STATUS", "AGE"],
            vec![
                name,
                |o, _| {
                    let p = str_at(o, "/status/phase");
                    if p.is_empty() { "Active".into() } else { p }
                },
                age,
            ],
        ),
        "Event" => (
            vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
            vec![
                |o, now| {
                    o.pointer("/lastTimestamp")
                        .and_then(Value::as_str)
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map_or_else(String::new, |t| human_duration(now - t.with_timezone(&Utc)))
                },
                |o, _| str_at(o, "/type"),
                |o, _| str_at(o, "/reason"),
                |o, _| {
                    format!(
                        "{}/{}",
                        str_at(o, "/involvedObject/kind").to_lowercase(),
                        str_at(o, "/involvedObject/name")
                    )
                },
                |o, _| str_at(o, "/message"),
            ],
        ),
        _ => (vec!["NAME", "AGE"], vec![name, age]),
    };
    if wide {
        match kind {
            "Pod" => {
                header.extend(["IP", "NODE"]);
                cols.push(|o, _| or_none(str_at(o, "/status/podIP")));
                cols.push(|o, _| or_none(str_at(o, "/spec/nodeName")));
            }
            "Node" => {
                header.push("INTERNAL-IP");
                cols.push(|o, _| str_at(o, "/status/addresses/0/address"));
            }
            "Deployment" | "ReplicaSet" | "ReplicationController" => {
                header.extend(["IMAGES", "SELECTOR"]);
                cols.push(|o, _| {
                    o["spec"]["template"]["spec"]["containers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c["image"].as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                });
                cols.push(|o, _| {
                    let sel = o["spec"]["selector"]["matchLabels"]
                        .as_object()
                        .or_else(|| o["spec"]["selector"].as_object());
                    sel.into_iter()
                        .flatten()
                        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
                        .collect::<Vec<_>>()
                        .join(",")
                });
            }
            _ => {}
        }
    }
    (header, cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_kubernetes() {
        let pod = lookup_kind("po").unwrap();
        assert_eq!(
            path(pod, Some("default"), None),
            "/api/v1/namespaces/default/pods"
        );
        assert_eq!(path(pod, None, None), "/api/v1/pods");
        let deploy = lookup_kind("deploy").unwrap();
        assert_eq!(
            path(deploy, Some("prod"), Some("web")),
            "/apis/apps/v1/namespaces/prod/deployments/web"
        );
        let node = lookup_kind("no").unwrap();
        assert_eq!(path(node, Some("default"), Some("n1")), "/api/v1/nodes/n1");
    }

    #[test]
    fn ages_are_short() {
        let s = chrono::Duration::seconds;
        assert_eq!(human_duration(s(5)), "5s");
        assert_eq!(human_duration(s(600)), "10m");
        assert_eq!(human_duration(s(5 * 3600)), "5h");
        assert_eq!(human_duration(s(3 * 86_400)), "3d");
    }

    #[test]
    fn pods_print_as_kubectl_does() {
        let now = Utc::now();
        let created = (now - chrono::Duration::seconds(30)).to_rfc3339();
        let list = serde_json::json!({"items": [{
            "metadata": {"name": "web-abc", "namespace": "default", "creationTimestamp": created},
            "spec": {"containers": [{"name": "web"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "172.17.0.2", "containerStatuses": [
                {"name": "web", "ready": false, "restartCount": 2,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
        }]});
        let args = Args {
            kind: "po".into(),
            name: None,
            namespace: "default".into(),
            all_namespaces: false,
            output: Some(Output::Wide),
            server: String::new(),
        };
        let out = render(&args, lookup_kind("po").unwrap(), &list, now).unwrap();
        assert_eq!(
            out,
            "NAME      READY   STATUS             RESTARTS   AGE   IP           NODE\n\
             web-abc   0/1     CrashLoopBackOff   2          30s   172.17.0.2   n1\n"
        );
        let args = Args {
            output: Some(Output::Json),
            ..args
        };
        let json: Value =
            serde_json::from_str(&render(&args, lookup_kind("po").unwrap(), &list, now).unwrap())
                .unwrap();
        assert_eq!(json["kind"], "List");
        assert_eq!(json["apiVersion"], "v1");
        assert_eq!(json["items"][0]["metadata"]["name"], "web-abc");
    }
}
