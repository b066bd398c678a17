//! A plan as text (terminal), markdown (a pull request comment) or JSON (tools).

use std::fmt::Write;

use keel_schema::ManifestError;

use serde_json::{Value, json};

use super::diff::{Action, Change};
use super::display::unified;
use super::summary::summarize;

pub use keel_api::plan::PlanRow as Row;

/// The rows of a list of changes.
pub fn rows(changes: &[Change]) -> Vec<Row> {
    changes
        .iter()
        .map(|ch| {
            let o = ch.object();
            let ns = if o.namespace().is_empty() {
                "-"
            } else {
                o.namespace()
            };
            let file = format!("{}/{ns}/{}", o.kind(), o.name());
            Row {
                action: ch.action,
                kind: o.kind(),
                namespace: o.namespace().to_string(),
                name: o.name().to_string(),
                summary: summarize(ch),
                diff: unified(ch.old.as_ref(), ch.new.as_ref(), &file),
                app: None,
            }
        })
        .collect()
}

/// Two revisions (or the cluster and a revision) and what changes between them.
pub struct Plan {
    pub from: String,
    pub to: String,
    pub changes: Vec<Row>,
    /// Problems in the `to` revision (a plan with errors would apply nothing).
    pub errors: Vec<ManifestError>,
    /// What else a reviewer should know: objects kept from pruning, a refusal, a broken base.
    pub notes: Vec<String>,
}

fn label(r: &Row) -> String {
    let app = r
        .app
        .as_deref()
        .map(|a| format!("{a}: "))
        .unwrap_or_default();
    if r.namespace.is_empty() {
        format!("{app}{} {}", r.kind, r.name)
    } else {
        format!("{app}{} {}/{}", r.kind, r.namespace, r.name)
    }
}

fn counts(plan: &Plan) -> (usize, usize, usize) {
    let n = |a: Action| plan.changes.iter().filter(|c| c.action == a).count();
    (n(Action::Create), n(Action::Update), n(Action::Delete))
}

fn sign(a: Action) -> char {
    match a {
        Action::Create => '+',
        Action::Update => '~',
        Action::Delete => '-',
    }
}

pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    if !plan.errors.is_empty() {
        let _ = writeln!(
            out,
            "Revision {} is invalid; applying it would change nothing:",
            plan.to
        );
        for e in &plan.errors {
            let _ = writeln!(out, "  {e}");
        }
        return out;
    }
    let (c, u, d) = counts(plan);
    if plan.changes.is_empty() {
        let _ = writeln!(out, "Plan {} → {}: no changes.", plan.from, plan.to);
        for note in &plan.notes {
            let _ = writeln!(out, "  Note: {note}");
        }
        return out;
    }
    let _ = writeln!(
        out,
        "Plan {} → {}: {c} to create, {u} to update, {d} to delete.\n",
        plan.from, plan.to
    );
    for note in &plan.notes {
        let _ = writeln!(out, "  Note: {note}");
    }
    for ch in &plan.changes {
        let _ = writeln!(out, "  {} {}: {}", sign(ch.action), label(ch), ch.summary);
    }
    for ch in &plan.changes {
        let _ = writeln!(out, "\n{}", ch.diff);
    }
    out
}

pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### keel plan `{}` → `{}`\n", plan.from, plan.to);
    if !plan.errors.is_empty() {
        let _ = writeln!(
            out,
            ":x: **The new revision is invalid**; keel would apply nothing:\n"
        );
        let _ = writeln!(out, "```");
        for e in &plan.errors {
            let _ = writeln!(out, "{e}");
        }
        let _ = writeln!(out, "```");
        return out;
    }
    if plan.changes.is_empty() {
        let _ = writeln!(out, "No changes.");
        for note in &plan.notes {
            let _ = writeln!(out, "\n> **Note:** {note}");
        }
        return out;
    }
    let (c, u, d) = counts(plan);
    let _ = writeln!(
        out,
        "**{c}** to create, **{u}** to update, **{d}** to delete.\n"
    );
    for note in &plan.notes {
        let _ = writeln!(out, "> **Note:** {note}\n");
    }
    // An App column only for a repository of apps.
    let apps = plan.changes.iter().any(|c| c.app.is_some());
    let (app_head, app_rule) = if apps { ("App | ", "---|") } else { ("", "") };
    let _ = writeln!(
        out,
        "| {app_head}Action | Kind | Namespace | Name | Effect |"
    );
    let _ = writeln!(out, "|{app_rule}---|---|---|---|---|");
    let cell = |s: &str| s.replace('|', "\\|");
    for ch in &plan.changes {
        if apps {
            let _ = write!(out, "| {} ", cell(ch.app.as_deref().unwrap_or("")));
        }
        let namespace = if ch.namespace.is_empty() {
            "—"
        } else {
            ch.namespace.as_str()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            ch.action.verb(),
            ch.kind,
            namespace,
            cell(&ch.name),
            cell(&ch.summary)
        );
    }
    for ch in &plan.changes {
        let _ = writeln!(
            out,
            "\n<details><summary>{} ({})</summary>\n",
            label(ch),
            ch.action.verb()
        );
        let _ = writeln!(out, "```diff\n{}```\n</details>", ch.diff);
    }
    out
}

pub fn json(plan: &Plan) -> Value {
    json!({
        "from": plan.from,
        "to": plan.to,
        "changes": plan.changes,
        "errors": plan.errors,
        "notes": plan.notes,
    })
}
