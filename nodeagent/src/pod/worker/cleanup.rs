//! Removing a pod for good: its containers stopped as gracefully as it asked, then removed
//! with its sandbox and files, retried until the engine has done it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::PodContext;
use crate::pod::{pinned, volumes};
use crate::runtime::{ContainerInfo, ContainerState, RuntimeError};

/// Stops and removes the containers of a pod that is not wanted (found at agent start), as
/// gracefully as the pod had asked.
pub fn spawn_orphan_cleanup(
    ctx: Arc<PodContext>,
    uid: String,
    found: Vec<ContainerInfo>,
    exited: mpsc::UnboundedSender<String>,
) {
    tokio::spawn(async move {
        let grace = found.iter().map(|c| c.grace_seconds).max().unwrap_or(30);
        tracing::info!(
            pod = %found.first().map(|c| format!("{}/{}", c.pod_namespace, c.pod_name)).unwrap_or_default(),
            uid = %uid,
            "removing the containers of a pod this node no longer runs"
        );
        remove_all(&ctx, &uid, grace).await;
        ctx.hub.publish_deleted(
            &uid,
            found
                .first()
                .map(|c| c.pod_namespace.as_str())
                .unwrap_or(""),
            found.first().map(|c| c.pod_name.as_str()).unwrap_or(""),
        );
        let _ = exited.send(uid);
    });
}

/// Stops every app container of pod `uid` (in parallel, `grace` seconds each), then removes
/// them and the sandbox, and the pod's files. Retries while the engine is unreachable: a pod
/// is never left half-removed.
pub(super) async fn remove_all(ctx: &PodContext, uid: &str, grace: i64) {
    let grace = Duration::from_secs(grace.max(0) as u64);
    let mut delay = Duration::from_millis(500);
    loop {
        match remove_all_once(ctx, uid, grace).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(uid, error = %e, "removing a pod's containers failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
    let dir = volumes::pod_dir(&ctx.data_dir, uid);
    // Pinned mounts first: a removal must never reach through one into a volume.
    if let Err(e) = pinned::release(ctx.runtime.as_ref(), &dir).await {
        tracing::error!(uid, dir = %dir.display(), error = %e, "cannot unmount the pod's pinned volume paths; its files are left in place");
        return;
    }
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(uid, dir = %dir.display(), error = %e, "cannot remove the pod's files");
    }
}

async fn remove_all_once(ctx: &PodContext, uid: &str, grace: Duration) -> Result<(), RuntimeError> {
    let found = ctx.runtime.list_pod(uid).await?;
    let apps: Vec<&ContainerInfo> = found
        .iter()
        .filter(|c| !c.is_sandbox() && matches!(c.state, ContainerState::Running { .. }))
        .collect();
    let stops = apps.iter().map(|c| ctx.runtime.stop(&c.id, grace));
    for r in futures_util::future::join_all(stops).await {
        r?;
    }
    // Apps first, so no container outlives the namespace it joined.
    for c in found.iter().filter(|c| !c.is_sandbox()) {
        ctx.runtime.remove(&c.id).await?;
    }
    for c in found.iter().filter(|c| c.is_sandbox()) {
        ctx.runtime.remove(&c.id).await?;
    }
    Ok(())
}
