//! The stylesheet and script every page loads, built into the binary (nothing comes from a
//! CDN). Their URLs carry a hash of their content, so browsers may keep them for good and
//! still load a new build's.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

pub const STYLESHEET: &str = include_str!("assets/ui.css");
pub const SCRIPT: &str = include_str!("assets/ui.js");

/// The URL path prefix assets are served under.
pub const PREFIX: &str = "/ui/assets/";

fn versioned(name: &str, content: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    format!("{PREFIX}{name}?v={}", &hex::encode(digest)[..12])
}

/// `/ui/assets/ui.css?v=…`
pub static STYLESHEET_URL: LazyLock<String> = LazyLock::new(|| versioned("ui.css", STYLESHEET));
/// `/ui/assets/ui.js?v=…`
pub static SCRIPT_URL: LazyLock<String> = LazyLock::new(|| versioned("ui.js", SCRIPT));

/// An asset by its file name: its content and content type.
pub fn asset(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "ui.css" => Some((STYLESHEET, "text/css; charset=utf-8")),
        "ui.js" => Some((SCRIPT, "text/javascript; charset=utf-8")),
        _ => None,
    }
}
