//! keel's web UI: the HTML pages `keel server` serves at `/` and the one stylesheet and
//! script they load. Pages are rendered from data the server gathers (this crate does no
//! I/O), so every page is whole on its first byte and readable without script; the script
//! adds live updates, the tree's filters, log following and the terminal.
//!
//! Security rules every page keeps (see `keel-reconciler`'s `http::ui` for the session):
//! - no inline script or style: the Content-Security-Policy is [`CONTENT_SECURITY_POLICY`];
//! - everything that changes something is a POST carrying the session's CSRF token;
//! - Secret values never reach a page: the server redacts objects before they get here.
//!
//! # Layout
//! - [`layout`]: the page shell (head, navigation), [`assets`]: the stylesheet and script.
//! - [`pages`]: one module per page: login, overview, tree, object, history and plans, nodes.
//! - [`tree`]: the resource tree (Deployment → ReplicaSets → Pods, …) as rows.
//! - [`diff`]: unified diffs as coloured lines.
#![forbid(unsafe_code)]

pub mod assets;
pub mod diff;
pub mod layout;
pub mod pages;
pub mod tree;

/// The UI's Content-Security-Policy: its own script and stylesheet only, nothing inline,
/// no frames, forms and connections to this server alone.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Who is looking, as pages need it.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    /// Signed in with the admin token: actions (restart a pod, cordon, the terminal) show.
    pub admin: bool,
    /// Signed in at all (`--anonymous-read` serves pages without).
    pub signed_in: bool,
    /// The session's CSRF token, sent back with every action.
    pub csrf: String,
}

/// Where the object page of an object is.
pub fn object_href(kind: &str, namespace: &str, name: &str) -> String {
    let ns = if namespace.is_empty() { "-" } else { namespace };
    format!(
        "/ui/objects/{}/{}/{}",
        escape_segment(kind),
        escape_segment(ns),
        escape_segment(name)
    )
}

/// A path segment, percent-encoded where names could break the path (names are DNS labels
/// in practice, but a custom kind's may hold anything).
fn escape_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A commit id as shown: its first seven characters.
pub fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_links_escape_what_would_break_the_path() {
        assert_eq!(
            object_href("Deployment", "prod", "web"),
            "/ui/objects/Deployment/prod/web"
        );
        assert_eq!(object_href("Node", "", "n1"), "/ui/objects/Node/-/n1");
        assert_eq!(
            object_href("Widget", "a", "x/y?z"),
            "/ui/objects/Widget/a/x%2Fy%3Fz"
        );
    }
}
