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
