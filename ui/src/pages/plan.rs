//! Plans in the browser: the diff between two commits (from History), and the plan of a
//! branch or commit against the running one (a pull request reviewer's view). Both come
//! from the same plan engine as `keel plan`, rollout summaries included.

use keel_api::plan::{Action, PlanRow};
use maud::{Markup, html};

use crate::Viewer;
use crate::layout::{Section, page};

/// A plan as the page shows it.
#[derive(Debug, Clone, Default)]
pub struct PlanView {
    pub from: String,
    pub to: String,
    pub changes: Vec<PlanRow>,
    /// The `to` revision's errors, located (a plan with errors applies nothing).
    pub errors: Vec<String>,
    pub notes: Vec<String>,
}

/// The diff page between two commits.
pub fn diff(viewer: &Viewer, plan: &Result<PlanView, String>) -> Markup {
    page(
        "Diff",
        Section::History,
        "diff",
        viewer,
        html! {
            h1 { "Diff" }
            (result(plan))
        },
    )
}

/// The branch plan page: a form (branches to pick, or a commit), and the plan when asked.
pub fn branch(
    viewer: &Viewer,
    branches: &[String],
    asked: Option<&str>,
    plan: Option<&Result<PlanView, String>>,
) -> Markup {
    page(
        "Plan a branch",
        Section::Plan,
        "plan",
        viewer,
        html! {
            h1 { "Plan a branch" }
            p { "What merging a branch (or running a commit) would change in the cluster, against the commit running now." }
            form.inline method="get" action="/ui/plan" #plan-form {
                label { "Branch "
                    select name="branch" {
                        option value="" { "—" }
                        @for b in branches { option value=(b) selected[asked == Some(b.as_str())] { (b) } }
                    }
                }
                label { "or commit " input type="text" name="commit" placeholder="a1b2c3d" autocomplete="off"
                    value=(asked.filter(|a| !branches.iter().any(|b| b == a)).unwrap_or("")); }
                button type="submit" { "Plan" }
            }
            @if let Some(plan) = plan { (result(plan)) }
        },
    )
}

fn result(plan: &Result<PlanView, String>) -> Markup {
    let plan = match plan {
        Ok(p) => p,
        Err(e) => return html! { pre.error role="alert" { (e) } },
    };
    let n = |a: Action| plan.changes.iter().filter(|c| c.action == a).count();
    html! {
        section #plan aria-labelledby="plan-h" {
            h2 #plan-h { code { (plan.from) } " → " code { (plan.to) } }
            @if !plan.errors.is_empty() {
                p.error { "This revision is invalid: it would not be applied. " (plan.errors.len()) " error(s):" }
                pre.error role="alert" { @for e in &plan.errors { (e) "\n" } }
            }
            p #plan-counts {
                @if plan.changes.is_empty() && plan.errors.is_empty() { "No changes." } @else {
                    (n(Action::Create)) " to create, " (n(Action::Update)) " to update, " (n(Action::Delete)) " to delete."
                }
            }
            @for note in &plan.notes { p.note { (note) } }
            @if !plan.changes.is_empty() {
                ul.changes {
                    @for c in &plan.changes {
                        li class={ "change " (c.action.verb()) } {
                            details {
                                summary {
                                    span.verb { (c.action.verb()) } " "
                                    @if let Some(app) = &c.app { (app) ": " }
                                    (c.kind) " " @if !c.namespace.is_empty() { (c.namespace) "/" } (c.name)
                                    @if !c.summary.is_empty() { " — " span.summary { (c.summary) } }
                                }
                                (crate::diff::unified(&c.diff))
                            }
                        }
                    }
                }
            }
        }
    }
}
