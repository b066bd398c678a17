//! What `keel up` prints once the cluster is up: where everything is, and what to try.

use std::path::Path;

use super::stages::Cluster;

pub async fn print(cluster: &Cluster<'_>, repo: &Path, example: bool) {
    let keel = std::env::current_exe()
        .ok()
        .filter(|p| !in_path(p))
        .map_or_else(|| "keel".to_string(), |p| p.display().to_string());
    let mut lines = vec![String::new(), "keel is up.".to_string(), String::new()];
    for (name, url) in cluster.node_port_urls().await {
        lines.push(format!("  {name:<6} {url}"));
    }
    lines.push(format!("  repo   {}", repo.display()));
    lines.push(format!("  server {}", cluster.url));
    // The UI under the name localhost: browsers send a host's cookies to all its ports, and
    // the apps' NodePorts are printed on 127.0.0.1, so their pages never see the session.
    let ui = cluster
        .url
        .trim_end_matches('/')
        .replacen("://127.0.0.1:", "://localhost:", 1);
    lines.push(format!(
        "  ui     {ui}/  (a sign-in link: {keel} ui --server {ui})"
    ));
    // The CLI finds the API token by itself in keel up's default data dir only.
    let default_token = super::default_data_dir()
        .join("server")
        .join(keel_reconciler::auth::api_token::FILE);
    if cluster.token_file != default_token
        && let Some(dir) = cluster.token_file.parent()
    {
        lines.push(format!(
            "  token  {}  (export KEEL_DATA_DIR={} so that keel commands find it)",
            cluster.token_file.display(),
            dir.display()
        ));
    }
    if let Some(tls) = &cluster.tls_listen() {
        let data_dir = cluster
            .token_file
            .parent()
            .map(|d| format!(" --data-dir {}", d.display()))
            .unwrap_or_default();
        lines.push(format!(
            "  kubectl  {keel} kubeconfig --server https://{tls}{data_dir} -o kubeconfig && KUBECONFIG=kubeconfig kubectl get pods"
        ));
    }
    lines.push(String::new());
    lines.push(format!("Try it (in {}):", repo.display()));
    if example {
        lines.extend(example_steps(&keel, &cluster.url));
    } else {
        lines.push(format!(
            "  1. change a manifest and commit:  git commit -am \"...\"  (applied within seconds)\n  2. review a branch:  {keel} plan --repo . --from BRANCH --to OTHER-BRANCH\n  3. roll back:  git revert --no-edit HEAD\n\nCtrl-C stops the cluster."
        ));
    }
    crate::output::out(&(lines.join("\n") + "\n"));
}

/// The tour of the example app.
fn example_steps(keel: &str, url: &str) -> Vec<String> {
    let server = server_flag(url);
    vec![
        "  1. change the page:  edit web/configmap.yaml, then  git commit -am \"new page\"".into(),
        format!(
            "  2. review a change:  git checkout -b v2 && sed -i s/web:1/web:2/ web/deployment.yaml && git commit -am v2 && git checkout main\n                       {keel} plan --repo . --from main --to v2"
        ),
        "  3. roll back:        git revert --no-edit HEAD".into(),
        String::new(),
        format!(
            "See it with `{keel} get pods{server}` and `{keel} status{server}`. Ctrl-C stops the cluster."
        ),
    ]
}

/// `--server URL` for the client verbs, unless `url` is their default.
fn server_flag(url: &str) -> String {
    if url == keel_api::DEFAULT_SERVER {
        String::new()
    } else {
        format!(" --server {url}")
    }
}

/// Whether `exe` is what `keel` on the PATH runs.
fn in_path(exe: &Path) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            std::fs::canonicalize(dir.join("keel")).ok() == std::fs::canonicalize(exe).ok()
        })
    })
}
