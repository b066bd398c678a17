//! A plan as text (terminal), markdown (a pull request comment) or JSON (tools).

use std::fmt::Write;

use keel_schema::ManifestError;
use serde_json::{Value, json};

use super::diff::{Action, Change};
use super::display::unified;
use super::summary::summarize;

/// Two revisions and what changes between them.
pub struct Plan {
    pub from: String,
    pub to: String,
    pub changes: Vec<Change>,
    /// Problems in the `to` revision (a plan with errors would apply nothing).
    pub errors: Vec<ManifestError>,
}

fn label(c: &Change) -> String {
    let o = c.object();
    if o.info().namespaced {
        format!("{} {}/{}", o.kind(), o.namespace(), o.name())
    } else {
        format!("{} {}", o.kind(), o.name())
    }
}

fn file_label(c: &Change) -> String {
    let o = c.object();
    format!(
        "{}/{}/{}",
        o.kind(),
        if o.namespace().is_empty() {
            "-"
        } else {
            o.namespace()
        },
        o.name()
    )
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
        return out;
    }
    let _ = writeln!(
        out,
        "Plan {} → {}: {c} to create, {u} to update, {d} to delete.\n",
        plan.from, plan.to
    );
    for ch in &plan.changes {
        let _ = writeln!(
            out,
            "  {} {}: {}",
            sign(ch.action),
            label(ch),
            summarize(ch)
        );
    }
    for ch in &plan.changes {
        let _ = writeln!(
            out,
            "\n{}",
            unified(ch.old.as_ref(), ch.new.as_ref(), &file_label(ch))
        );
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
        return out;
    }
    let (c, u, d) = counts(plan);
    let _ = writeln!(
        out,
        "**{c}** to create, **{u}** to update, **{d}** to delete.\n"
    );
    let _ = writeln!(out, "| Action | Kind | Namespace | Name | Effect |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for ch in &plan.changes {
        let o = ch.object();
        let cell = |s: &str| s.replace('|', "\\|");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            ch.action.verb(),
            o.kind(),
            if o.namespace().is_empty() {
                "—"
            } else {
                o.namespace()
            },
            cell(o.name()),
            cell(&summarize(ch))
        );
    }
    for ch in &plan.changes {
        let _ = writeln!(
            out,
            "\n<details><summary>{} ({})</summary>\n",
            label(ch),
            ch.action.verb()
        );
        let _ = writeln!(
            out,
            "```diff\n{}```\n</details>",
            unified(ch.old.as_ref(), ch.new.as_ref(), &file_label(ch))
        );
    }
    out
}

pub fn json(plan: &Plan) -> Value {
    let changes: Vec<Value> = plan
        .changes
        .iter()
        .map(|ch| {
            let o = ch.object();
            json!({
                "action": ch.action,
                "kind": o.kind(),
                "namespace": o.namespace(),
                "name": o.name(),
                "summary": summarize(ch),
                "diff": unified(ch.old.as_ref(), ch.new.as_ref(), &file_label(ch)),
            })
        })
        .collect();
    json!({
        "from": plan.from,
        "to": plan.to,
        "changes": changes,
        "errors": plan.errors,
    })
}
