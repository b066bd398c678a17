//! A SOPS encrypter for tests (feature `testing`), written from SOPS's documented format (the decrypter under
//! test was also checked against files the real `sops` wrote): a fresh data key wrapped for
//! an age recipient, each value encrypted with its path as associated data, and the MAC over
//! the plaintext in document order.

use std::io::Write;

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::aes::Aes256;
use base64::Engine as _;
use keel_schema::yaml::{Node, Style, Value, parse_documents, resolve_int, resolve_null};
use sha2::{Digest, Sha512};

type Cipher = aes_gcm::AesGcm<Aes256, U32>;

/// Which values are encrypted, as the `sops` block records it.
#[derive(Default, Clone)]
pub struct Rules {
    pub encrypted_regex: Option<&'static str>,
    pub unencrypted_suffix: Option<&'static str>,
    pub mac_only_encrypted: bool,
}

pub const LAST_MODIFIED: &str = "2026-12-05T10:00:00Z";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn seal(key: &[u8; 32], plain: &[u8], aad: &str, kind: &str) -> String {
    let mut iv = [0u8; 32];
    OsRng.fill_bytes(&mut iv);
    let cipher = Cipher::new_from_slice(key).unwrap();
    let sealed = cipher
        .encrypt(
            aes_gcm::Nonce::<U32>::from_slice(&iv),
            Payload {
                msg: plain,
                aad: aad.as_bytes(),
            },
        )
        .unwrap();
    let (data, tag) = sealed.split_at(sealed.len() - 16);
    format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{kind}]",
        b64(data),
        b64(&iv),
        b64(tag)
    )
}

/// A plain scalar's SOPS type and the bytes SOPS hashes for it.
fn typed(node: &Node) -> (&'static str, Vec<u8>) {
    let Value::Scalar(text, style) = &node.value else {
        unreachable!()
    };
    if *style != Style::Plain {
        return ("str", text.as_bytes().to_vec());
    }
    match text.as_str() {
        "true" => return ("bool", b"True".to_vec()),
        "false" => return ("bool", b"False".to_vec()),
        _ => {}
    }
    if let Some(i) = resolve_int(text) {
        return ("int", i.to_string().into_bytes());
    }
    ("str", text.as_bytes().to_vec())
}

fn encrypted_by(rules: &Rules, path: &[String]) -> bool {
    let mut yes = true;
    if let Some(s) = rules.unencrypted_suffix
        && path.iter().any(|p| p.ends_with(s))
    {
        yes = false;
    }
    if let Some(r) = rules.encrypted_regex {
        let re = regex::Regex::new(r).unwrap();
        yes = path.iter().any(|p| re.is_match(p));
    }
    yes
}

fn walk(node: &mut Node, path: &mut Vec<String>, key: &[u8; 32], rules: &Rules, hash: &mut Sha512) {
    if node.is_null() {
        return;
    }
    match &mut node.value {
        Value::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                path.push(k.as_str().unwrap().to_string());
                walk(v, path, key, rules, hash);
                path.pop();
            }
        }
        Value::Seq(items) => items
            .iter_mut()
            .for_each(|i| walk(i, path, key, rules, hash)),
        Value::Scalar(..) => {
            let (kind, bytes) = typed(node);
            let encrypted = encrypted_by(rules, path);
            if encrypted || !rules.mac_only_encrypted {
                hash.update(&bytes);
            }
            if encrypted {
                let aad = format!("{}:", path.join(":"));
                let text = node.as_str().unwrap().to_string();
                node.value = Value::Scalar(seal(key, text.as_bytes(), &aad, kind), Style::Quoted);
            }
        }
    }
}

/// Emits a tree as flow-style YAML (JSON's quoting is valid YAML).
fn emit(node: &Node) -> String {
    match &node.value {
        Value::Scalar(text, Style::Plain) if !resolve_null(text) => text.clone(),
        Value::Scalar(_, Style::Plain) => "null".into(),
        Value::Scalar(text, _) => serde_json::to_string(text).unwrap(),
        Value::Seq(items) => format!(
            "[{}]",
            items.iter().map(emit).collect::<Vec<_>>().join(", ")
        ),
        Value::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!(
                    "{}: {}",
                    serde_json::to_string(k.as_str().unwrap()).unwrap(),
                    emit(v)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A new age identity: the text of its key file (as `age-keygen` writes it) and its
/// recipient.
pub fn identity() -> (String, String) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let file = format!(
        "# public key: {}\n{}\n",
        id.to_public(),
        id.to_string().expose_secret()
    );
    (file, id.to_public().to_string())
}

/// `yaml` (one or more documents) encrypted for `recipient` under `rules`.
pub fn encrypt(yaml: &str, recipient: &str, rules: &Rules) -> String {
    // As sops: a file given no rule gets (and records) `unencrypted_suffix: _unencrypted`.
    let mut rules = rules.clone();
    if rules.encrypted_regex.is_none() && rules.unencrypted_suffix.is_none() {
        rules.unencrypted_suffix = Some("_unencrypted");
    }
    let rules = &rules;
    let recipient: age::x25519::Recipient = recipient.parse().expect("an age recipient");
    let recipient = &recipient;
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    let mut hash = Sha512::new();
    if rules.mac_only_encrypted {
        hash.update([
            0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47,
            0xbe, 0x0b, 0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81,
            0x76, 0xf2, 0x7d, 0x69,
        ]);
    }
    let mut docs: Vec<Node> = parse_documents(yaml)
        .unwrap()
        .into_iter()
        .filter_map(|d| d.root)
        .collect();
    for doc in &mut docs {
        walk(doc, &mut Vec::new(), &key, rules, &mut hash);
    }
    let mac: String = hash.finalize().iter().map(|b| format!("{b:02X}")).collect();
    let mac = seal(&key, mac.as_bytes(), LAST_MODIFIED, "str");
    let mut armored = Vec::new();
    {
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
                .unwrap();
        let out =
            age::armor::ArmoredWriter::wrap_output(&mut armored, age::armor::Format::AsciiArmor)
                .unwrap();
        let mut w = encryptor.wrap_output(out).unwrap();
        w.write_all(&key).unwrap();
        w.finish().and_then(|a| a.finish()).unwrap();
    }
    let mut block = format!(
        "{{\"age\": [{{\"recipient\": {}, \"enc\": {}}}], \"lastmodified\": \"{LAST_MODIFIED}\", \"mac\": \"{mac}\", \"version\": \"3.9.0\"",
        serde_json::to_string(&recipient.to_string()).unwrap(),
        serde_json::to_string(&String::from_utf8(armored).unwrap()).unwrap()
    );
    if let Some(r) = rules.encrypted_regex {
        block += &format!(
            ", \"encrypted_regex\": {}",
            serde_json::to_string(r).unwrap()
        );
    }
    if let Some(s) = rules.unencrypted_suffix {
        block += &format!(
            ", \"unencrypted_suffix\": {}",
            serde_json::to_string(s).unwrap()
        );
    }
    if rules.mac_only_encrypted {
        block += ", \"mac_only_encrypted\": true";
    }
    block += "}";
    docs.iter()
        .map(|d| {
            let body = emit(d);
            format!("{}, \"sops\": {block}}}\n", &body[..body.len() - 1])
        })
        .collect::<Vec<_>>()
        .join("---\n")
}
