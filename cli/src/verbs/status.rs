//! `keel status`: the synced revision, and the health of every object it declares, as Argo
//! CD shows an application: Healthy, Progressing, Degraded or Missing.

use std::collections::HashMap;

use keel_api::status::SyncStatus;
use keel_schema::{Kind, Object, ObjectKey, SyncResult};
use serde::Serialize;

use super::ServerArg;
use crate::credentials::{connect, explain};
use crate::output::{TableOrJson, out, runtime};
use keel_api::health::{Health, health};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArg,
    #[arg(short = 'o', long, value_enum, default_value_t = TableOrJson::Table)]
    pub output: TableOrJson,
    /// Only this app of the repository (keel.yaml `apps:`; `(root)` for the files under no
    /// app's folder): its objects, and an exit code for it alone.
    #[arg(long)]
    pub app: Option<String>,
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
            UNREACHABLE
        }
        Ok((_, Err(e))) => {
            eprintln!("{}", explain(&e, server));
            UNREACHABLE
        }
        Ok((status, Ok(applied))) => {
            let status = match only_app(status, args.app.as_deref()) {
                Ok(status) => status,
                Err(e) => {
                    eprintln!("keel status: {e}");
                    return UNREACHABLE;
                }
            };
            let report = report(&status, &applied);
            if args.output == TableOrJson::Json {
                out(&(serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"));
            } else {
                out(&render(&status, &report));
            }
            exit_code(&status, &report)
        }
        Err(e) => {
            eprintln!("{}", explain(&e, server));
            UNREACHABLE
        }
    }
}

/// The status narrowed to one app: its commits, result and objects in the top-level fields,
/// and it alone in `apps`.
fn only_app(mut status: SyncStatus, app: Option<&str>) -> Result<SyncStatus, String> {
    let Some(name) = app else {
        return Ok(status);
    };
    let Some(found) = status.apps.iter().find(|a| a.name == name).cloned() else {
        let known: Vec<&str> = status.apps.iter().map(|a| a.name.as_str()).collect();
        return Err(if known.is_empty() {
            format!("no app {name:?}: the repository's keel.yaml lists no apps")
        } else {
            format!("no app {name:?}; the apps are {}", known.join(", "))
        });
    };
    // The branch's tip counts only once the loop has read it: until then the app may be
    // about to change. A tip that failed as a whole is no app's.
    let tip_read =
        (status.tip.is_none() || status.tip == status.last_commit) && !status.failed_whole;
    let branch_tip = status.tip.clone().or(status.last_commit.clone());
    status.applied_commit.clone_from(&found.applied_commit);
    status.last_commit.clone_from(&found.last_commit);
    status.last_result = found.last_result;
    status.last_error.clone_from(&found.last_error);
    status.last_sync = found.last_sync;
    status.declared.clone_from(&found.declared);
    status.tip = if tip_read {
        found.last_commit.clone()
    } else {
        branch_tip
    };
    status.apps = vec![found];
    Ok(status)
}

/// Everything declared is Healthy (or Unknown) and the branch's tip is what runs.
pub const IN_SYNC: i32 = 0;
/// The tip runs, but not everything it declares is Healthy.
pub const UNHEALTHY: i32 = 1;
/// The server cannot be asked (or cannot read what it applied).
pub const UNREACHABLE: i32 = 2;
/// The branch's tip is not what runs: it failed or was refused, is not applied yet, or the
/// server cannot read the branch to know.
pub const NOT_AT_TIP: i32 = 3;

/// What `keel status` exits with, for scripts and CI.
pub fn exit_code(status: &SyncStatus, report: &[ObjectHealth]) -> i32 {
    if !at_tip(status) {
        NOT_AT_TIP
    } else if report.iter().any(|r| r.health.is_trouble()) {
        UNHEALTHY
    } else {
        IN_SYNC
    }
}

/// Whether the branch's tip (as last read, or else as last tried) is the applied commit.
fn at_tip(status: &SyncStatus) -> bool {
    let Some(applied) = status.applied_commit.as_deref() else {
        return false;
    };
    let tip = status.tip.as_deref().or(status.last_commit.as_deref());
    status.fetch_error.is_none() && tip.is_none_or(|t| t == applied)
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
    if let Some(tip) = short(&status.tip)
        .filter(|_| status.tip != status.applied_commit && status.tip != status.last_commit)
    {
        out.push_str(&format!("Tip:        {tip}, not applied yet\n"));
    }
    if let Some(e) = &status.fetch_error {
        out.push_str(&format!("Fetching:   failing: {e}\n"));
    }
    if let Some(cp) = &status.control_plane {
        out.push_str(&format!("Server:     {}\n", server_line(cp)));
    }
    if !status.cordoned.is_empty() {
        out.push_str(&format!(
            "Cordoned:   {} (no new pods are scheduled there; kubectl uncordon NODE)\n",
            status.cordoned.join(", ")
        ));
    }
    out.push('\n');
    if !status.apps.is_empty() {
        let rows: Vec<Vec<String>> = status
            .apps
            .iter()
            .map(|a| {
                let result = a.last_result.map(|r| r.to_string()).unwrap_or_default();
                let state = if a.at_tip() {
                    "Synced".to_string()
                } else if a.applied_commit.is_some() {
                    "OutOfSync".to_string()
                } else {
                    "NotApplied".to_string()
                };
                let error = a.last_error.as_deref().unwrap_or("");
                vec![
                    a.name.clone(),
                    a.path.clone(),
                    state,
                    short(&a.applied_commit).unwrap_or_else(|| "-".into()),
                    format!(
                        "{} {result}",
                        short(&a.last_commit).unwrap_or_else(|| "-".into())
                    ),
                    error.lines().next().unwrap_or("").to_string(),
                ]
            })
            .collect();
        out.push_str(&crate::table::render(
            &["APP", "PATH", "SYNC", "SYNCED", "LAST TRY", "ERROR"],
            &rows,
        ));
        out.push('\n');
    }
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

    #[test]
    fn the_exit_code_says_whether_the_tip_runs_and_is_healthy() {
        let healthy = |health| ObjectHealth {
            kind: Kind::ConfigMap,
            namespace: "default".into(),
            name: "c".into(),
            health,
            message: String::new(),
        };
        let at = |applied: Option<&str>, tip: Option<&str>, last: Option<&str>| SyncStatus {
            applied_commit: applied.map(str::to_string),
            tip: tip.map(str::to_string),
            last_commit: last.map(str::to_string),
            ..Default::default()
        };
        let fine = [healthy(Health::Healthy), healthy(Health::Unknown)];
        let a = Some("a");
        assert_eq!(exit_code(&at(a, a, a), &fine), IN_SYNC);
        assert_eq!(
            exit_code(&at(a, a, a), &[healthy(Health::Progressing)]),
            UNHEALTHY
        );
        // A tip that failed, one not tried yet, nothing applied, a branch that cannot be read.
        assert_eq!(exit_code(&at(a, Some("b"), Some("b")), &fine), NOT_AT_TIP);
        assert_eq!(exit_code(&at(a, Some("b"), a), &fine), NOT_AT_TIP);
        assert_eq!(exit_code(&at(None, a, None), &[]), NOT_AT_TIP);
        let mut unreadable = at(a, a, a);
        unreadable.fetch_error = Some("remote unreachable".into());
        assert_eq!(exit_code(&unreadable, &fine), NOT_AT_TIP);
        // A server that restarted knows what it applied before it reads the branch again.
        assert_eq!(exit_code(&at(a, None, None), &fine), IN_SYNC);
        assert!(render(&at(a, Some("b"), a), &[]).contains("Tip:        b, not applied yet"));
    }

    #[test]
    fn one_app_is_judged_by_its_own_last_commit() {
        use keel_api::status::AppStatus;
        let app = |name: &str, applied: &str, last: &str, result| AppStatus {
            name: name.into(),
            path: format!("apps/{name}"),
            applied_commit: Some(applied.into()),
            last_commit: Some(last.into()),
            last_result: Some(result),
            ..Default::default()
        };
        let status = SyncStatus {
            applied_commit: Some("a".into()),
            tip: Some("c".into()),
            last_commit: Some("c".into()),
            last_result: Some(SyncResult::Failed),
            apps: vec![
                // web was last changed at b and runs it; api failed at c.
                app("web", "b", "b", SyncResult::Applied),
                app("api", "a", "c", SyncResult::Failed),
            ],
            ..Default::default()
        };
        assert_eq!(exit_code(&status, &[]), NOT_AT_TIP);
        let web = only_app(status.clone(), Some("web")).unwrap();
        assert_eq!(exit_code(&web, &[]), IN_SYNC);
        let api = only_app(status.clone(), Some("api")).unwrap();
        assert_eq!(exit_code(&api, &[]), NOT_AT_TIP);
        let unknown = only_app(status.clone(), Some("db")).unwrap_err();
        assert!(unknown.contains("the apps are web, api"), "{unknown}");
        let text = render(&status, &[]);
        assert!(text.contains("APP"), "{text}");
        assert!(text.contains("OutOfSync"), "{text}");
        // A tip the loop has not read yet: no app is known to run it.
        let mut moving = status;
        moving.tip = Some("d".into());
        let web = only_app(moving, Some("web")).unwrap();
        assert_eq!(exit_code(&web, &[]), NOT_AT_TIP);
        // A tip whose keel.yaml is broken is no app's: none runs it.
        let whole = SyncStatus {
            tip: None,
            last_commit: Some("d".into()),
            failed_whole: true,
            apps: vec![app("web", "b", "b", SyncResult::Applied)],
            ..Default::default()
        };
        let web = only_app(whole, Some("web")).unwrap();
        assert_eq!(exit_code(&web, &[]), NOT_AT_TIP);
    }
}
