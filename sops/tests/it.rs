//! Opening SOPS files: values come back with their types, the rules saying which values are
//! encrypted are honoured, and a file changed after encryption, a wrong key or a missing one
//! is refused with a located reason that never quotes a secret.

use keel_schema::encrypted::Decrypt;
use keel_schema::kustomize::node::to_json;
use keel_schema::yaml::{Node, parse_documents};
use keel_sops::AgeKeys;
use keel_sops::testing::{Rules, encrypt};
use serde_json::json;

const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\ntype: Opaque\nstringData:\n  password: hunter2-very-secret\n  port: 5432\n  tls: true\n  hosts: [a.example, b.example]\n  note_unencrypted: stays readable\n";

fn identity() -> (String, AgeKeys) {
    let (file, recipient) = keel_sops::testing::identity();
    let keys = AgeKeys::from_text(&format!("\n{file}"), "keys.txt").unwrap();
    (recipient, keys)
}

fn docs(text: &str) -> Vec<Node> {
    parse_documents(text)
        .unwrap()
        .into_iter()
        .filter_map(|d| d.root)
        .collect()
}

#[test]
fn every_value_comes_back_with_its_type_and_the_sops_block_goes() {
    let (id, keys) = identity();
    let file = encrypt(
        SECRET,
        &id,
        &Rules {
            unencrypted_suffix: Some("_unencrypted"),
            ..Rules::default()
        },
    );
    assert!(!file.contains("hunter2"), "the password is encrypted");
    assert!(
        file.contains("stays readable"),
        "a key with the unencrypted suffix stays in clear"
    );
    let opened = keys.decrypt(&docs(&file)).expect("opens");
    assert_eq!(
        to_json(&opened[0]),
        json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}, "type": "Opaque",
            "stringData": {"password": "hunter2-very-secret", "port": 5432, "tls": true,
                "hosts": ["a.example", "b.example"], "note_unencrypted": "stays readable"}
        })
    );
}

#[test]
fn encrypted_regex_and_mac_only_encrypted_are_honoured() {
    let (id, keys) = identity();
    for rules in [
        Rules {
            encrypted_regex: Some("^(data|stringData)$"),
            ..Rules::default()
        },
        Rules {
            encrypted_regex: Some("^(data|stringData)$"),
            mac_only_encrypted: true,
            ..Rules::default()
        },
    ] {
        let file = encrypt(SECRET, &id, &rules);
        assert!(
            file.contains("\"name\": db"),
            "metadata stays in clear: {file}"
        );
        let opened = keys.decrypt(&docs(&file)).expect("opens");
        assert_eq!(
            to_json(&opened[0])["stringData"]["password"],
            "hunter2-very-secret"
        );
    }
}

#[test]
fn a_file_of_several_documents_opens_whole() {
    let (id, keys) = identity();
    let two = format!(
        "{SECRET}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {{k: v}}\n"
    );
    let opened = keys
        .decrypt(&docs(&encrypt(&two, &id, &Rules::default())))
        .expect("opens");
    assert_eq!(opened.len(), 2);
    assert_eq!(to_json(&opened[1])["data"]["k"], "v");
}

#[test]
fn a_file_changed_after_encryption_is_refused_by_its_mac() {
    let (id, keys) = identity();
    let rules = Rules {
        encrypted_regex: Some("^(data|stringData)$"),
        ..Rules::default()
    };
    let file = encrypt(SECRET, &id, &rules);
    // A value left in clear is changed: only the MAC can tell.
    let renamed = file.replace("\"namespace\": shop", "\"namespace\": kube-system");
    assert_ne!(renamed, file);
    let refused = keys.decrypt(&docs(&renamed)).unwrap_err();
    assert!(
        refused.message.contains("MAC does not match"),
        "{refused:?}"
    );
    // An encrypted value moved to another key does not decrypt there (its path is bound in).
    let value = |name: &str| {
        let at = file.find(&format!("\"{name}\": \"ENC[")).unwrap() + name.len() + 5;
        file[at..at + file[at..].find('"').unwrap()].to_string()
    };
    let swapped = file
        .replace(&value("password"), "SWAP")
        .replace(&value("port"), &value("password"))
        .replace("SWAP", &value("port"));
    let refused = keys.decrypt(&docs(&swapped)).unwrap_err();
    assert!(
        refused
            .message
            .starts_with("stringData.password: the value does not decrypt"),
        "{refused:?}"
    );
    assert!(!format!("{refused:?}").contains("hunter2"));
}

#[test]
fn a_key_that_does_not_open_the_file_names_both_recipients() {
    let (id, _) = identity();
    let (_, other) = identity();
    let file = encrypt(SECRET, &id, &Rules::default());
    let refused = other.decrypt(&docs(&file)).unwrap_err();
    assert!(refused.message.contains(&id.to_string()), "{refused:?}");
    assert!(
        refused.message.contains(&other.recipients()[0]),
        "{refused:?}"
    );
    assert_eq!(refused.mark.line, 1, "located at the file's sops block");
}

#[test]
fn key_files_are_checked_line_by_line() {
    let err = AgeKeys::from_text("# nothing\n", "k.txt")
        .unwrap_err()
        .to_string();
    assert_eq!(err, "k.txt holds no age identity (AGE-SECRET-KEY-1… lines)");
    let err = AgeKeys::from_text("AGE-SECRET-KEY-1NOTAKEY\n", "k.txt")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "k.txt line 1: not an age identity (expected AGE-SECRET-KEY-1…)"
    );
}

#[test]
fn a_revision_with_an_encrypted_file_loads_with_keys_and_is_refused_without() {
    let (id, keys) = identity();
    let file = keel_schema::SourceFile {
        name: "secrets/db.yaml".into(),
        bytes: encrypt(
            &SECRET.replace("  hosts: [a.example, b.example]\n", ""),
            &id,
            &Rules::default(),
        )
        .into_bytes(),
    };
    let files = [file];
    let reader = keel_schema::load::InMemory::new(&files);
    let rev = keel_schema::load::load_sources_with(&files, None, &reader, Some(&keys));
    assert!(rev.errors.is_empty(), "{:?}", rev.errors);
    assert_eq!(rev.manifests.len(), 1);

    let rev = keel_schema::load_sources(&files, None);
    let shown: Vec<String> = rev.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(shown.len(), 1);
    assert!(
        shown[0].starts_with("secrets/db.yaml:1:")
            && shown[0].contains("encrypted with SOPS and no age key was given"),
        "{shown:?}"
    );
    // In a kustomization too.
    let files = [
        keel_schema::SourceFile {
            name: "app/kustomization.yaml".into(),
            bytes: b"resources: [db.yaml]\nnamePrefix: p-\n".to_vec(),
        },
        keel_schema::SourceFile {
            name: "app/db.yaml".into(),
            bytes: files[0].bytes.clone(),
        },
    ];
    let reader = keel_schema::load::InMemory::new(&files);
    let rev = keel_schema::load::load_sources_with(&files, None, &reader, Some(&keys));
    assert!(rev.errors.is_empty(), "{:?}", rev.errors);
    assert_eq!(rev.manifests[0].object.name(), "p-db");
}

#[test]
fn a_file_whose_rules_sops_refuses_is_refused_and_empty_documents_are_dropped() {
    let (id, keys) = identity();
    let file = encrypt(&format!("{SECRET}---\n"), &id, &Rules::default());
    // sops writes its block into every document, an empty trailing one too.
    let sops_block = &file[file.find(", \"sops\": ").unwrap() + 2..file.len() - 2];
    let with_empty = format!("{file}---\n{{{sops_block}}}\n");
    let opened = keys.decrypt(&docs(&with_empty)).expect("opens");
    assert_eq!(opened.len(), 1, "the empty document is gone");
    let two_rules = file.replace(
        "\"unencrypted_suffix\": \"_unencrypted\"",
        "\"unencrypted_suffix\": \"_unencrypted\", \"encrypted_regex\": \"^data$\"",
    );
    let refused = keys.decrypt(&docs(&two_rules)).unwrap_err();
    assert!(refused.message.contains("both set"), "{refused:?}");
}
