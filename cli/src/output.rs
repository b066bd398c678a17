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

pub use keel_api::columns::format::{human_duration, or_none};
