//! One `keel up` per machine: its node names, NodePorts and the example's addresses are
//! fixed, so a second one would take over the first one's containers and traffic.

/// Takes the machine-wide `keel up` lock (a file in the temp dir, held while this process
/// lives), or says who holds it.
pub fn lock_machine() -> anyhow::Result<std::fs::File> {
    let path = std::env::temp_dir().join("keel-up.lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            use std::io::{Seek, Write};
            file.set_len(0)?;
            file.seek(std::io::SeekFrom::Start(0))?;
            write!(file, "{}", std::process::id())?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            anyhow::bail!(
                "another keel up is running on this machine (pid {}); stop it (Ctrl-C in its terminal) first",
                holder.trim()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            anyhow::bail!("cannot lock {}: {e}", path.display())
        }
    }
}
