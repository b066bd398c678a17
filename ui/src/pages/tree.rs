//! The tree page: filters and a search box over the resource tree, which the script loads
//! from `/ui/api/tree` and draws row by row as it scrolls into view (a virtualised list:
//! 10,000 pods are 10,000 rows, but only the few dozen in view are in the document).

use maud::{Markup, html};

use super::overview::HEALTHS;
use crate::Viewer;
use crate::layout::{Section, page};

/// The page, with the kinds and namespaces to filter by.
pub fn tree(viewer: &Viewer, kinds: &[String], namespaces: &[String]) -> Markup {
    page(
        "Tree",
        Section::Tree,
        "tree",
        viewer,
        html! {
            h1 { "Tree" }
            form.filters #tree-filters role="search" {
                label { "Kind" select name="kind" {
                    option value="" { "any" }
                    @for k in kinds { option value=(k) { (k) } }
                } }
                label { "Namespace" select name="namespace" {
                    option value="" { "any" }
                    @for n in namespaces { option value=(n) { (n) } }
                } }
                label { "Health" select name="health" {
                    option value="" { "any" }
                    @for h in HEALTHS { option value=(h) { (h) } }
                } }
                label { "Label" input type="text" name="label" placeholder="app=web" autocomplete="off"; }
                label { "Search" input type="search" name="q" placeholder="name" autocomplete="off"; }
            }
            p.muted #tree-count aria-live="polite" { "Loading…" }
            div.tree #tree data-source="/ui/api/tree" role="tree" aria-label="Objects" tabindex="0" {
                div.tree-space #tree-space {}
            }
            noscript { p { "The tree needs JavaScript; every object's page works without it." } }
        },
    )
}
