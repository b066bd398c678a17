//! What the verbs print, and the runtime the client verbs run on.

/// `-o` of the verbs that print either a table or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TableOrJson {
    /// Aligned columns, for people.
    Table,
    /// Every field, for programs.
    Json,
}

/// Writes to stdout, ignoring a closed pipe (`keel plan | head` is not an error).
pub fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// The single-threaded runtime a client verb runs its requests on; `None` after saying why.
pub fn runtime(verb: &str) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("keel {verb}: {e}");
            None
        }
    }
}

/// kubectl's short ages: `45s`, `12m`, `5h`, `3d`.
pub fn human_duration(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..10_800 => format!("{}m", s / 60),
        10_800..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `text`, or `<none>` when it is empty, as kubectl shows missing values.
pub fn or_none(text: String) -> String {
    if text.is_empty() {
        "<none>".into()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_are_short() {
        let s = chrono::Duration::seconds;
        assert_eq!(super::human_duration(s(5)), "5s");
        assert_eq!(super::human_duration(s(600)), "10m");
        assert_eq!(super::human_duration(s(5 * 3600)), "5h");
        assert_eq!(super::human_duration(s(3 * 86_400)), "3d");
    }
}
