//! The `sops` block of an encrypted document: who can open it (age stanzas), when it was
//! last written (the MAC's associated data), the encrypted MAC, and which values are
//! encrypted.

use keel_schema::yaml::{Mark, Node, Value};
use regex::Regex;

/// One age recipient and the data key encrypted to it (an armored age file).
#[derive(Debug, Clone)]
pub struct AgeStanza {
    pub recipient: String,
    pub enc: String,
}

/// The rules that say whether a value is encrypted, as SOPS applies them.
#[derive(Debug, Default)]
pub struct Rules {
    pub unencrypted_suffix: Option<String>,
    pub encrypted_suffix: Option<String>,
    pub unencrypted_regex: Option<Regex>,
    pub encrypted_regex: Option<Regex>,
}

#[derive(Debug)]
pub struct Metadata {
    pub age: Vec<AgeStanza>,
    pub last_modified: String,
    pub mac: String,
    pub mac_only_encrypted: bool,
    pub rules: Rules,
    /// Where the block is, for problems with the file as a whole.
    pub mark: Mark,
}

/// Reads the `sops` block at `block`. `Err` names what is missing or unsupported.
pub fn read(block: &Node, key_mark: Mark) -> Result<Metadata, (Mark, String)> {
    let text = |key: &str| {
        block
            .get(key)
            .and_then(Node::as_str)
            .filter(|s| !s.is_empty())
    };
    let at = |key: &str| block.entry(key).map_or(key_mark, |(k, _)| k.mark);
    for refused in ["unencrypted_comment_regex", "encrypted_comment_regex"] {
        if text(refused).is_some() {
            return Err((
                at(refused),
                format!(
                    "sops.{refused} is not supported: keel reads manifests without their comments"
                ),
            ));
        }
    }
    let mut age = Vec::new();
    if let Some(Value::Seq(items)) = block.get("age").map(|n| &n.value) {
        for item in items {
            let field = |k: &str| item.get(k).and_then(Node::as_str).unwrap_or("").to_string();
            age.push(AgeStanza {
                recipient: field("recipient"),
                enc: field("enc"),
            });
        }
    }
    // A data key wrapped only for other key services: say which.
    if age.is_empty() && block.get("key_groups").is_some() {
        return Err((key_mark, "the file's data key is split into key_groups (Shamir), which keel does not open; encrypt it for an age recipient".to_string()));
    }
    if age.is_empty() {
        let others: Vec<&str> = ["pgp", "kms", "gcp_kms", "azure_kv", "hc_vault"]
            .into_iter()
            .filter(
                |k| matches!(block.get(k).map(|n| &n.value), Some(Value::Seq(s)) if !s.is_empty()),
            )
            .collect();
        let why = if others.is_empty() {
            "the file names no age recipient".to_string()
        } else {
            format!(
                "the file's data key is encrypted only with {} (keel opens age recipients only)",
                others.join(", ")
            )
        };
        return Err((key_mark, why));
    }
    let last_modified =
        text("lastmodified").ok_or((key_mark, "sops.lastmodified is missing".to_string()))?;
    let mac = text("mac").ok_or((key_mark, "sops.mac is missing".to_string()))?;
    let regex = |key: &str| -> Result<Option<Regex>, (Mark, String)> {
        text(key)
            .map(|r| {
                Regex::new(r).map_err(|e| {
                    (
                        at(key),
                        format!(
                            "sops.{key} is not a regular expression: {}",
                            e.to_string().lines().last().unwrap_or_default()
                        ),
                    )
                })
            })
            .transpose()
    };
    let given: Vec<&str> = [
        "unencrypted_suffix",
        "encrypted_suffix",
        "unencrypted_regex",
        "encrypted_regex",
    ]
    .into_iter()
    .filter(|k| text(k).is_some())
    .collect();
    if given.len() > 1 {
        return Err((
            at(given[1]),
            format!(
                "sops.{} and sops.{} are both set; sops allows one",
                given[0], given[1]
            ),
        ));
    }
    let rules = Rules {
        // sops's default when a file names no rule.
        unencrypted_suffix: text("unencrypted_suffix")
            .map(str::to_string)
            .or_else(|| given.is_empty().then(|| "_unencrypted".to_string())),
        encrypted_suffix: text("encrypted_suffix").map(str::to_string),
        unencrypted_regex: regex("unencrypted_regex")?,
        encrypted_regex: regex("encrypted_regex")?,
    };
    let mac_only_encrypted = block
        .get("mac_only_encrypted")
        .and_then(Node::as_str)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    Ok(Metadata {
        age,
        last_modified: last_modified.to_string(),
        mac: mac.to_string(),
        mac_only_encrypted,
        rules,
        mark: key_mark,
    })
}

impl Rules {
    /// Whether the value at `path` (the keys leading to it) is encrypted.
    pub fn encrypted(&self, path: &[String]) -> bool {
        let mut encrypted = true;
        if let Some(suffix) = &self.unencrypted_suffix
            && path.iter().any(|p| p.ends_with(suffix.as_str()))
        {
            encrypted = false;
        }
        if let Some(suffix) = &self.encrypted_suffix {
            encrypted = path.iter().any(|p| p.ends_with(suffix.as_str()));
        }
        if let Some(re) = &self.unencrypted_regex
            && path.iter().any(|p| re.is_match(p))
        {
            encrypted = false;
        }
        if let Some(re) = &self.encrypted_regex {
            encrypted = path.iter().any(|p| re.is_match(p));
        }
        encrypted
    }
}
