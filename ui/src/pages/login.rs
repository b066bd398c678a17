//! The sign-in page: a token (admin or view) pasted once, kept by the browser in an
//! HttpOnly cookie; `keel ui` prints a one-time link that skips it.

use maud::{Markup, html};

use crate::Viewer;
use crate::layout::{Section, page};

/// The form, with why the last try failed when it did.
pub fn login(problem: Option<&str>) -> Markup {
    page(
        "Sign in",
        Section::None,
        "login",
        &Viewer::default(),
        html! {
            section.login {
                h1 { "Sign in to keel" }
                @if let Some(problem) = problem {
                    p.error role="alert" { (problem) }
                }
                form method="post" action="/ui/login" {
                    label for="token" { "API token (admin or view)" }
                    input #token type="password" name="token" autocomplete="current-password"
                        required autofocus;
                    button type="submit" { "Sign in" }
                }
                p.muted {
                    "Run " code { "keel ui" } " for a one-time sign-in link, or paste the admin token (the "
                    code { "admin-token" } " file of the server's data dir) or a view token ("
                    code { "keel token create --role view" } ")."
                }
            }
        },
    )
}
