//! Key and certificate files: written whole (a temporary file renamed over the old one, then
//! the directory synced, so a crash never leaves half a key nor loses the rename), a key and
//! its certificate replaced as a pair, and private keys readable by their owner only.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::Error;

/// Makes `dir` (and its missing parents) and leaves it the owner's alone (0700), fixing an
/// existing one: data dirs hold keys, tokens and Secrets.
pub fn private_dir(dir: &Path) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::File(dir.display().to_string(), e.to_string());
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)
}

/// Writes `bytes` to `path` with mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write(path, bytes, 0o600)
}

/// Writes `bytes` to `path` with mode 0644 (certificates: public).
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write(path, bytes, 0o644)
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::File(path.display().to_string(), e.to_string());
    // A bare file name's parent is "": the current directory.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    // An existing file keeps its mode across rename; set it in case it was wider.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    sync_dir(dir)
}

/// Makes the renames in `dir` durable: without this, a power loss can bring back the old
/// name after the new file's data was synced.
fn sync_dir(dir: &Path) -> Result<(), Error> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::File(dir.display().to_string(), e.to_string()))
}

/// The name a pair's new file waits under until the pair is complete.
fn pending(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    path.with_file_name(name)
}

/// Replaces a private key and its certificate together: a crash at any point leaves either
/// the old pair or the new one once [`recover_key_pair`] has run, never a key with another
/// key's certificate (which would lock the node or the server out until someone intervened).
///
/// Both new files are written whole beside the old ones (`KEY.new`, then `CERT.new`), then
/// renamed over them, key first. `CERT.new` existing means the new pair is complete.
pub fn write_key_pair(
    key_path: &Path,
    key: &[u8],
    cert_path: &Path,
    cert: &[u8],
) -> Result<(), Error> {
    write(&pending(key_path), key, 0o600)?;
    write(&pending(cert_path), cert, 0o644)?;
    finish_pair(key_path, cert_path)
}

/// Completes or discards a pair [`write_key_pair`] was writing when the process died. Call
/// it before reading the pair.
pub fn recover_key_pair(key_path: &Path, cert_path: &Path) -> Result<(), Error> {
    let (new_key, new_cert) = (pending(key_path), pending(cert_path));
    if new_cert.exists() {
        // The new pair was complete: finish moving it in.
        return finish_pair(key_path, cert_path);
    }
    if new_key.exists() {
        // Died before the certificate was written: the old pair stands.
        std::fs::remove_file(&new_key)
            .map_err(|e| Error::File(new_key.display().to_string(), e.to_string()))?;
    }
    Ok(())
}

fn finish_pair(key_path: &Path, cert_path: &Path) -> Result<(), Error> {
    let dir = key_path.parent().unwrap_or(Path::new("."));
    for path in [key_path, cert_path] {
        let from = pending(path);
        // The key may have been moved in already, before a crash.
        if from.exists() {
            std::fs::rename(&from, path)
                .map_err(|e| Error::File(path.display().to_string(), e.to_string()))?;
            // Each rename durable before the next: the certificate's may never reach the
            // disk ahead of its key's.
            sync_dir(dir)?;
        }
    }
    Ok(())
}

/// The text of `path`, or `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::File(path.display().to_string(), e.to_string())),
    }
}

/// `n` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| Error::Invalid(format!("no randomness: {e}")))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_pair_is_replaced_whole_whatever_step_a_crash_stops_at() {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (dir.path().join("node.key"), dir.path().join("node.crt"));
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        let pair = || (read(&key), read(&cert));
        write_key_pair(&key, b"key1", &cert, b"cert1").unwrap();
        assert_eq!(pair(), ("key1".into(), "cert1".into()));
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // Died after the new key only: the old pair stands.
        write(&pending(&key), b"key2", 0o600).unwrap();
        recover_key_pair(&key, &cert).unwrap();
        assert_eq!(pair(), ("key1".into(), "cert1".into()));
        assert!(!pending(&key).exists());

        // Died with both new files written: the new pair goes in.
        write(&pending(&key), b"key3", 0o600).unwrap();
        write(&pending(&cert), b"cert3", 0o644).unwrap();
        recover_key_pair(&key, &cert).unwrap();
        assert_eq!(pair(), ("key3".into(), "cert3".into()));

        // Died between the two renames: the certificate follows its key.
        write(&pending(&cert), b"cert4", 0o644).unwrap();
        write(&key, b"key4", 0o600).unwrap();
        recover_key_pair(&key, &cert).unwrap();
        assert_eq!(pair(), ("key4".into(), "cert4".into()));
        recover_key_pair(&key, &cert).unwrap();
        assert_eq!(
            pair(),
            ("key4".into(), "cert4".into()),
            "nothing left to do"
        );
    }

    #[test]
    fn a_data_dir_is_made_private_and_an_open_one_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a").join("data");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        private_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700, "an existing readable data dir is fixed");
    }
}
