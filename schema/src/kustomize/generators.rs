//! `configMapGenerator` and `secretGenerator`: ConfigMaps and Secrets made from literals,
//! files and env files, merged into or replacing a base's (`behavior`), and named after a
//! hash of their content so that pods roll when it changes.

use std::collections::BTreeMap;

use base64::Engine as _;
use sha2::Digest as _;

use super::context::{Builder, Loaded};
use super::kustomization::{Generator, GeneratorOptions};
use super::node::{self, string, to_json};
use super::paths::base_name;
use super::resource::{Generated, Res};
use crate::path::FieldPath;
use crate::yaml::{Mark, Node, Value};

/// Runs the kustomization's generators over `objects`.
pub fn run(b: &mut Builder<'_>, k: &Loaded, dir: &str, objects: &mut Vec<Res>) {
    let lists = [
        (
            "configMapGenerator",
            "ConfigMap",
            &k.fields.config_map_generator,
        ),
        ("secretGenerator", "Secret", &k.fields.secret_generator),
    ];
    for (field, kind, gens) in lists {
        for (i, g) in gens.iter().flatten().enumerate() {
            let at = FieldPath::new(field).index(i);
            if let Some(res) = generate(b, k, dir, kind, g, &at) {
                combine(b, k, &at, g, res, objects);
            }
        }
    }
}

fn generate(
    b: &mut Builder<'_>,
    k: &Loaded,
    dir: &str,
    kind: &str,
    g: &Generator,
    at: &FieldPath,
) -> Option<Res> {
    let Some(name) = g.name.as_deref().filter(|n| !n.is_empty()) else {
        b.field_problem(k, &at.field("name"), "Required value");
        return None;
    };
    let mark = at.locate(&k.root);
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut put = |b: &mut Builder<'_>, key: String, value: Vec<u8>, at: &FieldPath| {
        if !valid_key(&key) {
            b.field_problem(k, at, format!("Invalid value: {key:?}: a data key must consist of alphanumeric characters, '-', '_' or '.'"));
        } else if data.insert(key.clone(), value).is_some() {
            b.field_problem(
                k,
                at,
                format!("Duplicate value: the key {key:?} is given twice"),
            );
        }
    };
    for (i, literal) in g.literals.iter().flatten().enumerate() {
        let at = at.field("literals").index(i);
        match literal.split_once('=') {
            Some((key, value)) => put(b, key.to_string(), unquote(value).as_bytes().to_vec(), &at),
            None => b.field_problem(
                k,
                &at,
                format!("Invalid value: {literal:?}: a literal is KEY=VALUE"),
            ),
        }
    }
    let envs = g
        .envs
        .iter()
        .flatten()
        .map(|e| (e.as_str(), "envs"))
        .chain(g.env.as_deref().map(|e| (e, "env")));
    for (i, (env, field)) in envs.enumerate() {
        let at = if field == "env" {
            at.field("env")
        } else {
            at.field("envs").index(i)
        };
        let Some((path, bytes)) = b.read_file(k, dir, env, &at) else {
            continue;
        };
        if sops_encrypted(&bytes) {
            b.field_problem(k, &at, format!("Forbidden: {path} is encrypted with SOPS; keel opens encrypted manifests only, not generator inputs"));
            continue;
        }
        let Ok(text) = String::from_utf8(bytes) else {
            b.field_problem(k, &at, format!("Invalid value: {path} is not UTF-8 text"));
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            // Lines end at \n or \r\n, a last \r included, as Go's line scanner ends them.
            let line = line.strip_suffix('\r').unwrap_or(line);
            let line = line.trim_start_matches('\u{feff}').trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once('=') {
                Some((key, value)) => put(b, key.to_string(), value.as_bytes().to_vec(), &at),
                None => b.field_problem(k, &at, format!("Invalid value: {path} line {}: {line:?} has no value (keel does not read values from its own environment)", n + 1)),
            }
        }
    }
    for (i, file) in g.files.iter().flatten().enumerate() {
        let at = at.field("files").index(i);
        let (key, path) = match file.split_once('=') {
            Some((key, path)) => (Some(key.to_string()), path),
            None => (None, file.as_str()),
        };
        let Some((read, bytes)) = b.read_file(k, dir, path, &at) else {
            continue;
        };
        if sops_encrypted(&bytes) {
            b.field_problem(k, &at, format!("Forbidden: {read} is encrypted with SOPS; keel opens encrypted manifests only, not generator inputs"));
            continue;
        }
        let key = key.unwrap_or_else(|| base_name(&read).to_string());
        put(b, key, bytes, &at);
    }
    let options = merged_options(k.fields.generator_options.as_ref(), g.options.as_ref());
    let mut root = node::map(mark);
    node::set(&mut root, "apiVersion", string("v1", mark));
    node::set(&mut root, "kind", string(kind, mark));
    let meta = node::ensure_map(&mut root, "metadata")?;
    node::set(meta, "name", string(name, mark));
    if let Some(ns) = g.namespace.as_deref().filter(|n| !n.is_empty()) {
        node::set(meta, "namespace", string(ns, mark));
    }
    for (key, pairs) in [
        ("labels", &options.labels),
        ("annotations", &options.annotations),
    ] {
        if let Some(pairs) = pairs.as_ref().filter(|p| !p.is_empty()) {
            node::set(
                meta,
                key,
                string_map(pairs.iter().map(|(k, v)| (k.clone(), v.clone())), mark),
            );
        }
    }
    let engine = base64::engine::general_purpose::STANDARD;
    if kind == "Secret" {
        let encoded = data
            .iter()
            .map(|(k, v)| (k.clone(), wrapped(&engine.encode(v))));
        node::set(&mut root, "data", string_map(encoded, mark));
        let type_ = g
            .type_
            .as_deref()
            .filter(|t| !t.is_empty())
            .unwrap_or("Opaque");
        node::set(&mut root, "type", string(type_, mark));
    } else {
        let (text, binary): (Vec<_>, Vec<_>) = data
            .into_iter()
            .partition(|(_, v)| std::str::from_utf8(v).is_ok());
        let text = text
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v).unwrap_or_default()));
        node::set(&mut root, "data", string_map(text, mark));
        if !binary.is_empty() {
            let binary = binary.into_iter().map(|(k, v)| (k, engine.encode(v)));
            node::set(&mut root, "binaryData", string_map(binary, mark));
        }
    }
    if options.immutable == Some(true) {
        node::set(
            &mut root,
            "immutable",
            Node {
                mark,
                value: Value::Scalar("true".into(), crate::yaml::Style::Plain),
            },
        );
    }
    let mut res = Res::new(root, k.file.clone());
    res.generated = Some(Generated {
        hashed: options.disable_name_suffix_hash != Some(true),
    });
    Some(res)
}

/// A generator's own options over the kustomization's `generatorOptions`.
fn merged_options(
    global: Option<&GeneratorOptions>,
    own: Option<&GeneratorOptions>,
) -> GeneratorOptions {
    let mut out = global.cloned().unwrap_or_default();
    if let Some(own) = own {
        for (mine, theirs) in [
            (&mut out.labels, &own.labels),
            (&mut out.annotations, &own.annotations),
        ] {
            if let Some(theirs) = theirs {
                mine.get_or_insert_with(BTreeMap::new)
                    .extend(theirs.clone());
            }
        }
        // As kustomize merges them: either one's `true` wins.
        let either =
            |a: Option<bool>, b: Option<bool>| (a == Some(true) || b == Some(true)).then_some(true);
        out.disable_name_suffix_hash =
            either(own.disable_name_suffix_hash, out.disable_name_suffix_hash);
        out.immutable = either(own.immutable, out.immutable);
    }
    out
}

/// Adds a generated object, or merges it into (or has it replace) the one it is about.
fn combine(
    b: &mut Builder<'_>,
    k: &Loaded,
    at: &FieldPath,
    g: &Generator,
    new: Res,
    objects: &mut Vec<Res>,
) {
    let behavior = g.behavior.as_deref().unwrap_or("create");
    let existing = objects.iter().position(|o| {
        o.kind() == new.kind()
            && (o.name() == new.name() || o.original().name == new.name())
            && o.is_in(new.namespace())
    });
    match (behavior, existing) {
        ("create", None) => objects.push(new),
        ("create", Some(_)) => {
            let message = format!(
                "Duplicate value: a {} named {:?} already exists; give behavior: merge or replace to change it",
                new.kind(),
                new.name()
            );
            b.field_problem(k, at, message);
        }
        ("merge" | "replace", None) => {
            let message = format!(
                "Not found: behavior {behavior} needs a {} named {:?} from a base to {behavior}",
                new.kind(),
                new.name()
            );
            b.field_problem(k, &at.field("behavior"), message);
        }
        ("merge", Some(i)) => {
            let old = &mut objects[i];
            // Either side disabling the hash disables it; a Secret takes the new type.
            keep_hash_if_both_want_it(old, &new);
            if new.kind() == "Secret" && g.type_.as_deref().is_some_and(|t| !t.is_empty()) {
                let mark = old.mark();
                node::set(
                    &mut old.node,
                    "type",
                    string(g.type_.as_deref().unwrap_or_default(), mark),
                );
            }
            for key in ["data", "binaryData"] {
                if let Some(Value::Map(entries)) = new.node.get(key).map(|n| n.value.clone())
                    && let Some(target) = node::ensure_map(&mut old.node, key)
                {
                    for (k, v) in entries {
                        if let Some(name) = k.as_str() {
                            node::set(target, name, v);
                        }
                    }
                }
            }
            add_labels_and_annotations(old, &new);
        }
        ("replace", Some(i)) => {
            // The data is the new generator's; the object keeps its identity, its labels
            // and annotations (the new ones added), and whether it is hashed.
            let old = &mut objects[i];
            keep_hash_if_both_want_it(old, &new);
            let mut node = new.node.clone();
            if let (Some(meta), Some(old_meta)) = (
                node::get_mut(&mut node, "metadata"),
                old.node.get("metadata"),
            ) {
                *meta = old_meta.clone();
            }
            old.node = node;
            add_labels_and_annotations(old, &new);
        }
        (other, _) => {
            let message =
                format!("Unsupported value: {other:?}: behavior is create, merge or replace");
            b.field_problem(k, &at.field("behavior"), message);
        }
    }
}

/// The new generator's labels and annotations added to (or replacing those of) `old`'s.
fn add_labels_and_annotations(old: &mut Res, new: &Res) {
    for key in ["labels", "annotations"] {
        let pairs = new.meta_map(key);
        if pairs.is_empty() {
            continue;
        }
        if let Some(target) =
            node::ensure_map(&mut old.node, "metadata").and_then(|m| node::ensure_map(m, key))
        {
            for (k, v) in pairs {
                node::set(target, &k, string(&v, new.mark()));
            }
        }
    }
}

/// Either side of a merge or replace disabling the hash suffix disables it.
fn keep_hash_if_both_want_it(old: &mut Res, new: &Res) {
    if let (Some(o), Some(n)) = (old.generated.as_mut(), new.generated) {
        o.hashed &= n.hashed;
    }
}

/// Names every generated object that wants it `NAME-HASH`, the hash of its content as
/// kustomize v5 computes it, so that names match `kubectl kustomize`'s.
pub fn add_hashes(objects: &mut [Res]) {
    for res in objects.iter_mut() {
        if !res.generated.is_some_and(|g| g.hashed) {
            continue;
        }
        let hash = content_hash(&res.node);
        let name = format!("{}-{hash}", res.name());
        res.rename(&name);
        res.generated = Some(Generated { hashed: false });
    }
}

/// kustomize's hash: SHA-256 of the JSON of the kind, the data and (for Secrets) the type,
/// the first ten hex digits with vowel-like digits swapped for consonants. kustomize v5
/// leaves the name out (it looks it up under a path that never matches), and so does keel,
/// for the same names.
pub fn content_hash(object: &Node) -> String {
    let kind = node::text_at(object, &["kind"]).unwrap_or("");
    let field = |key: &str| match object.get(key) {
        Some(n) if matches!(n.value, Value::Map(_)) => Some(to_json(n)),
        _ => None,
    };
    let mut m = serde_json::Map::new();
    m.insert("kind".into(), kind.into());
    m.insert("name".into(), "".into());
    m.insert("data".into(), field("data").unwrap_or_else(|| "".into()));
    if kind == "Secret" {
        let type_ = node::text_at(object, &["type"]).unwrap_or("");
        m.insert("type".into(), type_.into());
        if let Some(s) = field("stringData") {
            m.insert("stringData".into(), s);
        }
    } else if let Some(bin) = field("binaryData") {
        m.insert("binaryData".into(), bin);
    }
    let json = go_json(&serde_json::Value::Object(m).to_string());
    let digest = sha2::Sha256::digest(json.as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    hex.chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

/// JSON as Go's encoder writes it: `<`, `>`, `&`, U+2028 and U+2029 escaped (they only
/// occur inside strings, so a plain replacement is exact).
fn go_json(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn string_map(pairs: impl Iterator<Item = (String, String)>, mark: Mark) -> Node {
    let mut out = node::map(mark);
    for (k, v) in pairs {
        node::set(&mut out, &k, string(&v, mark));
    }
    out
}

/// A literal's value without the quotes around it (`KEY="a b"`).
fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(q) && value.ends_with(q) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Base64 as kustomize writes a generated Secret's values: in lines of 70 characters, each
/// ending in a line break, once the text is 70 characters or longer.
fn wrapped(encoded: &str) -> String {
    const LINE: usize = 70;
    if encoded.len() < LINE {
        return encoded.to_string();
    }
    let mut out = String::with_capacity(encoded.len() + encoded.len() / LINE + 1);
    for chunk in encoded.as_bytes().chunks(LINE) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// Whether a generator's input is a SOPS file (env: `sops_mac=` lines; YAML or JSON: a
/// `sops` block with a `mac`): used as it is, it would put ciphertext in a Secret.
fn sops_encrypted(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.lines().any(|l| l.starts_with("sops_mac="))
        || (text.contains("sops") && text.contains("ENC[AES256_GCM,") && text.contains("mac"))
}
