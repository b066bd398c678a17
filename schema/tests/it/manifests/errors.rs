//! What errors say: the file, kind and object they are about; never a Secret's values.

use keel_schema::{SourceFile, load_sources};

use super::source;

#[test]
fn errors_name_file_kind_namespace_and_object() {
    let rev = load_sources(
        &[SourceFile {
            name: "apps/web.yaml".into(),
            bytes: b"apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  ports: [{port: 99999}]\n".to_vec(),
        }],
        None,
    );
    let line = rev.errors[0].to_string();
    assert_eq!(
        line,
        "apps/web.yaml:5:18: Service shop/web: spec.ports[0].port: Invalid value: 99999: must be between 1 and 65535, inclusive"
    );
}

#[test]
fn repo_config_is_strict() {
    let config = SourceFile {
        name: "keel.yaml".into(),
        bytes: b"allowEmpty: true\nprune: false\n".to_vec(),
    };
    let manifest = source("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n");
    let rev = load_sources(&[manifest], Some(&config));
    assert!(rev.config.allow_empty());
    assert_eq!(rev.errors.len(), 1);
    assert_eq!(
        (rev.errors[0].file.as_str(), rev.errors[0].line),
        ("keel.yaml", 2)
    );
    assert!(rev.errors[0].message.contains("unknown field \"prune\""));
}

#[test]
fn secret_values_never_appear_in_errors() {
    let yaml = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  a: sup3rs3cr3t!\n  b: [sup3rs3cr3t]\nstringData:\n  c: {x: sup3rs3cr3t}\n  d: 12345678901234567890123\n";
    let rev = load_sources(&[source(yaml)], None);
    assert_eq!(rev.errors.len(), 3, "{:?}", rev.errors);
    for e in &rev.errors {
        let text = format!("{e} {e:?}");
        assert!(
            !text.contains("sup3rs3cr3t") && !text.contains("1234567890"),
            "leak: {text}"
        );
    }
}

#[test]
fn debug_output_never_holds_secret_values() {
    let yaml = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: hunter2hunter2}\n";
    let file = source(yaml);
    let rev = load_sources(std::slice::from_ref(&file), None);
    let shown = format!("{file:?} {rev:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("aHVudGVy"),
        "{shown}"
    );
}
