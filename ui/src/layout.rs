//! The shell of every page: head, navigation, main content. Keyboard users get a skip link
//! and visible focus; the navigation wraps on a phone's width.

use maud::{DOCTYPE, Markup, html};

use crate::Viewer;
use crate::assets::{SCRIPT_URL, STYLESHEET_URL};

/// The sections in the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Tree,
    History,
    Plan,
    Nodes,
    /// A page outside the navigation (login, an object).
    None,
}

const SECTIONS: [(Section, &str, &str); 5] = [
    (Section::Overview, "/", "Overview"),
    (Section::Tree, "/ui/tree", "Tree"),
    (Section::History, "/ui/history", "History"),
    (Section::Plan, "/ui/plan", "Plan a branch"),
    (Section::Nodes, "/ui/nodes", "Nodes"),
];

/// A whole page. `page` names it for the script (`<body data-page=…>`).
pub fn page(title: &str, section: Section, page: &str, viewer: &Viewer, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="keel-csrf" content=(viewer.csrf);
                title { (title) " · keel" }
                // No icon to fetch (an empty one, not a 404 per page).
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(*STYLESHEET_URL);
                script src=(*SCRIPT_URL) defer {}
            }
            body data-page=(page) {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "keel" }
                    @if section != Section::None || viewer.signed_in {
                        nav aria-label="Sections" {
                            ul {
                                @for (s, href, label) in SECTIONS {
                                    li {
                                        @if s == section {
                                            a href=(href) aria-current="page" { (label) }
                                        } @else {
                                            a href=(href) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if viewer.signed_in {
                        form.logout method="post" action="/ui/logout" {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            span.role { @if viewer.admin { "admin" } @else { "view" } }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

/// A health or phase as a coloured label (colour is never the only sign: the word shows).
pub fn health_badge(health: &str) -> Markup {
    html! { span class={ "badge h-" (health.to_ascii_lowercase()) } { (health) } }
}

/// A time as an RFC 3339 `<time>`, shown in UTC to the second.
pub fn time(at: &chrono::DateTime<chrono::Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S UTC")) }
    }
}
