//! New commits in a local repository, noticed at once: notify on its git folder (refs,
//! packed-refs, HEAD). Every event just nudges the sync loop, which reads the branch tip
//! itself, so missed or duplicate events do no harm.

use std::path::Path;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

pub fn watch_git_dir(
    git_dir: &Path,
    trigger: mpsc::Sender<()>,
) -> notify::Result<RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = event.is_ok_and(|e| {
            e.paths.iter().any(|p| {
                let s = p.to_string_lossy();
                s.contains("/refs/") || s.ends_with("packed-refs") || s.ends_with("HEAD")
            })
        });
        if relevant {
            // A full channel already holds a nudge.
            let _ = trigger.try_send(());
        }
    })?;
    watcher.watch(git_dir, RecursiveMode::Recursive)?;
    Ok(watcher)
}
