//! `keel status`: the synced revision, and the health of every object it declares, as Argo
//! CD shows an application: Healthy, Progressing, Degraded or Missing.

use serde_json::Value;

use super::get::get_json;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The keel server's API.
    #[arg(long, env = "KEEL_SERVER", default_value = "http://127.0.0.1:7400")]
    pub server: String,
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

pub fn run(args: &Args) -> i32 {
    let Some(runtime) = super::runtime("status") else {
        return 1;
    };
    let fetched = runtime.block_on(async {
        let status = get_json(&args.server, "/api/keel/status").await?;
        let applied = get_json(&args.server, "/api/keel/applied").await?;
        anyhow::Ok((status, applied))
    });
    match fetched {
        Ok((status, applied)) => {
            let report = report(&status, &applied);
            if args.output == Output::Json {
                super::out(&(serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"));
            } else {
                super::out(&render(&status, &report));
            }
            // Exit 0 only when everything declared is Healthy (for scripts and CI).
            i32::from(report.iter().any(|r| r.health != "Healthy"))
        }
        Err(e) => {
            eprintln!("{e:#}");
            2
        }
    }
}

#[derive(Debug, serde::Serialize)]
pub struct Health {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub health: &'static str,
    pub message: String,
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn condition<'a>(v: &'a Value, type_: &str) -> Option<&'a Value> {
    v["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// The health of one object, with why.
pub fn health(o: &Value) -> (&'static str, String) {
    let generation_seen = o["status"]["observedGeneration"]
        .as_i64()
        .is_none_or(|g| g >= int(o, "/metadata/generation"));
    match o["kind"].as_str().unwrap_or("") {
        "Deployment" => {
            let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
            let (updated, available) = (
                int(o, "/status/updatedReplicas"),
                int(o, "/status/availableReplicas"),
            );
            let total = int(o, "/status/replicas");
            if condition(o, "Progressing").is_some_and(|c| c["status"] == "False") {
                let m =
                    condition(o, "Progressing").map_or("", |c| c["message"].as_str().unwrap_or(""));
                return ("Degraded", m.to_string());
            }
            let msg = format!("{available}/{want} available, {updated} updated");
            if generation_seen && updated == want && available == want && total == want {
                ("Healthy", msg)
            } else {
                ("Progressing", msg)
            }
        }
        "ReplicaSet" | "ReplicationController" => {
            let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
            let ready = int(o, "/status/readyReplicas");
            let msg = format!("{ready}/{want} ready");
            if generation_seen && ready == want && int(o, "/status/replicas") == want {
                ("Healthy", msg)
            } else {
                ("Progressing", msg)
            }
        }
        "DaemonSet" => {
            let want = int(o, "/status/desiredNumberScheduled");
            let ready = int(o, "/status/numberReady");
            let msg = format!("{ready}/{want} ready");
            if generation_seen && ready == want && int(o, "/status/numberMisscheduled") == 0 {
                ("Healthy", msg)
            } else {
                ("Progressing", msg)
            }
        }
        "Job" => {
            let done = int(o, "/status/succeeded");
            let want = o["spec"]["completions"].as_i64().unwrap_or(1);
            if condition(o, "Failed").is_some_and(|c| c["status"] == "True") {
                let reason =
                    condition(o, "Failed").map_or("", |c| c["reason"].as_str().unwrap_or(""));
                ("Degraded", format!("failed: {reason}"))
            } else if condition(o, "Complete").is_some_and(|c| c["status"] == "True") {
                ("Healthy", format!("{done}/{want} complete"))
            } else {
                ("Progressing", format!("{done}/{want} complete"))
            }
        }
        "Pod" => {
            let phase = o["status"]["phase"].as_str().unwrap_or("Pending");
            let stuck = o["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["state"]["waiting"]["reason"].as_str())
                .find(|r| {
                    matches!(
                        *r,
                        "CrashLoopBackOff"
                            | "ErrImagePull"
                            | "ImagePullBackOff"
                            | "ErrImageNeverPull"
                            | "CreateContainerConfigError"
                            | "CreateContainerError"
                    )
                });
            let ready = condition(o, "Ready").is_some_and(|c| c["status"] == "True");
            match (phase, stuck) {
                (_, Some(reason)) => ("Degraded", reason.to_string()),
                ("Failed", _) => ("Degraded", "Failed".into()),
                ("Succeeded", _) => ("Healthy", "Succeeded".into()),
                ("Running", _) if ready => ("Healthy", "Running".into()),
                _ => {
                    let why = condition(o, "PodScheduled")
                        .filter(|c| c["status"] == "False")
                        .and_then(|c| c["message"].as_str())
                        .unwrap_or(phase);
                    ("Progressing", why.to_string())
                }
            }
        }
        _ => ("Healthy", String::new()),
    }
}

/// The health of each object the applied revision declares.
pub fn report(status: &Value, applied: &Value) -> Vec<Health> {
    let items = applied["items"].as_array().cloned().unwrap_or_default();
    let find = |kind: &str, ns: &str, name: &str| {
        items.iter().find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"] == name
                && o["metadata"]["namespace"].as_str().unwrap_or("") == ns
        })
    };
    status["declared"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            let (kind, ns, name) = (
                k["kind"].as_str().unwrap_or(""),
                k["namespace"].as_str().unwrap_or(""),
                k["name"].as_str().unwrap_or(""),
            );
            let (health, message) = match find(kind, ns, name) {
                Some(o) => health(o),
                None => ("Missing", "declared in git, not in the cluster".to_string()),
            };
            Health {
                kind: kind.into(),
                namespace: ns.into(),
                name: name.into(),
                health,
                message,
            }
        })
        .collect()
}

fn render(status: &Value, report: &[Health]) -> String {
    let short = |v: &Value| v.as_str().map(|c| c.chars().take(7).collect::<String>());
    let mut out = format!(
        "Repository: {} ({})\nSynced:     {}\n",
        status["repo"].as_str().unwrap_or(""),
        status["branch"].as_str().unwrap_or(""),
        short(&status["applied_commit"]).unwrap_or_else(|| "nothing yet".into()),
    );
    if let Some(last) = short(&status["last_commit"])
        && status["last_result"] == "failed"
    {
        out.push_str(&format!(
            "Last try:   {last} failed: {}\n",
            status["last_error"]
                .as_str()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
        ));
    }
    if let Some(e) = status["fetch_error"].as_str() {
        out.push_str(&format!("Fetching:   failing: {e}\n"));
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = report
        .iter()
        .map(|h| {
            vec![
                h.kind.clone(),
                h.namespace.clone(),
                h.name.clone(),
                h.health.to_string(),
                h.message.clone(),
            ]
        })
        .collect();
    out.push_str(&super::table::render(
        &["KIND", "NAMESPACE", "NAME", "HEALTH", "MESSAGE"],
        &rows,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn health_follows_what_runs() {
        let status = json!({"declared": [
            {"kind": "Deployment", "namespace": "default", "name": "web"},
            {"kind": "Deployment", "namespace": "default", "name": "api"},
            {"kind": "Pod", "namespace": "default", "name": "crashy"},
            {"kind": "ConfigMap", "namespace": "default", "name": "gone"}]});
        let applied = json!({"items": [
            {"kind": "Deployment", "metadata": {"name": "web", "namespace": "default", "generation": 2},
             "spec": {"replicas": 3},
             "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}},
            {"kind": "Deployment", "metadata": {"name": "api", "namespace": "default", "generation": 2},
             "spec": {"replicas": 3},
             "status": {"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3}},
            {"kind": "Pod", "metadata": {"name": "crashy", "namespace": "default"},
             "status": {"phase": "Running", "containerStatuses": [
                 {"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}]});
        let r = report(&status, &applied);
        let h: Vec<&str> = r.iter().map(|h| h.health).collect();
        assert_eq!(h, ["Healthy", "Progressing", "Degraded", "Missing"]);
        assert_eq!(r[1].message, "3/3 available, 1 updated");
    }
}
