//! [`CustomKind`]: a kind a CustomResourceDefinition declares. Built-in kinds are the
//! [`Kind`] enum's rows; a custom kind is its `Custom` variant, holding this handle. The
//! handle is interned so that `Kind` stays `Copy` and its facts stay `&'static` like a
//! row's. It is compared by group and kind name only: the same kind read from a definition
//! and read back from the store is one kind.
//!
//! Its other facts (version, plural, scope) are exact when the handle comes from a
//! definition ([`CustomKind::of_definition`]). When it comes from an object or a store key
//! alone, the plural is kubectl's guess and the version is the one the object states.
//! Whatever needs the real plural (API paths) goes through the definition. The interned
//! facts leak by design: one small entry per distinct set of facts ever seen, which the
//! definitions in one repository bound. The handle itself is two indexes into
//! append-only tables, so it has no interior mutability of its own.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{OnceLock, RwLock};

use super::{Kind, KindInfo};
use crate::types::apiextensions::CustomResourceDefinition;

/// How many sets of facts objects alone (not definitions) may add to the tables.
pub const MAX_UNDECLARED: usize = 10_000;

/// Store keys of custom kinds start with this, then `Kind.group`: they sort apart from
/// the built-in kinds' and never collide with one of the same name in another group.
pub const KEY_PREFIX: char = '~';

/// A kind a CustomResourceDefinition declares (see the module's documentation): indexes
/// into two append-only tables, its identity (group and name) and its facts.
#[derive(Clone, Copy)]
pub struct CustomKind {
    identity: u32,
    facts: u32,
}

struct Identity {
    group: &'static str,
    name: &'static str,
    /// `Kind.group`, as keys and messages show it.
    qualified: &'static str,
}

/// What identifies one set of facts: every fact in it.
#[derive(PartialEq, Eq, Hash)]
struct Facts {
    group: String,
    name: String,
    version: String,
    plural: String,
    namespaced: bool,
    short_names: Vec<String>,
}

#[derive(Default)]
struct Tables {
    identities: Vec<&'static Identity>,
    identity_of: HashMap<(String, String), u32>,
    infos: Vec<&'static KindInfo>,
    facts_of: HashMap<Facts, u32>,
}

fn tables() -> &'static RwLock<Tables> {
    static TABLES: OnceLock<RwLock<Tables>> = OnceLock::new();
    TABLES.get_or_init(Default::default)
}

fn leak(text: &str) -> &'static str {
    Box::leak(text.to_string().into_boxed_str())
}

/// An index into a table that holds far fewer than `u32::MAX` entries (one per kind and
/// set of facts seen).
fn index(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl CustomKind {
    fn intern(facts: Facts) -> CustomKind {
        if let Some(found) = CustomKind::find(&facts) {
            return found;
        }
        let mut t = tables().write().unwrap_or_else(|e| e.into_inner());
        let key = (facts.group.clone(), facts.name.clone());
        let identity = match t.identity_of.get(&key) {
            Some(i) => *i,
            None => {
                let i = index(t.identities.len());
                t.identities.push(Box::leak(Box::new(Identity {
                    group: leak(&facts.group),
                    name: leak(&facts.name),
                    qualified: leak(&format!("{}.{}", facts.name, facts.group)),
                })));
                t.identity_of.insert(key, i);
                i
            }
        };
        if let Some(f) = t.facts_of.get(&facts) {
            return CustomKind {
                identity,
                facts: *f,
            };
        }
        let kind = CustomKind {
            identity,
            facts: index(t.infos.len()),
        };
        let short_names: Vec<&'static str> = facts.short_names.iter().map(|s| leak(s)).collect();
        t.infos.push(Box::leak(Box::new(KindInfo {
            kind: Kind::Custom(kind),
            api_version: leak(&format!("{}/{}", facts.group, facts.version)),
            plural: leak(&facts.plural),
            short_names: Box::leak(short_names.into_boxed_slice()),
            namespaced: facts.namespaced,
            live_only: false,
        })));
        t.facts_of.insert(facts, kind.facts);
        kind
    }

    fn find(facts: &Facts) -> Option<CustomKind> {
        let t = tables().read().unwrap_or_else(|e| e.into_inner());
        let f = *t.facts_of.get(facts)?;
        let identity = *t
            .identity_of
            .get(&(facts.group.clone(), facts.name.clone()))?;
        Some(CustomKind { identity, facts: f })
    }

    fn identity(self) -> &'static Identity {
        let t = tables().read().unwrap_or_else(|e| e.into_inner());
        t.identities[self.identity as usize]
    }

    /// The kind `crd` declares, as served at `version`.
    pub fn of_definition(crd: &CustomResourceDefinition, version: &str) -> CustomKind {
        let names = &crd.spec.names;
        CustomKind::intern(Facts {
            group: crd.spec.group.clone(),
            name: names.kind.clone(),
            version: version.to_string(),
            plural: names.plural.clone(),
            namespaced: crd.spec.scope != "Cluster",
            short_names: names.short_names.clone().unwrap_or_default(),
        })
    }

    /// The kind an object states (`apiVersion: GROUP/VERSION`, `kind`), namespaced when it
    /// has a namespace. `None` without a group (the core group has no custom kinds), for a
    /// kind name that is not alphanumeric (a dot would make `Kind.group` ambiguous), and
    /// once [`MAX_UNDECLARED`] sets of facts are kept: objects alone (a plan request, say)
    /// must not grow the tables without bound.
    pub fn of_object(api_version: &str, name: &str, namespaced: bool) -> Option<CustomKind> {
        let (group, version) = api_version.rsplit_once('/')?;
        let named = name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric());
        if group.is_empty() || !named {
            return None;
        }
        let facts = Facts {
            group: group.to_string(),
            name: name.to_string(),
            version: version.to_string(),
            plural: guess_plural(name),
            namespaced,
            short_names: Vec::new(),
        };
        if let Some(found) = CustomKind::find(&facts) {
            return Some(found);
        }
        let full = tables()
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .infos
            .len()
            >= MAX_UNDECLARED;
        (!full).then(|| CustomKind::intern(facts))
    }

    /// The kind a store key or a serialized [`Kind`] names: `Kind.group`.
    pub fn of_qualified(qualified: &str) -> Option<CustomKind> {
        let (name, group) = qualified.split_once('.')?;
        CustomKind::of_object(&format!("{group}/"), name, true)
    }

    pub fn group(self) -> &'static str {
        self.identity().group
    }

    /// The kind's name, as in `kind:`.
    pub fn name(self) -> &'static str {
        self.identity().name
    }

    /// `Kind.group`, which names it wherever a kind of another group could have its name.
    pub fn qualified(self) -> &'static str {
        self.identity().qualified
    }

    pub fn info(self) -> &'static KindInfo {
        let t = tables().read().unwrap_or_else(|e| e.into_inner());
        t.infos[self.facts as usize]
    }
}

/// kubectl's guess at a plural: lower case, `s` added (`es` after s, x, z, ch, sh; `ies`
/// for a consonant and y).
fn guess_plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|e| lower.ends_with(e))
    {
        format!("{lower}es")
    } else if lower.ends_with('y') && !lower.ends_with("ay") && !lower.ends_with("ey") {
        format!("{}ies", &lower[..lower.len() - 1])
    } else {
        format!("{lower}s")
    }
}

impl PartialEq for CustomKind {
    fn eq(&self, other: &Self) -> bool {
        self.identity == other.identity
    }
}

impl Eq for CustomKind {}

impl Hash for CustomKind {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.identity.hash(state);
    }
}

impl fmt::Debug for CustomKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.qualified())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_kind_whatever_its_facts_and_plurals_as_kubectl_guesses() {
        let stated = CustomKind::of_object("stable.example.com/v1", "CronTab", true).unwrap();
        let keyed = CustomKind::of_qualified("CronTab.stable.example.com").unwrap();
        assert_eq!(stated, keyed);
        assert_eq!(stated.info().api_version, "stable.example.com/v1");
        assert_eq!(stated.info().plural, "crontabs");
        assert_eq!(stated.info().kind, Kind::Custom(stated));
        assert_ne!(
            stated,
            CustomKind::of_object("other.example.com/v1", "CronTab", true).unwrap()
        );
        assert_eq!(CustomKind::of_object("v1", "CronTab", true), None);
        for (kind, plural) in [
            ("Policy", "policies"),
            ("Gateway", "gateways"),
            ("Ingress", "ingresses"),
            ("Match", "matches"),
        ] {
            assert_eq!(guess_plural(kind), plural);
        }
    }
}
