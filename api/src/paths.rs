//! Where the API serves each kind, as Kubernetes does: `/api/v1/…` for the core group,
//! `/apis/GROUP/VERSION/…` for the others, `namespaces/NS/` for namespaced kinds.

use keel_schema::Kind;

/// The path of `kind`'s objects: all of them, those of `namespace` (namespaced kinds), or
/// the one named.
pub fn objects(kind: Kind, namespace: Option<&str>, name: Option<&str>) -> String {
    let info = kind.info();
    let mut path = if info.group().is_empty() {
        format!("/api/{}", info.api_version)
    } else {
        format!("/apis/{}", info.api_version)
    };
    if let Some(ns) = namespace.filter(|_| info.namespaced) {
        path.push_str("/namespaces/");
        path.push_str(ns);
    }
    path.push('/');
    path.push_str(info.plural);
    if let Some(name) = name {
        path.push('/');
        path.push_str(name);
    }
    path
}

pub const STATUS: &str = "/api/keel/status";
pub const HISTORY: &str = "/api/keel/history";
pub const APPLIED: &str = "/api/keel/applied";
pub const PLAN: &str = "/api/keel/plan";
pub const TOKENS: &str = "/api/keel/tokens";
/// `POST`: a one-time web UI sign-in path (`keel ui`).
pub const UI_LOGIN: &str = "/api/keel/ui-login";
/// One join token, by id (`DELETE`).
pub const TOKEN: &str = "/api/keel/tokens/{id}";
/// `POST {"nonce": …}`: the server proves it holds the admin token (see `keel_tls::token_proof`).
pub const TOKEN_PROOF: &str = "/api/keel/token-proof";
/// `DELETE` a node that is gone (`keel delete node`), as an axum route.
pub const NODE: &str = "/api/keel/nodes/{name}";
pub const HEALTHZ: &str = "/healthz";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_kubernetes() {
        assert_eq!(
            objects(Kind::Pod, Some("default"), None),
            "/api/v1/namespaces/default/pods"
        );
        assert_eq!(objects(Kind::Pod, None, None), "/api/v1/pods");
        assert_eq!(
            objects(Kind::Deployment, Some("prod"), Some("web")),
            "/apis/apps/v1/namespaces/prod/deployments/web"
        );
        assert_eq!(
            objects(Kind::Node, Some("default"), Some("n1")),
            "/api/v1/nodes/n1"
        );
    }
}
