//! `keel status`: the synced revision, and the health of every object it declares, as Argo
//! CD shows an application: Healthy, Progressing, Degraded or Missing.

use std::collections::HashMap;

use keel_api::status::SyncStatus;
use keel_schema::{Kind, Object, ObjectKey, SyncResult};
use serde::Serialize;

use super::ServerArg;
use crate::credentials::{connect, explain};
use crate::health::{Health, health};
use crate::output::{TableOrJson, out, runtime};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArg,
    #[arg(short = 'o', long, value_enum, default_value_t = TableOrJson::Table)]
    pub output: TableOrJson,
}

pub fn run(args: &Args) -> i32 {
    let Some(runtime) = runtime("status") else {
        return 1;
    };
    let server = &args.server.server;
    let fetched = connect(server).and_then(|client| {
        runtime.block_on(async { Ok((client.status().await?, client.applied().await)) })
    });
    match fetched {
        // The store cannot be read (etcd without quorum, say): what the server knows of
        // the sync and the leadership still helps, with the reason the objects are missing.
        Ok((status, Err(e))) if args.output != TableOrJson::Json => {
            let mut text = render(&status, &[]);
            text.push_str(&format!(
                "cannot read the applied objects: {}\n",
                explain(&e, server)
            ));
            out(&text);
            2
        }
        Ok((_, Err(e))) => {
            eprintln!("{}", explain(&e, server));
            2
        }
        Ok((status, Ok(applied))) => {
            let report = report(&status, &applied);
            if args.output == TableOrJson::Json {
                out(&(serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"));
            } else {
                out(&render(&status, &report));
            }
            // Exit 0 only when everything declared is Healthy, or Unknown (for scripts and
            // CI).
            i32::from(report.iter().any(|r| r.health.is_trouble()))
        }
        Err(e) => {
            eprintln!("{}", explain(&e, server));
            2
        }
    }
}

/// One declared object's health, as `-o json` prints it.
#[derive(Debug, Serialize)]
pub struct ObjectHealth {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub health: Health,
    pub message: String,
}

/// The health of each object the applied revision declares.
pub fn report(status: &SyncStatus, applied: &[Object]) -> Vec<ObjectHealth> {
    let by_key: HashMap<ObjectKey, &Object> =
        applied.iter().map(|o| (ObjectKey::of(o), o)).collect();
    status
        .declared
        .iter()
        .map(|key| {
            let found = by_key.get(key).copied();
            let (health, message) = match found {
                Some(o) => health(o),
                None => (
                    Health::Missing,
                    "declared in git, not in the cluster".to_string(),
                ),
            };
            ObjectHealth {
                kind: key.kind,
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                health,
                message,
            }
        })
        .collect()
}

fn render(status: &SyncStatus, report: &[ObjectHealth]) -> String {
    let short = |c: &Option<String>| c.as_ref().map(|c| c.chars().take(7).collect::<String>());
    let mut out = format!(
        "Repository: {} ({})\nSynced:     {}\n",
        status.repo,
        status.branch,
        short(&status.applied_commit).unwrap_or_else(|| "nothing yet".into()),
    );
    if let Some(last) = short(&status.last_commit)
        && status.last_result == Some(SyncResult::Failed)
    {
        out.push_str(&format!(
            "Last try:   {last} failed: {}\n",
            status
                .last_error
                .as_deref()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
        ));
    }
    if let Some(e) = &status.fetch_error {
        out.push_str(&format!("Fetching:   failing: {e}\n"));
    }
    if let Some(cp) = &status.control_plane {
        out.push_str(&format!("Server:     {}\n", server_line(cp)));
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = report
        .iter()
        .map(|h| {
            vec![
                h.kind.to_string(),
                h.namespace.clone(),
                h.name.clone(),
                h.health.as_str().to_string(),
                h.message.clone(),
            ]
        })
        .collect();
    out.push_str(&crate::table::render(
        &["KIND", "NAMESPACE", "NAME", "HEALTH", "MESSAGE"],
        &rows,
    ));
    out
}

/// Which server answered and who leads: `HOST:PORT (leader, term 41, since …)` or
/// `HOST:PORT (follower; leader HOST:PORT, term 41)`.
fn server_line(cp: &keel_api::status::ServerRole) -> String {
    let term = cp.term.map(|t| format!(", term {t}")).unwrap_or_default();
    let since = cp
        .leader_since
        .map(|t| format!(", since {}", t.format("%Y-%m-%d %H:%M:%SZ")))
        .unwrap_or_default();
    let transitions = match cp.transitions {
        0 => String::new(),
        1 => "; 1 leadership change here".to_string(),
        n => format!("; {n} leadership changes here"),
    };
    match cp.role.as_str() {
        "sole" => format!("{} (the only server: embedded store)", cp.server),
        "leader" => format!("{} (leader{term}{since}{transitions})", cp.server),
        _ => {
            let leader = match (&cp.leader, &cp.error) {
                (Some(l), _) => format!("leader {l}{term}"),
                (None, Some(e)) => format!("no leader: {e}"),
                (None, None) => "no leader right now (election in progress)".into(),
            };
            format!("{} (follower; {leader}{transitions})", cp.server)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn health_follows_what_runs() {
        let key = |kind, name: &str| ObjectKey::new(kind, "default", name);
        let status = SyncStatus {
            declared: vec![
                key(Kind::Deployment, "web"),
                key(Kind::Deployment, "api"),
                key(Kind::Pod, "crashy"),
                key(Kind::ConfigMap, "gone"),
            ],
            ..Default::default()
        };
        let applied: Vec<Object> = serde_json::from_value(json!([
            {"kind": "Deployment", "metadata": {"name": "web", "namespace": "default", "generation": 2},
             "spec": {"replicas": 3},
             "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}},
            {"kind": "Deployment", "metadata": {"name": "api", "namespace": "default", "generation": 2},
             "spec": {"replicas": 3},
             "status": {"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3}},
            {"kind": "Pod", "metadata": {"name": "crashy", "namespace": "default"},
             "status": {"phase": "Running", "containerStatuses": [
                 {"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}]))
        .unwrap();
        let r = report(&status, &applied);
        let h: Vec<Health> = r.iter().map(|h| h.health).collect();
        assert_eq!(
            h,
            [
                Health::Healthy,
                Health::Progressing,
                Health::Degraded,
                Health::Missing
            ]
        );
        assert_eq!(r[1].message, "3/3 available, 1 updated");
    }
}
