//! The overview: which repository and branch, the commit running and who made it, how the
//! last try went (with its located error), and the health of each app. The script replaces
//! the live part whenever the server says something changed.

use keel_api::status::SyncStatus;
use keel_schema::SyncRecord;
use maud::{Markup, html};

use crate::layout::{Section, health_badge, page, time};
use crate::{Viewer, short};

/// The health kinds, in the order counts are shown.
pub const HEALTHS: [&str; 5] = ["Healthy", "Progressing", "Degraded", "Missing", "Unknown"];

/// One app's declared objects by health.
#[derive(Debug, Clone, Default)]
pub struct AppHealth {
    pub name: String,
    pub path: String,
    pub applied_commit: Option<String>,
    /// Per entry of [`HEALTHS`].
    pub counts: [usize; 5],
    /// Objects not Healthy (the first few): kind/namespace/name, health, why.
    pub trouble: Vec<Trouble>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Trouble {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub health: &'static str,
    pub why: String,
}

/// What the overview shows.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    pub status: SyncStatus,
    /// The history record of the applied commit (its message and author).
    pub applied: Option<SyncRecord>,
    /// The record of the last commit tried, when it is not the applied one.
    pub last_try: Option<SyncRecord>,
    pub apps: Vec<AppHealth>,
    pub nodes_ready: usize,
    pub nodes: usize,
    /// Pods by phase, in the order shown.
    pub pods: Vec<(String, usize)>,
}

pub fn overview(viewer: &Viewer, data: &Overview) -> Markup {
    page(
        "Overview",
        Section::Overview,
        "overview",
        viewer,
        html! {
            h1 { "Overview" }
            p.live-state aria-live="polite" #live-state { "" }
            div #overview data-live="/ui/fragment/overview" { (fragment(data)) }
        },
    )
}

/// The part of the page that updates live.
pub fn fragment(data: &Overview) -> Markup {
    let s = &data.status;
    html! {
        section.card aria-labelledby="sync-h" {
            h2 #sync-h { "Sync" }
            dl.facts {
                dt { "Repository" } dd { code { (s.repo) } }
                dt { "Branch" } dd { code #branch { (s.branch) } }
                dt { "Synced commit" }
                dd #synced {
                    @match &s.applied_commit {
                        Some(c) => {
                            code.commit title=(c) { (short(c)) }
                            @if let Some(r) = &data.applied {
                                " " span.message #synced-message { (first_line(r.message.as_deref())) }
                                @if let Some(a) = &r.author { " · " span.author { (a) } }
                                " · " (time(&r.time))
                            }
                        }
                        None => span.muted { "nothing applied yet" },
                    }
                }
                @if let Some(tip) = s.tip.as_ref().filter(|t| Some(*t) != s.applied_commit.as_ref()) {
                    dt { "Branch tip" } dd { code.commit title=(tip) { (short(tip)) } }
                }
                @if let Some(e) = &s.fetch_error {
                    dt { "Fetching" } dd { pre.error role="alert" { (e) } }
                }
            }
            (last_try(data))
        }
        section.card aria-labelledby="apps-h" {
            h2 #apps-h { "Apps" }
            div.scroll {
                table.apps {
                    thead { tr {
                        th scope="col" { "App" }
                        th scope="col" { "Commit" }
                        @for h in HEALTHS { th scope="col" { (h) } }
                    } }
                    tbody {
                        @for app in &data.apps {
                            tr data-app=(app.name) {
                                th scope="row" { (app.name) @if !app.path.is_empty() { " " span.muted { (app.path) "/" } } }
                                td { @if let Some(c) = &app.applied_commit { code { (short(c)) } } }
                                @for (i, h) in HEALTHS.iter().enumerate() {
                                    td data-health=(h) {
                                        @if app.counts[i] > 0 { span class={ "count h-" (h.to_ascii_lowercase()) } { (app.counts[i]) } }
                                        @else { span.muted { "0" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @for app in data.apps.iter().filter(|a| !a.trouble.is_empty() || a.last_error.is_some()) {
                @if let Some(e) = &app.last_error {
                    p { (app.name) ": the last commit that changed it failed:" }
                    pre.error { (e) }
                }
                @if !app.trouble.is_empty() {
                    ul.trouble aria-label={ (app.name) ": objects not healthy" } {
                        @for t in &app.trouble {
                            li {
                                (health_badge(t.health)) " "
                                a href=(crate::object_href(&t.kind, &t.namespace, &t.name)) {
                                    (t.kind) " " @if !t.namespace.is_empty() { (t.namespace) "/" } (t.name)
                                }
                                @if !t.why.is_empty() { " " span.muted { (t.why) } }
                            }
                        }
                    }
                }
            }
        }
        section.card aria-labelledby="cluster-h" {
            h2 #cluster-h { "Cluster" }
            dl.facts {
                dt { "Nodes ready" } dd { a href="/ui/nodes" { (data.nodes_ready) " of " (data.nodes) } }
                dt { "Pods" }
                dd {
                    @if data.pods.is_empty() { span.muted { "none" } }
                    @for (i, (phase, n)) in data.pods.iter().enumerate() {
                        @if i > 0 { ", " }
                        (n) " " (phase)
                    }
                }
                @if !s.cordoned.is_empty() {
                    dt { "Cordoned" } dd { (s.cordoned.join(", ")) }
                }
            }
        }
    }
}

/// How the last try went: applied, or failed with its located error.
fn last_try(data: &Overview) -> Markup {
    let s = &data.status;
    let Some(result) = s.last_result else {
        return html! { p.muted { "No commit tried yet." } };
    };
    let failed = !result.is_success();
    html! {
        div #last-try class=(if failed { "last-try failed" } else { "last-try" }) {
            h3 { "Last try" }
            p {
                @if let Some(c) = &s.last_commit { code.commit title=(c) { (short(c)) } " " }
                @if let Some(r) = &data.last_try {
                    span.message { (first_line(r.message.as_deref())) } " "
                }
                (health_badge(if failed { "Failed" } else { "Applied" }))
                @if let Some(at) = &s.last_sync { " " (time(at)) }
            }
            @if let Some(e) = s.last_error.as_ref().filter(|_| failed) {
                pre.error #last-error role="alert" { (e) }
                @if s.applied_commit.is_some() {
                    p.muted { "The cluster keeps running the synced commit; fix the error in a new commit, or revert." }
                }
            }
        }
    }
}

fn first_line(message: Option<&str>) -> &str {
    message.and_then(|m| m.lines().next()).unwrap_or("")
}
