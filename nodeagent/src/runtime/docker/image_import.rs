//! Images made on the node itself, with no registry: a root filesystem holding Debian's static
//! busybox (every applet linked under `/bin`) plus any files given, loaded with Docker's import
//! API (`docker import`). The pod sandbox image is made this way, and so are the images of the
//! tests and the example repo.

use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures_util::TryStreamExt;

/// Where busybox-static installs its binary (Debian).
pub const BUSYBOX: &str = "/bin/busybox";

/// A file to put in the image besides busybox.
#[derive(Debug, Clone)]
pub struct ExtraFile {
    /// Absolute path inside the image.
    pub path: String,
    pub contents: Vec<u8>,
    pub mode: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {BUSYBOX}: {0} (install it with: apt-get install -y busybox-static)")]
    NoBusybox(std::io::Error),
    #[error("busybox at {BUSYBOX} cannot list its applets: {0}")]
    Applets(String),
    #[error("building the image's filesystem: {0}")]
    Tar(std::io::Error),
    #[error("docker import of {reference}: {message}")]
    Import { reference: String, message: String },
    #[error("image reference {0:?} must be NAME:TAG")]
    Reference(String),
}

/// Makes `reference` (`name:tag`) from busybox and `extra` files and loads it into Docker,
/// replacing any image of that name.
pub async fn import_busybox_image(
    docker: &Docker,
    reference: &str,
    extra: &[ExtraFile],
) -> Result<(), ImportError> {
    let (repo, tag) = reference
        .rsplit_once(':')
        .filter(|(r, t)| !r.is_empty() && !t.is_empty() && !t.contains('/'))
        .ok_or_else(|| ImportError::Reference(reference.to_string()))?;
    let rootfs = busybox_rootfs(extra).await?;
    let options = CreateImageOptions {
        from_src: Some("-".to_string()),
        repo: Some(repo.to_string()),
        tag: Some(tag.to_string()),
        ..Default::default()
    };
    docker
        .create_image(Some(options), Some(bollard::body_full(rootfs.into())), None)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| ImportError::Import {
            reference: reference.to_string(),
            message: e.to_string(),
        })?;
    Ok(())
}

async fn busybox_rootfs(extra: &[ExtraFile]) -> Result<Vec<u8>, ImportError> {
    let binary = tokio::fs::read(BUSYBOX)
        .await
        .map_err(ImportError::NoBusybox)?;
    let listed = tokio::process::Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .await
        .map_err(|e| ImportError::Applets(e.to_string()))?;
    if !listed.status.success() {
        return Err(ImportError::Applets(format!("exit {}", listed.status)));
    }
    let applets = String::from_utf8_lossy(&listed.stdout).into_owned();
    let extra = extra.to_vec();
    tokio::task::spawn_blocking(move || build_tar(&binary, &applets, &extra))
        .await
        .map_err(|e| ImportError::Tar(std::io::Error::other(e)))?
        .map_err(ImportError::Tar)
}

fn build_tar(binary: &[u8], applets: &str, extra: &[ExtraFile]) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for dir in ["bin", "tmp", "etc", "var", "var/www", "root"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(if dir == "tmp" { 0o1777 } else { 0o755 });
        h.set_size(0);
        tar.append_data(&mut h, dir, std::io::empty())?;
    }
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(binary.len() as u64);
    tar.append_data(&mut h, "bin/busybox", binary)?;
    for applet in applets.lines().map(str::trim) {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        tar.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
    }
    for f in extra {
        let path = f.path.trim_start_matches('/');
        let mut h = tar::Header::new_gnu();
        h.set_mode(f.mode);
        h.set_size(f.contents.len() as u64);
        tar.append_data(&mut h, path, f.contents.as_slice())?;
    }
    tar.into_inner()
}
