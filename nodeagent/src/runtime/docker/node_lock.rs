//! One agent per node name per Docker engine. Two agents under one name on one engine each
//! take the other's containers for strays (adopting, restarting, removing them), so the
//! second refuses to start and names the first.
//!
//! The lock is an advisory `flock` on `/run/keel-agent/<engine id>/<node>.lock` (a
//! temporary directory when `/run` is not writable), holding the holder's pid. The kernel
//! drops it when the holder dies however it dies, so a crashed agent never blocks the
//! next. It covers agents on the engine's own machine (an engine reached over TCP from
//! several machines is not covered).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held for the agent's life.
#[derive(Debug)]
pub struct NodeLock {
    _file: File,
    pub path: PathBuf,
}

fn lock_root() -> PathBuf {
    let run = Path::new("/run/keel-agent");
    if std::fs::create_dir_all(run).is_ok() {
        return run.to_path_buf();
    }
    std::env::temp_dir().join("keel-agent-locks")
}

/// File-name-safe form of an engine id (Docker's are `XXXX:XXXX:…` or a UUID).
fn safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl NodeLock {
    /// Takes `node`'s lock on the engine `engine_id`, or says who holds it.
    pub fn acquire(engine_id: &str, node: &str) -> anyhow::Result<NodeLock> {
        Self::acquire_in(&lock_root(), engine_id, node)
    }

    pub fn acquire_in(root: &Path, engine_id: &str, node: &str) -> anyhow::Result<NodeLock> {
        let dir = root.join(safe(engine_id));
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join(format!("{node}.lock"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another keel-agent".to_string()
                } else {
                    format!("keel-agent pid {holder}")
                };
                anyhow::bail!(
                    "node {node:?} is already run on this Docker engine by {who} (lock {}); \
                     stop that agent first, or give this one another --name",
                    path.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                anyhow::bail!("cannot lock {}: {e}", path.display())
            }
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        Ok(NodeLock { _file: file, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = NodeLock::acquire_in(dir.path(), "ABCD:EF01", "node-1").unwrap();
        let err = NodeLock::acquire_in(dir.path(), "ABCD:EF01", "node-1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())) && err.contains("node-1"),
            "{err}"
        );
        // Another name, or another engine, is another lock.
        NodeLock::acquire_in(dir.path(), "ABCD:EF01", "node-2").unwrap();
        NodeLock::acquire_in(dir.path(), "other-engine", "node-1").unwrap();
        drop(first);
        NodeLock::acquire_in(dir.path(), "ABCD:EF01", "node-1").unwrap();
    }
}
