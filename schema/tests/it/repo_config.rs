//! keel.yaml's `notify:` entries are checked when the revision is read, each problem located.

use keel_schema::{SourceFile, load_sources};

#[test]
fn notify_targets_name_secrets_by_file_name_and_reach_http_urls() {
    let config = SourceFile {
        name: "keel.yaml".into(),
        bytes: b"notify:\n- webhook: {url: 'ftp://x', secret: ../admin-token}\n- github: {repository: shop, token: /var/lib/keel/admin-token}\n- webhook: {url: 'https://a'}\n  gitlab: {repository: g/p, token: t}\n- gitlab: {repository: group/sub/shop, token: gl-token}\n".to_vec(),
    };
    let manifest = SourceFile {
        name: "cm.yaml".into(),
        bytes: b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n".to_vec(),
    };
    let rev = load_sources(&[manifest], Some(&config));
    let shown: Vec<String> = rev.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        shown,
        [
            "keel.yaml:2:18: notify[0].webhook.url: Invalid value: \"ftp://x\": must be an http:// or https:// URL",
            "keel.yaml:2:37: notify[0].webhook.secret: Invalid value: a file name in the server's --notify-secrets-dir (no folders)",
            "keel.yaml:3:24: notify[1].github.repository: Invalid value: \"shop\": must be OWNER/NAME",
            "keel.yaml:3:37: notify[1].github.token: Invalid value: a file name in the server's --notify-secrets-dir (no folders)",
            "keel.yaml:4:3: notify[2]: Invalid value: give exactly one of webhook, github and gitlab",
        ]
    );
}

fn file(name: &str, text: &str) -> SourceFile {
    SourceFile {
        name: name.into(),
        bytes: text.as_bytes().to_vec(),
    }
}

#[test]
fn apps_are_checked_and_located() {
    let config = file(
        "keel.yaml",
        "apps:\n- {name: web, path: apps/web}\n- {name: web, path: apps/web/inner}\n- {name: API, path: ../api, namespace: Not_A_Label}\n- {name: db, path: /srv/db}\n",
    );
    let rev = load_sources(
        &[file(
            "apps/web/a.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
        )],
        Some(&config),
    );
    let shown: Vec<String> = rev.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(shown.len(), 6, "{shown:#?}");
    assert!(shown[0].starts_with("keel.yaml:3:10: apps[1].name: Duplicate value: \"web\""));
    assert!(shown[1].starts_with(
        "keel.yaml:3:21: apps[1].path: Invalid value: \"apps/web/inner\": overlaps the path of app \"web\""
    ));
    assert!(shown[2].starts_with("keel.yaml:4:10: apps[2].name: Invalid value: \"API\""));
    assert!(shown[3].starts_with("keel.yaml:4:21: apps[2].path: Invalid value: \"../api\""));
    assert!(shown[4].contains("apps[2].namespace: Invalid value: \"Not_A_Label\""));
    assert!(shown[5].starts_with("keel.yaml:5:20: apps[3].path: Invalid value: \"/srv/db\""));
}

#[test]
fn each_app_is_read_on_its_own_with_its_namespace() {
    let config = file(
        "deploy/keel.yaml",
        "apps:\n- {name: web, path: web, namespace: shop}\n- {name: empty, path: nothing}\n- {name: quiet, path: quiet, allowEmpty: true}\n",
    );
    let cm = |name: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n");
    let files = [
        file("deploy/web/a.yaml", &cm("a")),
        // A namespace written is kept; a cluster-wide kind gets none.
        file(
            "deploy/web/b.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: other}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
        ),
        // A pod's ServiceAccount is looked for in the app's namespace.
        file(
            "deploy/web/pod.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  serviceAccountName: builder\n  containers: [{name: c, image: busybox:1}]\n",
        ),
        file(
            "deploy/web/sa.yaml",
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: builder}\n",
        ),
        file("deploy/root.yaml", &cm("r")),
        // The same object in two apps: the first in keel.yaml's order keeps it.
        file(
            "deploy/dup.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: shop}\n",
        ),
    ];
    let rev = load_sources(&files, Some(&config));
    let namespaces: Vec<(String, String)> = rev
        .manifests
        .iter()
        .map(|m| {
            (
                m.object.name().to_string(),
                m.object.namespace().to_string(),
            )
        })
        .collect();
    for (name, ns) in [
        ("a", "shop"),
        ("b", "other"),
        ("shop", ""),
        ("p", "shop"),
        ("r", "default"),
    ] {
        assert!(
            namespaces.contains(&(name.to_string(), ns.to_string())),
            "{name} in {ns:?}: {namespaces:?}"
        );
    }
    let shown: Vec<String> = rev.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(shown.len(), 2, "{shown:#?}");
    assert!(
        shown[0].starts_with("deploy/dup.yaml:1:1: ConfigMap shop/a: Duplicate value: app web declares this object too (deploy/web/a.yaml:1)"),
        "{shown:#?}"
    );
    assert_eq!(
        shown[1],
        "deploy/keel.yaml:1:1: app empty: no files in its folder deploy/nothing; to run nothing in it, give it allowEmpty: true"
    );
}
