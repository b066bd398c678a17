//! `keel.yaml`, the repo config: read with located problems, its entries checked.

use super::{Loader, SourceFile, Subject};
use crate::kinds::Kind;
use crate::path::FieldPath;
use crate::repo_config::RepoConfig;
use crate::yaml::{Mark, parse_documents};

pub(super) fn load_repo_config(source: &SourceFile, loader: &mut Loader) -> RepoConfig {
    let subject = Subject::NONE;
    let Ok(text) = std::str::from_utf8(&source.bytes) else {
        loader.error(
            &source.name,
            Mark { line: 1, col: 1 },
            &subject,
            None,
            "file is not valid UTF-8".into(),
        );
        return RepoConfig::default();
    };
    let docs = match parse_documents(text) {
        Ok(docs) => docs,
        Err(e) => {
            loader.error(
                &source.name,
                e.mark,
                &subject,
                None,
                format!("YAML syntax error: {}", e.message),
            );
            return RepoConfig::default();
        }
    };
    let mut roots = docs.into_iter().filter_map(|d| d.root);
    let Some(root) = roots.next() else {
        return RepoConfig::default();
    };
    if let Some(extra) = roots.next() {
        loader.error(
            &source.name,
            extra.mark,
            &subject,
            None,
            "keel.yaml must hold one document".into(),
        );
    }
    let (config, issues) = crate::decode::decode::<RepoConfig>(&root);
    for issue in issues {
        let field = (!issue.path.is_empty()).then(|| issue.path.to_string());
        loader.error(&source.name, issue.mark, &subject, field, issue.message);
    }
    let config = config.unwrap_or_default();
    let entries = config.accept_unknown_kinds.iter().flatten().enumerate();
    for (i, entry) in entries {
        let well_formed = entry.split_once('/').is_some_and(|(group, kind)| {
            group.contains('.')
                && crate::validate::names::dns1123_subdomain(group).is_none()
                && kind.starts_with(|c: char| c.is_ascii_uppercase())
                && kind.chars().all(|c| c.is_ascii_alphanumeric())
        });
        let known = entry
            .split_once('/')
            .and_then(|(_, kind)| Kind::from_name(kind))
            .is_some_and(|k| entry.starts_with(&format!("{}/", k.info().group())));
        if !well_formed || known {
            let path = FieldPath::new("acceptUnknownKinds").index(i);
            let why = if known {
                "keel knows this kind"
            } else {
                "must be GROUP/KIND, the group a domain (monitoring.coreos.com/ServiceMonitor)"
            };
            loader.field_error(
                &source.name,
                &root,
                &subject,
                &path,
                format!("Invalid value: {entry:?}: {why}"),
            );
        }
    }
    for (i, target) in config.notify.iter().flatten().enumerate() {
        let at = FieldPath::new("notify").index(i);
        for (path, why) in notify_problems(target) {
            let path = path.into_iter().fold(at.clone(), |p, f| p.field(f));
            loader.field_error(&source.name, &root, &subject, &path, why);
        }
    }
    for (i, field, why) in app_problems(&config) {
        let path = FieldPath::new("apps").index(i).field(field);
        loader.field_error(&source.name, &root, &subject, &path, why);
    }
    config
}

/// What is wrong with the `apps` entries: (entry, field, message).
fn app_problems(config: &crate::repo_config::RepoConfig) -> Vec<(usize, &'static str, String)> {
    use super::apps::normalize_path;
    let mut out = Vec::new();
    let apps = config.apps.as_deref().unwrap_or(&[]);
    let mut paths: Vec<(usize, String)> = Vec::new();
    for (i, app) in apps.iter().enumerate() {
        if let Some(why) = crate::validate::names::dns1123_label(&app.name) {
            out.push((i, "name", format!("Invalid value: {:?}: {why}", app.name)));
        } else if apps[..i].iter().any(|a| a.name == app.name) {
            out.push((i, "name", format!("Duplicate value: {:?}", app.name)));
        }
        match normalize_path(&app.path) {
            None => out.push((
                i,
                "path",
                format!(
                    "Invalid value: {:?}: must be a folder inside the repository, relative to keel.yaml (apps/web)",
                    app.path
                ),
            )),
            Some(path) if path.split('/').count() > super::MAX_FOLDER_DEPTH => out.push((
                i,
                "path",
                format!("Invalid value: {}", super::too_deep_message()),
            )),
            Some(path) => {
                let nests = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
                if let Some((j, _)) = paths
                    .iter()
                    .find(|(_, other)| nests(&path, other) || nests(other, &path))
                {
                    out.push((
                        i,
                        "path",
                        format!(
                            "Invalid value: {:?}: overlaps the path of app {:?}; each file belongs to one app",
                            app.path, apps[*j].name
                        ),
                    ));
                }
                paths.push((i, path));
            }
        }
        let namespace = app.namespace.as_deref().unwrap_or("");
        if let Some(why) = (!namespace.is_empty())
            .then(|| crate::validate::names::dns1123_label(namespace))
            .flatten()
        {
            out.push((
                i,
                "namespace",
                format!("Invalid value: {namespace:?}: {why}"),
            ));
        }
    }
    out
}

/// What is wrong with a `notify` entry: (field path under it, message).
fn notify_problems(t: &crate::repo_config::NotifyTarget) -> Vec<(Vec<&'static str>, String)> {
    let mut out = Vec::new();
    let kinds = [t.webhook.is_some(), t.github.is_some(), t.gitlab.is_some()];
    if kinds.iter().filter(|k| **k).count() != 1 {
        out.push((
            Vec::new(),
            "Invalid value: give exactly one of webhook, github and gitlab".to_string(),
        ));
    }
    let url_ok = |u: &str| u.starts_with("https://") || u.starts_with("http://");
    // A secret is named, not located: a committer cannot point the server at its own files.
    let name_ok = |n: &str| !n.is_empty() && !n.starts_with('.') && !n.contains(['/', '\\']);
    let name_why = "Invalid value: a file name in the server's --notify-secrets-dir (no folders)";
    if let Some(w) = &t.webhook {
        if !url_ok(&w.url) {
            out.push((
                vec!["webhook", "url"],
                format!(
                    "Invalid value: {:?}: must be an http:// or https:// URL",
                    w.url
                ),
            ));
        }
        if w.secret.as_deref().is_some_and(|s| !name_ok(s)) {
            out.push((vec!["webhook", "secret"], name_why.to_string()));
        }
    }
    for (field, c) in [("github", &t.github), ("gitlab", &t.gitlab)] {
        let Some(c) = c else { continue };
        if c.url.as_deref().is_some_and(|u| !url_ok(u)) {
            out.push((
                vec![field, "url"],
                "Invalid value: must be an http:// or https:// URL".to_string(),
            ));
        }
        if c.repository.trim().is_empty()
            || (field == "github" && c.repository.split('/').count() != 2)
        {
            let want = if field == "github" {
                "OWNER/NAME"
            } else {
                "the project's path or ID"
            };
            out.push((
                vec![field, "repository"],
                format!("Invalid value: {:?}: must be {want}", c.repository),
            ));
        }
        if !name_ok(&c.token) {
            out.push((vec![field, "token"], name_why.to_string()));
        }
    }
    out
}
