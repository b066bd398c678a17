//! Unified diffs (a plan's, or declared against live) as lines marked for colour.

use maud::{Markup, html};

/// How a line of a unified diff reads.
fn class_of(line: &str) -> &'static str {
    if line.starts_with("+++") || line.starts_with("---") {
        "diff-file"
    } else if line.starts_with('+') {
        "diff-add"
    } else if line.starts_with('-') {
        "diff-del"
    } else if line.starts_with("@@") {
        "diff-hunk"
    } else {
        "diff-same"
    }
}

/// A unified diff in a `<pre>`, one span per line; "no differences" when empty.
pub fn unified(diff: &str) -> Markup {
    if diff.trim().is_empty() {
        return html! { p.muted { "No differences." } };
    }
    html! {
        pre.diff {
            @for line in diff.lines() {
                span class=(class_of(line)) { (line) "\n" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_marked_by_their_sign_and_escaped() {
        let html = unified("--- a\n+++ b\n@@ -1 +1 @@\n-old <b>\n+new\n same").into_string();
        assert!(
            html.contains(r#"<span class="diff-del">-old &lt;b&gt;"#),
            "{html}"
        );
        assert!(html.contains(r#"<span class="diff-add">+new"#), "{html}");
        assert!(html.contains(r#"<span class="diff-file">--- a"#), "{html}");
        assert!(html.contains(r#"<span class="diff-hunk">@@"#), "{html}");
        assert!(unified("").into_string().contains("No differences"));
    }
}
