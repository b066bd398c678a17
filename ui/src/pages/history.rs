//! History: every commit tried, with its result and located error; two of them picked make
//! a diff page (the plan between them, as `keel plan --from A --to B` prints it).

use keel_schema::SyncRecord;
use maud::{Markup, html};

use crate::layout::{Section, health_badge, page, time};
use crate::{Viewer, short};

pub fn history(viewer: &Viewer, records: &[SyncRecord], applied: Option<&str>) -> Markup {
    page(
        "History",
        Section::History,
        "history",
        viewer,
        html! {
            h1 { "History" }
            @if records.is_empty() { p.muted { "No commit tried yet." } } @else {
                form method="get" action="/ui/diff" #history-form {
                    p { "Pick two commits and compare them: the plan between them, as " code { "keel plan" } " shows it." }
                    div.scroll { table.history {
                        thead { tr {
                            th scope="col" { "From" } th scope="col" { "To" }
                            th scope="col" { "Commit" } th scope="col" { "Result" } th scope="col" { "When" }
                            th scope="col" { "Author" } th scope="col" { "Message" } th scope="col" { "" }
                        } }
                        tbody {
                            @for (i, r) in records.iter().enumerate() {
                                tr data-commit=(r.commit) {
                                    td { input type="radio" name="from" value=(r.commit) aria-label={ "from " (short(&r.commit)) } checked[i == 1]; }
                                    td { input type="radio" name="to" value=(r.commit) aria-label={ "to " (short(&r.commit)) } checked[i == 0]; }
                                    td {
                                        code.commit title=(r.commit) { (short(&r.commit)) }
                                        @if applied == Some(r.commit.as_str()) { " " span.badge.h-healthy { "running" } }
                                        @if let Some(app) = &r.app { " " span.muted { (app) } }
                                    }
                                    td { (health_badge(if r.result.is_success() { "Applied" } else { "Failed" })) }
                                    td { (time(&r.time)) }
                                    td { (r.author.as_deref().unwrap_or("")) }
                                    td {
                                        (r.message.as_deref().and_then(|m| m.lines().next()).unwrap_or(""))
                                        @if let Some(e) = &r.error { pre.error { (e) } }
                                    }
                                    td { @if let Some(prev) = records.get(i + 1) {
                                        a href={ "/ui/diff?from=" (prev.commit) "&to=" (r.commit) } { "changes" }
                                    } }
                                }
                            }
                        }
                    } }
                    button type="submit" { "Compare" }
                }
            }
        },
    )
}
