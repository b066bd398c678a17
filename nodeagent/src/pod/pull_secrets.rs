//! `imagePullSecrets`: the credentials for an image's registry, from the pod's Secrets of type
//! `kubernetes.io/dockerconfigjson` (`.dockerconfigjson`, `{"auths": {SERVER: …}}`) or the
//! older `kubernetes.io/dockercfg` (`.dockercfg`, `{SERVER: …}`), matched as the kubelet
//! matches them: by registry host (a `*.` wildcard for one label) and, when the entry names
//! a path, by repository prefix; the most specific entry wins, the pod's first Secret first.

use std::collections::BTreeMap;

use base64::Engine;
use keel_schema::types::core::Secret;
use serde::Deserialize;

pub use crate::runtime::RegistryAuth;

#[derive(Deserialize)]
struct Entry {
    username: Option<String>,
    password: Option<String>,
    /// base64 of `username:password`.
    auth: Option<String>,
}

#[derive(Deserialize)]
struct ConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

/// Docker Hub's names for itself.
const DOCKER_HUB: &[&str] = &["docker.io", "index.docker.io", "registry-1.docker.io"];

/// The registry host and repository path of an image reference (`nginx:1` is Docker Hub's
/// `library/nginx`).
pub fn registry_of(image: &str) -> (String, String) {
    let name = image.split('@').next().unwrap_or(image);
    let (first, rest) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        Some(_) => ("docker.io".to_string(), name.to_string()),
        None => ("docker.io".to_string(), format!("library/{name}")),
    };
    // The tag is not part of the repository.
    let repo = match rest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo.to_string(),
        _ => rest,
    };
    (first, repo)
}

/// A config key as host and path: `https://index.docker.io/v1/` → (`index.docker.io`, ``).
fn key_parts(key: &str) -> (String, String) {
    let key = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let (host, path) = key.split_once('/').unwrap_or((key, ""));
    let path = path.trim_end_matches('/');
    let path = match path {
        "v1" | "v2" => "",
        p => p,
    };
    (host.to_ascii_lowercase(), path.to_string())
}

fn host_matches(pattern: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    if DOCKER_HUB.contains(&pattern) && DOCKER_HUB.contains(&host.as_str()) {
        return true;
    }
    match pattern.strip_prefix("*.") {
        // One label: `*.example.com` matches `r.example.com`, not `a.r.example.com`.
        Some(domain) => host
            .strip_suffix(domain)
            .and_then(|h| h.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => pattern == host,
    }
}

/// How specifically `key` matches the image (`None`: it does not).
fn specificity(key: &str, host: &str, repo: &str) -> Option<usize> {
    let (pattern, path) = key_parts(key);
    if !host_matches(&pattern, host) {
        return None;
    }
    let by_path = path.is_empty()
        || repo == path
        || repo
            .strip_prefix(path.as_str())
            .is_some_and(|r| r.starts_with('/'));
    by_path.then_some(pattern.len() + path.len() + usize::from(!pattern.starts_with("*.")))
}

/// The entries of one Secret's registry config (nothing, when it has none or it is not
/// valid: the pull then goes without it, as the kubelet's does).
fn entries(secret: &Secret) -> Vec<(String, Entry)> {
    let data = secret.data.as_ref().map(|d| &d.0);
    let decode = |key: &str| -> Option<Vec<u8>> {
        let text = data?.get(key)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
    };
    if let Some(bytes) = decode(".dockerconfigjson") {
        return serde_json::from_slice::<ConfigJson>(&bytes)
            .map(|c| c.auths.into_iter().collect())
            .unwrap_or_default();
    }
    if let Some(bytes) = decode(".dockercfg") {
        return serde_json::from_slice::<BTreeMap<String, Entry>>(&bytes)
            .map(|c| c.into_iter().collect())
            .unwrap_or_default();
    }
    Vec::new()
}

fn login(server: &str, entry: &Entry) -> Option<RegistryAuth> {
    let (username, password) = match (&entry.username, &entry.password, &entry.auth) {
        (Some(u), Some(p), _) if !u.is_empty() => (u.clone(), p.clone()),
        (_, _, Some(auth)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()?;
            let text = String::from_utf8(bytes).ok()?;
            let (u, p) = text.split_once(':')?;
            (u.to_string(), p.to_string())
        }
        _ => return None,
    };
    Some(RegistryAuth {
        server: server.to_string(),
        username,
        password,
    })
}

/// The login for `image` from `secrets` (in the pod's order), if any matches.
pub fn auth_for(image: &str, secrets: &[&Secret]) -> Option<RegistryAuth> {
    let (host, repo) = registry_of(image);
    let mut best: Option<(usize, RegistryAuth)> = None;
    for secret in secrets {
        for (key, entry) in entries(secret) {
            let Some(score) = specificity(&key, &host, &repo) else {
                continue;
            };
            if best.as_ref().is_some_and(|(s, _)| *s >= score) {
                continue;
            }
            if let Some(auth) = login(&key, &entry) {
                best = Some((score, auth));
            }
        }
    }
    best.map(|(_, auth)| auth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(key: &str, config: serde_json::Value) -> Secret {
        let encoded = base64::engine::general_purpose::STANDARD.encode(config.to_string());
        serde_json::from_value(json!({
            "metadata": {"name": "regcred"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {key: encoded}
        }))
        .unwrap()
    }

    fn basic(user: &str, pass: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    }

    #[test]
    fn images_name_their_registry_and_repository() {
        for (image, host, repo) in [
            ("nginx", "docker.io", "library/nginx"),
            ("nginx:1.25", "docker.io", "library/nginx"),
            ("team/app:2", "docker.io", "team/app"),
            (
                "registry.example.com/team/app:2",
                "registry.example.com",
                "team/app",
            ),
            ("localhost:5000/app", "localhost:5000", "app"),
            ("127.0.0.1:5055/a/b@sha256:00", "127.0.0.1:5055", "a/b"),
        ] {
            assert_eq!(registry_of(image), (host.into(), repo.into()), "{image}");
        }
    }

    #[test]
    fn the_most_specific_entry_of_the_first_matching_secrets_wins() {
        let one = secret(
            ".dockerconfigjson",
            json!({"auths": {
                "https://index.docker.io/v1/": {"auth": basic("hub", "p1")},
                "registry.example.com": {"username": "any", "password": "p2"},
                "registry.example.com/team": {"username": "team", "password": "p3"},
                "*.corp.example": {"auth": basic("corp", "p4")}
            }}),
        );
        let user = |image: &str| auth_for(image, &[&one]).map(|a| a.username);
        assert_eq!(user("busybox").as_deref(), Some("hub"));
        assert_eq!(
            user("registry.example.com/other/app").as_deref(),
            Some("any")
        );
        assert_eq!(
            user("registry.example.com/team/app:1").as_deref(),
            Some("team")
        );
        assert_eq!(
            user("registry.example.com/teams/app").as_deref(),
            Some("any")
        );
        assert_eq!(user("r.corp.example/app").as_deref(), Some("corp"));
        assert_eq!(
            user("a.r.corp.example/app"),
            None,
            "a wildcard is one label"
        );
        assert_eq!(user("quay.io/app"), None);
        let auth = auth_for("busybox", &[&one]).unwrap();
        assert_eq!(auth.password, "p1");
        assert!(!format!("{auth:?}").contains("p1"), "no password in logs");
    }

    #[test]
    fn the_older_format_and_broken_secrets() {
        let old = secret(
            ".dockercfg",
            json!({"localhost:5000": {"auth": basic("old", "x")}}),
        );
        assert_eq!(
            auth_for("localhost:5000/app", &[&old]).map(|a| a.username),
            Some("old".into())
        );
        let broken = secret(".dockerconfigjson", json!("not a config"));
        assert_eq!(auth_for("busybox", &[&broken]), None);
        let no_password = secret(
            ".dockerconfigjson",
            json!({"auths": {"docker.io": {"auth": "bm9jb2xvbg=="}}}),
        );
        assert_eq!(auth_for("busybox", &[&no_password]), None);
    }
}
