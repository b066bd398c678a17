//! The `nft` command: JSON in (`nft -j -f -`, one transaction per call), JSON out
//! (`nft -j list table`). JSON rather than rule text so that no rule is ever assembled from
//! strings a Service name could break, and `nft` rather than raw netlink because it is what
//! every operator reads the result with, and its parser is the kernel's reference.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::ruleset::{FAMILY, TABLE};

/// Long enough for a whole table of 10,000 Services; a hung `nft` must not stall the proxy.
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, thiserror::Error)]
pub enum NftError {
    #[error("cannot run `nft` (install nftables): {0}")]
    Missing(String),
    #[error("`nft {args}` failed: {detail}")]
    Failed { args: String, detail: String },
}

async fn nft(args: &[&str], input: Option<&[u8]>) -> Result<Vec<u8>, NftError> {
    let mut cmd = Command::new("nft");
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| NftError::Missing(e.to_string()))?;
    let failed = |detail: String| NftError::Failed {
        args: args.join(" "),
        detail,
    };
    if let (Some(input), Some(mut pipe)) = (input, child.stdin.take()) {
        pipe.write_all(input)
            .await
            .map_err(|e| failed(format!("writing its input: {e}")))?;
    }
    let out = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| failed(format!("no answer within {TIMEOUT:?}")))?
        .map_err(|e| failed(e.to_string()))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(failed(if detail.is_empty() {
        out.status.to_string()
    } else {
        detail
    }))
}

/// Runs one transaction: all of it applies, or none of it.
pub async fn apply(transaction: &Value) -> Result<(), NftError> {
    let input = serde_json::to_vec(transaction).unwrap_or_default();
    nft(&["-j", "-f", "-"], Some(&input)).await.map(drop)
}

/// The table as `nft` lists it; `None` when there is no such table.
pub async fn list() -> Result<Option<Value>, NftError> {
    match nft(&["-j", "list", "table", FAMILY, TABLE], None).await {
        Ok(out) => serde_json::from_slice(&out)
            .map(Some)
            .map_err(|e| NftError::Failed {
                args: format!("-j list table {FAMILY} {TABLE}"),
                detail: format!("unreadable output: {e}"),
            }),
        Err(NftError::Failed { detail, .. }) if detail.contains("No such file or directory") => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Whether this node can use the nftables data path: `nft` runs and may read the ruleset
/// (which needs CAP_NET_ADMIN).
pub async fn usable() -> Result<(), NftError> {
    nft(&["-j", "list", "tables"], None).await.map(drop)
}
