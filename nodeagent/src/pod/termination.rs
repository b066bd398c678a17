//! `terminationMessagePath` and `terminationMessagePolicy`, as the kubelet runs them: each
//! container gets a file of its own (`pods/UID/termination/NAME`, emptied before every
//! start) bind-mounted at the path (default `/dev/termination-log`); when it ends, what it
//! wrote there (at most 4096 bytes) is its terminated state's message. With
//! `FallbackToLogsOnError`, a container that failed without writing one gets the end of its
//! log instead (the last 80 lines, at most 2048 bytes).

use std::path::{Path, PathBuf};

use keel_schema::types::pod::Container;

/// Kubernetes' default path.
pub const DEFAULT_PATH: &str = "/dev/termination-log";
/// The most of the file read.
pub const MAX_MESSAGE: usize = 4096;
/// From the log, with `FallbackToLogsOnError`: this many lines, at most this many bytes.
pub const LOG_LINES: u64 = 80;
pub const MAX_LOG_MESSAGE: usize = 2048;

/// The file behind container `name`'s termination message.
pub fn file(pod_dir: &Path, name: &str) -> PathBuf {
    pod_dir.join("termination").join(name)
}

/// Where the container sees it.
pub fn path_in_container(c: &Container) -> &str {
    c.termination_message_path
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_PATH)
}

pub fn falls_back_to_logs(c: &Container) -> bool {
    c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
}

/// An empty file for the next run, writable by whatever user the container runs as.
pub fn prepare(pod_dir: &Path, name: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let path = file(pod_dir, name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    // Not followed if something made it a link: the file is replaced, never written through.
    let _ = std::fs::remove_file(&path);
    std::fs::File::create_new(&path).map_err(|e| {
        format!(
            "creating the termination message file {}: {e}",
            path.display()
        )
    })?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| format!("setting the mode of {}: {e}", path.display()))?;
    Ok(path)
}

/// What the container left in its file (`None` when nothing, or no file).
pub fn read(pod_dir: &Path, name: &str) -> Option<String> {
    use std::io::Read;
    let path = file(pod_dir, name);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .ok()?
        .take(MAX_MESSAGE as u64)
        .read_to_end(&mut bytes)
        .ok()?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (!text.is_empty()).then_some(text)
}

/// The end of a log, cut to [`MAX_LOG_MESSAGE`] bytes at a character boundary.
pub fn log_tail(log: &str) -> Option<String> {
    let mut start = log.len().saturating_sub(MAX_LOG_MESSAGE);
    while !log.is_char_boundary(start) {
        start += 1;
    }
    let tail = &log[start..];
    (!tail.is_empty()).then(|| tail.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_starts_empty_and_its_message_is_read_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = prepare(dir.path(), "web").unwrap();
        assert_eq!(read(dir.path(), "web"), None, "an empty file is no message");
        std::fs::write(&path, "x".repeat(10_000)).unwrap();
        assert_eq!(read(dir.path(), "web").unwrap().len(), MAX_MESSAGE);
        prepare(dir.path(), "web").unwrap();
        assert_eq!(read(dir.path(), "web"), None, "the next run starts empty");
    }

    #[test]
    fn a_link_left_in_place_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "keep").unwrap();
        std::fs::create_dir_all(dir.path().join("termination")).unwrap();
        std::os::unix::fs::symlink(&outside, file(dir.path(), "web")).unwrap();
        assert_eq!(read(dir.path(), "web"), None, "a link is not read through");
        prepare(dir.path(), "web").unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");
    }

    #[test]
    fn log_tails_are_cut_at_a_character() {
        let log = format!("{}é", "a".repeat(MAX_LOG_MESSAGE));
        let tail = log_tail(&log).unwrap();
        assert!(tail.len() <= MAX_LOG_MESSAGE && tail.ends_with('é'));
        assert_eq!(log_tail(""), None);
    }
}
