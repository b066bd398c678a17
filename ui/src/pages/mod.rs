//! One module per page. Each takes the data its page shows, gathered by the server.

pub mod history;
pub mod login;
pub mod nodes;
pub mod object;
pub mod overview;
pub mod plan;
pub mod tree;

use maud::{Markup, html};

use crate::Viewer;
use crate::layout::{Section, page};

/// A page saying what went wrong (a missing object, an unreadable repository).
pub fn problem(viewer: &Viewer, title: &str, message: &str) -> Markup {
    page(
        title,
        Section::None,
        "problem",
        viewer,
        html! {
            h1 { (title) }
            pre.error role="alert" { (message) }
            p { a href="/" { "Back to the overview" } }
        },
    )
}
