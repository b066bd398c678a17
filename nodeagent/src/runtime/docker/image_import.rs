//! Images made on the node itself, with no registry: a [`Rootfs`] (Debian's static busybox
//! plus any files given) loaded with Docker's import API (`docker import`). The pod sandbox
//! image is made this way, and so are the images of the agent's tests and benchmarks.

use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures_util::TryStreamExt;
pub use keel_rootfs::{Rootfs, RootfsError};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error("docker import of {reference}: {message}")]
    Import { reference: String, message: String },
    #[error("image reference {0:?} must be NAME:TAG")]
    Reference(String),
}

/// Makes `reference` (`name:tag`) from `rootfs` and loads it into Docker, replacing any
/// image of that name.
pub async fn import_image(
    docker: &Docker,
    reference: &str,
    rootfs: Rootfs,
) -> Result<(), ImportError> {
    let (repo, tag) = reference
        .rsplit_once(':')
        .filter(|(r, t)| !r.is_empty() && !t.is_empty() && !t.contains('/'))
        .ok_or_else(|| ImportError::Reference(reference.to_string()))?;
    // Reading busybox and packing a few megabytes is blocking work.
    let tar = tokio::task::spawn_blocking(move || rootfs.tar())
        .await
        .map_err(|e| RootfsError::Tar(std::io::Error::other(e)))??;
    let options = CreateImageOptions {
        from_src: Some("-".to_string()),
        repo: Some(repo.to_string()),
        tag: Some(tag.to_string()),
        ..Default::default()
    };
    docker
        .create_image(Some(options), Some(bollard::body_full(tar.into())), None)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| ImportError::Import {
            reference: reference.to_string(),
            message: e.to_string(),
        })?;
    Ok(())
}
