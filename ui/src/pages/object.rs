//! One object: its health, where git declares it (file and line, and the YAML), the live
//! object keel stores, the difference between the two (what keel added: status, assigned
//! addresses, defaults), its Events, and for a pod its logs and a terminal.

use maud::{Markup, html};

use crate::layout::{Section, health_badge, page};
use crate::{Viewer, object_href};

/// A link to another object, with its health.
#[derive(Debug, Clone)]
pub struct Related {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub health: &'static str,
}

/// Where git declares the object.
#[derive(Debug, Clone)]
pub struct Declared {
    /// The commit it was read from.
    pub commit: String,
    pub file: String,
    pub line: u32,
    pub yaml: String,
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub kind: String,
    pub reason: String,
    pub message: String,
    pub count: i64,
    pub last: String,
}

/// What the object page shows.
#[derive(Debug, Clone)]
pub struct ObjectPage {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub health: &'static str,
    pub why: String,
    pub owner: Option<Related>,
    pub children: Vec<Related>,
    /// `Err`: why nothing declared is shown (made by keel, or the revision unreadable).
    pub declared: Result<Declared, String>,
    /// The live object as YAML, Secret values replaced.
    pub live: String,
    /// Declared → live, unified.
    pub diff: String,
    pub events: Vec<EventRow>,
    /// A pod's containers (logs and terminal are per container).
    pub containers: Vec<String>,
    /// Kubernetes' path of the object (for the pod's logs, exec and restart).
    pub api_path: String,
}

pub fn object(viewer: &Viewer, o: &ObjectPage) -> Markup {
    let title = format!("{} {}", o.kind, o.name);
    let is_pod = o.kind == "Pod";
    page(
        &title,
        Section::None,
        "object",
        viewer,
        html! {
            nav aria-label="Breadcrumb" { a href="/ui/tree" { "Tree" } " › " (o.kind) }
            h1 {
                (o.kind) " " @if !o.namespace.is_empty() { span.muted { (o.namespace) "/" } } (o.name)
                " " (health_badge(o.health))
            }
            @if !o.why.is_empty() { p #why { (o.why) } }
            @if let Some(owner) = &o.owner { p { "Controlled by " (link(owner)) } }
            @if !o.children.is_empty() {
                section aria-labelledby="children-h" {
                    h2 #children-h { "Runs" }
                    ul.related { @for c in &o.children { li { (health_badge(c.health)) " " (link(c)) } } }
                }
            }
            @if is_pod && viewer.admin {
                form.action data-action="restart" data-url=(o.api_path) data-method="DELETE"
                    data-confirm={ "Restart pod " (o.name) "? Its controller starts a new one." } {
                    button type="submit" { "Restart pod" }
                    span.action-result aria-live="polite" {}
                }
            }
            section aria-labelledby="declared-h" {
                h2 #declared-h { "Declared in git" }
                @match &o.declared {
                    Ok(d) => {
                        p #declared-at { code { (d.file) ":" (d.line) } " at " code.commit { (crate::short(&d.commit)) } }
                        pre.yaml #declared-yaml { (d.yaml) }
                    }
                    Err(why) => p.muted #declared-at { (why) },
                }
            }
            section aria-labelledby="live-h" {
                h2 #live-h { "Live object" }
                pre.yaml #live-yaml { (o.live) }
            }
            @if o.declared.is_ok() {
                section aria-labelledby="diff-h" {
                    h2 #diff-h { "Declared → live" }
                    p.muted { "Lines marked + are what keel and its controllers added or changed: defaults, assigned addresses, status." }
                    (crate::diff::unified(&o.diff))
                }
            }
            section aria-labelledby="events-h" {
                h2 #events-h { "Events" }
                @if o.events.is_empty() { p.muted { "None." } } @else {
                    div.scroll { table {
                        thead { tr { th scope="col" { "Type" } th scope="col" { "Reason" } th scope="col" { "Message" } th scope="col" { "Count" } th scope="col" { "Last seen" } } }
                        tbody { @for e in &o.events { tr {
                            td { (e.kind) } td { (e.reason) } td { (e.message) } td { (e.count) } td { (e.last) }
                        } } }
                    } }
                }
            }
            @if is_pod {
                section aria-labelledby="logs-h" {
                    h2 #logs-h { "Logs" }
                    form.inline #logs-form data-url={ (o.api_path) "/log" } {
                        label { "Container " select name="container" {
                            @for c in &o.containers { option value=(c) { (c) } }
                        } }
                        label { input type="checkbox" name="follow" checked; " Follow" }
                        button type="submit" { "Show" }
                    }
                    pre.logs #logs tabindex="0" aria-label="Log lines" aria-live="off" {}
                }
                @if viewer.admin {
                    section aria-labelledby="term-h" {
                        h2 #term-h { "Terminal" }
                        form.inline #term-form data-url={ (o.api_path) "/exec" } {
                            label { "Container " select name="container" {
                                @for c in &o.containers { option value=(c) { (c) } }
                            } }
                            label { "Command " input type="text" name="command" value="sh"; }
                            button type="submit" { "Connect" }
                        }
                        pre.terminal #term-out tabindex="0" aria-label="Terminal output" {}
                        form.inline #term-input hidden {
                            label.grow { "Input " input type="text" name="line" autocomplete="off"; }
                            button type="submit" { "Send" }
                        }
                    }
                }
            }
        },
    )
}

fn link(r: &Related) -> Markup {
    html! {
        a href=(object_href(&r.kind, &r.namespace, &r.name)) {
            (r.kind) " " @if !r.namespace.is_empty() { (r.namespace) "/" } (r.name)
        }
    }
}
