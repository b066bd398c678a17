//! Ordering within a revision: sync waves (`keel.dev/sync-wave: "N"`, default 0) and hooks
//! (`keel.dev/hook: PreSync|PostSync|SyncFail|Skip` on Jobs and Pods, with
//! `keel.dev/hook-delete-policy`). Argo CD's `argocd.argoproj.io/…` annotations mean the
//! same, for teams that move over.

use crate::Object;
use crate::path::FieldPath;
use crate::validate::FieldError;

pub const WAVE: &str = "keel.dev/sync-wave";
pub const HOOK: &str = "keel.dev/hook";
pub const HOOK_DELETE_POLICY: &str = "keel.dev/hook-delete-policy";
const ARGO_WAVE: &str = "argocd.argoproj.io/sync-wave";
const ARGO_HOOK: &str = "argocd.argoproj.io/hook";
const ARGO_HOOK_DELETE_POLICY: &str = "argocd.argoproj.io/hook-delete-policy";

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before anything of the revision is applied; its failure fails the sync.
    PreSync,
    /// After every wave is Healthy.
    PostSync,
    /// When the sync fails.
    SyncFail,
}

/// When a hook's object is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletePolicy {
    /// Before the hook is made again (the default).
    BeforeHookCreation,
    HookSucceeded,
    HookFailed,
}

/// A hook: when it runs and when it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub phases: Vec<Phase>,
    pub delete: Vec<DeletePolicy>,
}

/// The annotation of `key` (keel's) or `argo` (Argo CD's), keel's first, with its key.
fn annotation<'a>(
    object: &'a Object,
    key: &'static str,
    argo: &'static str,
) -> Option<(&'static str, &'a str)> {
    let meta = object.meta();
    meta.annotation(key)
        .map(|v| (key, v))
        .or_else(|| meta.annotation(argo).map(|v| (argo, v)))
}

/// The object's wave (default 0). `Err` names the annotation and the bad value.
pub fn wave(object: &Object) -> Result<i64, (&'static str, String)> {
    match annotation(object, WAVE, ARGO_WAVE) {
        None => Ok(0),
        Some((key, v)) => v.trim().parse().map_err(|_| {
            (
                key,
                format!("Invalid value: {v:?}: a sync wave is an integer (\"-1\", \"0\", \"5\")"),
            )
        }),
    }
}

/// Whether the object is a hook (and which), or `Skip` (`Ok(None)` with `skipped`).
pub fn hook(object: &Object) -> Result<Option<Hook>, (&'static str, String)> {
    let Some((key, value)) = annotation(object, HOOK, ARGO_HOOK) else {
        return Ok(None);
    };
    let mut phases = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "PreSync" => phases.push(Phase::PreSync),
            "PostSync" => phases.push(Phase::PostSync),
            "SyncFail" => phases.push(Phase::SyncFail),
            "Skip" => {}
            other => {
                return Err((
                    key,
                    format!(
                        "Unsupported value: {other:?}: supported values: \"PreSync\", \"PostSync\", \"SyncFail\", \"Skip\""
                    ),
                ));
            }
        }
    }
    if phases.is_empty() {
        return Ok(None);
    }
    if !matches!(object, Object::Job(_) | Object::Pod(_)) {
        return Err((
            key,
            format!(
                "Invalid value: {value:?}: hooks are Jobs or Pods, not {}",
                object.kind()
            ),
        ));
    }
    let mut delete = Vec::new();
    if let Some((key, value)) = annotation(object, HOOK_DELETE_POLICY, ARGO_HOOK_DELETE_POLICY) {
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            delete.push(match part {
                "BeforeHookCreation" => DeletePolicy::BeforeHookCreation,
                "HookSucceeded" => DeletePolicy::HookSucceeded,
                "HookFailed" => DeletePolicy::HookFailed,
                other => {
                    return Err((key, format!("Unsupported value: {other:?}: supported values: \"BeforeHookCreation\", \"HookSucceeded\", \"HookFailed\"")));
                }
            });
        }
    }
    if delete.is_empty() {
        delete.push(DeletePolicy::BeforeHookCreation);
    }
    Ok(Some(Hook { phases, delete }))
}

/// Whether the object is marked `Skip`: declared, never applied.
pub fn skipped(object: &Object) -> bool {
    annotation(object, HOOK, ARGO_HOOK)
        .is_some_and(|(_, v)| v.split(',').any(|p| p.trim() == "Skip"))
}

/// Whether the object is applied as desired state (neither a hook nor skipped).
pub fn is_desired(object: &Object) -> bool {
    !skipped(object) && !matches!(hook(object), Ok(Some(_)))
}

/// Problems with an object's ordering annotations, for the loader.
pub fn check(object: &Object) -> Vec<FieldError> {
    let at = |key: &str| FieldPath::new("metadata").field("annotations").key(key);
    let mut out = Vec::new();
    if let Err((key, message)) = wave(object) {
        out.push(FieldError {
            path: at(key),
            message,
        });
    }
    if let Err((key, message)) = hook(object) {
        out.push(FieldError {
            path: at(key),
            message,
        });
    }
    out
}
