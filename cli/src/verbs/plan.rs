//! `keel plan`: what a change to the repository will do, before it merges.

use clap::ValueEnum;

use keel_api::plan::{PlanReport, PlanRequest};
use keel_reconciler::plan::diff;
use keel_reconciler::plan::render::{self, Plan};
use keel_reconciler::plan::rules::apply_rules;
use keel_reconciler::source::{AppsLoad, RepoTree};
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
    if args.server.is_none() {
        let everything = |_: &keel_schema::load::apps::AppSpec, _: &str| true;
        let to = repo.load_apps(&args.to, args.path.as_deref(), &|_| Vec::new(), &everything)?;
        let named = to.apps.iter().any(|a| a.spec.name.is_some());
        if let Some(app) = &args.app
            && !to.apps.iter().any(|a| a.spec.label() == app)
        {
            let names: Vec<&str> = to.apps.iter().map(|a| a.spec.label()).collect();
            anyhow::bail!(
                "no app {app:?} in {}; the apps are {}",
                to.commit.short,
                names.join(", ")
            );
        }
        if named && to.config_errors.is_empty() {
            return plan_apps(args, &repo, &to);
        }
    }
    let (to_info, to_rev) = repo.load(&args.to, args.path.as_deref())?;
    let errors = to_rev.errors.clone();
    let kustomizations = to_rev.kustomizations.clone();
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
        (
            args.from.clone().unwrap_or_else(|| "cluster".into()),
            Vec::new(),
        )
    } else if let Some(server) = &args.server {
        let answer = plan_against_server(server, &new, allow_empty)?;
        notes = answer.notes;
        if new.iter().any(|o| matches!(o, Object::Secret(_))) {
            notes.push("Secret values are not compared against a server (only their keys are); plan between two revisions to see changed values".to_string());
        }
        refused = answer.refused;
        (answer.from, answer.changes)
    } else {
        let from = args.from.as_deref().unwrap_or("HEAD");
        let (from_info, from_rev) = repo.load(from, args.path.as_deref())?;
        if !from_rev.is_valid() {
            notes.push(format!(
                "the base revision {} is itself invalid ({} errors): objects in its broken files are not counted",
                from_info.short,
                from_rev.errors.len()
            ));
        }
        let changed = repo.changed_files(from, &args.to)?;
        notes.extend(reached_notes(
            &from_rev.kustomizations,
            &kustomizations,
            &changed,
        ));
        let old: Vec<_> = from_rev
            .manifests
            .into_iter()
            .map(|m| m.object)
            .filter(desired)
            .collect();
        let mut new = new;
        notes.extend(keel_reconciler::plan::autoscaled::leave_to_autoscalers(
            &old, &mut new,
        ));
        let mut changes = diff(&old, &new);
        let verdict = apply_rules(&old, &mut changes, allow_empty);
        notes.extend(verdict.notes);
        refused = verdict.refused;
        (from_info.short, render::rows(&changes))
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

/// A plan between two revisions of a repository of apps: app by app, as the server applies.
fn plan_apps(args: &Args, repo: &RepoTree, to: &AppsLoad) -> anyhow::Result<i32> {
    let from_rev = args.from.as_deref().unwrap_or("HEAD");
    let everything = |_: &keel_schema::load::apps::AppSpec, _: &str| true;
    let from = repo.load_apps(from_rev, args.path.as_deref(), &|_| Vec::new(), &everything)?;
    let mut notes = Vec::new();
    if !from.config_errors.is_empty() {
        notes.push(format!(
            "the base revision {}'s keel.yaml is itself invalid: its objects are not counted, so everything shows as created",
            from.commit.short
        ));
    }
    let changed = repo.changed_files(from_rev, &args.to)?;
    let roots = |load: &AppsLoad| -> Vec<keel_schema::kustomize::Root> {
        load.apps
            .iter()
            .filter_map(|a| a.revision.as_ref())
            .flat_map(|r| r.kustomizations.iter().cloned())
            .collect()
    };
    notes.extend(reached_notes(&roots(&from), &roots(to), &changed));
    let planned = keel_reconciler::plan::apps::plan_apps(&from, to, args.app.as_deref());
    notes.extend(planned.notes);
    let plan = Plan {
        from: from.commit.short.clone(),
        to: to.commit.short.clone(),
        changes: planned.changes,
        errors: Vec::new(),
        notes,
    };
    show(&plan, args.format, planned.invalid || planned.refused)
}

/// For each kustomization a change reaches through a file it shares with others (a base, a
/// component), a note naming it: a reviewer of a base change sees every overlay it lands in.
fn reached_notes(
    before: &[keel_schema::kustomize::Root],
    after: &[keel_schema::kustomize::Root],
    changed: &[String],
) -> Vec<String> {
    use std::collections::BTreeMap;
    // A changed file, and the kustomizations that read it (before or after the change).
    let mut readers: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for roots in [before, after] {
        for (dir, files) in keel_schema::kustomize::reached(roots, changed) {
            for f in files {
                readers.entry(f).or_default().insert(dir);
            }
        }
    }
    // Files read by one kustomization of their own folder are no news; shared ones are.
    readers.retain(|file, dirs| {
        dirs.len() > 1
            || dirs
                .iter()
                .any(|d| !(d.is_empty() || file.starts_with(&format!("{d}/"))))
    });
    // One note per set of kustomizations reached, naming the files that reach them.
    let mut by_dirs: BTreeMap<Vec<&str>, Vec<&str>> = BTreeMap::new();
    for (file, dirs) in readers {
        by_dirs
            .entry(dirs.into_iter().collect())
            .or_default()
            .push(file);
    }
    by_dirs
        .into_iter()
        .map(|(dirs, files)| {
            let shown: Vec<String> = dirs
                .iter()
                .map(|d| {
                    if d.is_empty() {
                        ".".to_string()
                    } else {
                        d.to_string()
                    }
                })
                .collect();
            format!(
                "{} reaches {} kustomization{}: {}",
                files.join(", "),
                dirs.len(),
                if dirs.len() == 1 { "" } else { "s" },
                shown.join(", ")
            )
        })
        .collect()
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
