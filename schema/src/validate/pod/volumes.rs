//! A pod's volumes: one source each, their files and modes, host paths.

use std::collections::BTreeSet;

use super::super::{Errors, names};
use super::values::{check_quantity, check_relative_path};
use crate::path::FieldPath;
use crate::types::pod::{EmptyDirVolumeSource, HostPathVolumeSource, KeyToPath, Volume};

fn check_mode(mode: Option<i64>, path: &FieldPath, errs: &mut Errors) {
    if let Some(m) = mode.filter(|m| !(0..=0o777).contains(m)) {
        errs.invalid(
            path,
            m,
            "must be a number between 0 and 0777 (octal), both inclusive",
        );
    }
}

/// Validates volumes and returns their names, for `volumeMounts` to refer to.
pub(super) fn validate_volumes<'a>(
    volumes: &'a [Volume],
    path: &FieldPath,
    errs: &mut Errors,
) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let vp = path.index(i);
        if v.name.is_empty() {
            errs.required(&vp.field("name"));
        } else {
            errs.name(&vp.field("name"), &v.name, names::dns1123_label);
            if !seen.insert(v.name.as_str()) {
                errs.duplicate(&vp.field("name"), &v.name);
            }
        }
        validate_one_source(v, &vp, errs);
        if let Some(e) = &v.empty_dir {
            validate_empty_dir(e, &vp.field("emptyDir"), errs);
        }
        if let Some(c) = &v.config_map {
            let files = (c.default_mode, c.items.as_deref().unwrap_or(&[]));
            validate_projected(
                &vp.field("configMap"),
                ("name", c.name.as_deref()),
                files,
                errs,
            );
        }
        if let Some(s) = &v.secret {
            let files = (s.default_mode, s.items.as_deref().unwrap_or(&[]));
            validate_projected(
                &vp.field("secret"),
                ("secretName", s.secret_name.as_deref()),
                files,
                errs,
            );
        }
        if let Some(h) = &v.host_path {
            validate_host_path(h, &vp.field("hostPath"), errs);
        }
        if let Some(c) = &v.persistent_volume_claim {
            let at = vp.field("persistentVolumeClaim").field("claimName");
            errs.required_name(
                &at,
                Some(c.claim_name.as_str()).filter(|n| !n.is_empty()),
                names::dns1123_subdomain,
            );
        }
    }
    seen
}

/// Exactly one source per volume. Kubernetes' order: the first source set is
/// kept, each further one is the error.
fn validate_one_source(v: &Volume, path: &FieldPath, errs: &mut Errors) {
    let sources = [
        ("hostPath", v.host_path.is_some()),
        ("emptyDir", v.empty_dir.is_some()),
        ("secret", v.secret.is_some()),
        ("configMap", v.config_map.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
    ];
    let mut set = sources.iter().filter(|(_, s)| *s).map(|(n, _)| *n);
    if set.next().is_none() {
        errs.required_because(
            path,
            "must specify a volume type (emptyDir, configMap, secret, hostPath or persistentVolumeClaim)",
        );
    }
    for extra in set {
        errs.forbidden(
            &path.field(extra),
            "may not specify more than 1 volume type",
        );
    }
}

fn validate_empty_dir(e: &EmptyDirVolumeSource, path: &FieldPath, errs: &mut Errors) {
    errs.one_of(
        &path.field("medium"),
        e.medium.as_deref().filter(|m| !m.is_empty()),
        &["Memory"],
    );
    if let Some(q) = &e.size_limit {
        check_quantity(q, "memory", &path.field("sizeLimit"), errs);
    }
}

fn validate_host_path(h: &HostPathVolumeSource, path: &FieldPath, errs: &mut Errors) {
    if h.path.is_empty() {
        errs.required(&path.field("path"));
    } else if !h.path.starts_with('/') {
        errs.invalid(&path.field("path"), &h.path, "must be an absolute path");
    } else if h.path.split('/').any(|p| p == "..") {
        errs.invalid(&path.field("path"), &h.path, "must not contain '..'");
    }
    errs.one_of(
        &path.field("type"),
        h.type_.as_deref().filter(|t| !t.is_empty()),
        &[
            "Directory",
            "DirectoryOrCreate",
            "File",
            "FileOrCreate",
            "Socket",
            "CharDevice",
            "BlockDevice",
        ],
    );
}

/// A configMap or secret volume: the object it names, its file mode and its items.
fn validate_projected(
    path: &FieldPath,
    (name_field, name): (&str, Option<&str>),
    (default_mode, items): (Option<i64>, &[KeyToPath]),
    errs: &mut Errors,
) {
    errs.required_name(&path.field(name_field), name, names::dns1123_subdomain);
    check_mode(default_mode, &path.field("defaultMode"), errs);
    for (j, item) in items.iter().enumerate() {
        validate_key_to_path(
            &item.key,
            &item.path,
            item.mode,
            &path.field("items").index(j),
            errs,
        );
    }
}

fn validate_key_to_path(
    key: &str,
    rel: &str,
    mode: Option<i64>,
    path: &FieldPath,
    errs: &mut Errors,
) {
    if key.is_empty() {
        errs.required(&path.field("key"));
    } else {
        errs.name(&path.field("key"), key, names::config_key);
    }
    if rel.is_empty() {
        errs.required(&path.field("path"));
    } else {
        check_relative_path(rel, &path.field("path"), errs);
    }
    check_mode(mode, &path.field("mode"), errs);
}
