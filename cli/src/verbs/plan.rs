//! `keel plan`: what a change to the repository will do, before it merges.

use clap::ValueEnum;

use keel_api::plan::{PlanReport, PlanRequest};
use keel_reconciler::plan::render::{self, Plan};
use keel_reconciler::source::RepoTree;
use keel_schema::Object;

use crate::credentials::{connect, explain};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    /// A summary table and a collapsible diff per object, to paste as a PR comment.
    Markdown,
    /// `{from, to, changes: [{action, kind, namespace, name, summary, diff}], errors}`.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository: a working copy, a bare repo, or a file:// URL.
    #[arg(long, default_value = ".")]
    pub repo: String,
    /// The revision the change starts from (a branch, tag or commit).
    #[arg(long, required_unless_present = "server", conflicts_with = "server")]
    pub from: Option<String>,
    /// Compare against what a running keel server has applied now, instead of --from.
    #[arg(long)]
    pub server: Option<String>,
    /// The revision the change leads to.
    #[arg(long, default_value = "HEAD")]
    pub to: String,
    /// Only manifests under this folder of the repository.
    #[arg(long)]
    pub path: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Only this app of the repository (keel.yaml `apps:`; `(root)` for the files under no
    /// app's folder).
    #[arg(long, conflicts_with = "server")]
    pub app: Option<String>,
    #[command(flatten)]
    pub sops: super::SopsArg,
}

/// Exit status: 0 no changes, 2 changes (for CI gates), 1 invalid `--to` or another error.
pub const EXIT_NO_CHANGES: i32 = 0;
pub const EXIT_INVALID: i32 = 1;
pub const EXIT_CHANGES: i32 = 2;

pub fn run(args: &Args) -> i32 {
    match plan(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keel plan: {e}");
            EXIT_INVALID
        }
    }
}

fn plan(args: &Args) -> anyhow::Result<i32> {
    let keys = args.sops.keys()?;
    let decrypt = keys.map(|k| k as std::sync::Arc<dyn keel_schema::encrypted::Decrypt>);
    let repo = RepoTree::open(&args.repo)?.with_decrypt(decrypt);
    let Some(server) = &args.server else {
        let from = args.from.as_deref().unwrap_or("HEAD");
        let planned = keel_reconciler::plan::revisions::between(
            &repo,
            from,
            &args.to,
            args.path.as_deref(),
            args.app.as_deref(),
        )?;
        return show(&planned.plan, args.format, planned.invalid);
    };
    let (to_info, to_rev) = repo.load(&args.to, args.path.as_deref())?;
    let errors = to_rev.errors.clone();
    // Hooks and objects marked Skip are not desired state: they are neither created nor kept.
    let desired = |o: &Object| keel_schema::ordering::is_desired(o);
    let new: Vec<_> = to_rev
        .manifests
        .into_iter()
        .map(|m| m.object)
        .filter(desired)
        .collect();
    let allow_empty = to_rev.config.allow_empty();
    let mut notes = Vec::new();
    let mut refused = false;
    let (from, changes) = if !errors.is_empty() {
        ("cluster".to_string(), Vec::new())
    } else {
        let answer = plan_against_server(server, &new, allow_empty)?;
        notes = answer.notes;
        if new.iter().any(|o| matches!(o, Object::Secret(_))) {
            notes.push("Secret values are not compared against a server (only their keys are); plan between two revisions to see changed values".to_string());
        }
        refused = answer.refused;
        (answer.from, answer.changes)
    };
    let plan = Plan {
        from,
        to: to_info.short,
        changes,
        errors,
        notes,
    };
    show(&plan, args.format, !plan.errors.is_empty() || refused)
}

/// Prints `plan` in `format`; the exit status (`invalid`: it would not apply whole).
fn show(plan: &Plan, format: Format, invalid: bool) -> anyhow::Result<i32> {
    let output = match format {
        Format::Text => render::text(plan),
        Format::Markdown => render::markdown(plan),
        Format::Json => serde_json::to_string_pretty(&render::json(plan))? + "\n",
    };
    crate::output::out(&output);
    Ok(if invalid {
        EXIT_INVALID
    } else if plan.changes.is_empty() {
        EXIT_NO_CHANGES
    } else {
        EXIT_CHANGES
    })
}

/// Asks the server to diff `desired` against what it has applied. Objects go to the server
/// without Secret values (those are compared by key only); redacted rows come back.
fn plan_against_server(
    server: &str,
    desired: &[Object],
    allow_empty: bool,
) -> anyhow::Result<PlanReport> {
    // Secret values stay here: the server compares Secrets by key only.
    let objects: Vec<Object> = desired
        .iter()
        .map(|o| {
            let mut o = o.clone();
            if let Object::Secret(s) = &mut o {
                if let Some(data) = s.data.as_mut() {
                    for v in data.0.values_mut() {
                        v.clear();
                    }
                }
                s.string_data = None;
            }
            o
        })
        .collect();
    let request = PlanRequest {
        objects,
        allow_empty,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = connect(server).map_err(|e| anyhow::anyhow!(explain(&e, server)))?;
    runtime
        .block_on(client.plan(&request))
        .map_err(|e| anyhow::anyhow!(explain(&e, server)))
}
