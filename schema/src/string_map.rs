//! [`StringMap`]: the small string-keyed maps every pod carries (labels, annotations,
//! resource requests and limits, node selector), kept as one sorted vector.
//!
//! A `BTreeMap`'s first node has room for eleven entries whatever it holds: about 540
//! bytes for string pairs. A pod's labels and its requests are two or three entries each,
//! and a control plane holds a decoded copy of every pod (100,000 at scale), so those two
//! maps alone were about 1 KiB a pod. Sorted by key, as a `BTreeMap`, so iteration,
//! serialization and comparisons are what they were.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, DerefMut, Index};

use litemap::LiteMap;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A map from strings to `V`, sorted by key, in one vector (see the module).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StringMap<V = String>(LiteMap<String, V>);

impl<V> StringMap<V> {
    pub const fn new() -> Self {
        StringMap(LiteMap::new())
    }
}

impl<V> Default for StringMap<V> {
    fn default() -> Self {
        StringMap::new()
    }
}

impl<V> Deref for StringMap<V> {
    type Target = LiteMap<String, V>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<V> DerefMut for StringMap<V> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// `map["key"]`, as a `BTreeMap` offers it: panics when the key is absent.
impl<V> Index<&str> for StringMap<V> {
    type Output = V;

    fn index(&self, key: &str) -> &V {
        match self.0.get(key) {
            Some(value) => value,
            None => panic!("no key {key:?} in the map"),
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for StringMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

/// A key given twice keeps its last value, as with a `BTreeMap`.
impl<K: Into<String>, V> FromIterator<(K, V)> for StringMap<V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = LiteMap::new();
        map.extend(iter.into_iter().map(|(k, v)| (k.into(), v)));
        let mut map = StringMap(map);
        map.fit();
        map
    }
}

impl<K: Into<String>, V> Extend<(K, V)> for StringMap<V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        self.0.extend(iter.into_iter().map(|(k, v)| (k.into(), v)));
    }
}

impl<K: Into<String>, V, const N: usize> From<[(K, V); N]> for StringMap<V> {
    fn from(entries: [(K, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl<V> From<BTreeMap<String, V>> for StringMap<V> {
    fn from(map: BTreeMap<String, V>) -> Self {
        map.into_iter().collect()
    }
}

impl<V> From<StringMap<V>> for BTreeMap<String, V> {
    fn from(map: StringMap<V>) -> Self {
        map.0.into_iter().collect()
    }
}

impl<V> IntoIterator for StringMap<V> {
    type Item = (String, V);
    type IntoIter = <LiteMap<String, V> as IntoIterator>::IntoIter;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, V> IntoIterator for &'a StringMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = <&'a LiteMap<String, V> as IntoIterator>::IntoIter;

    fn into_iter(self) -> Self::IntoIter {
        (&self.0).into_iter()
    }
}

impl<V> StringMap<V> {
    /// Gives back the room a vector grows by: decoded maps are kept, one per object.
    fn fit(&mut self) {
        let entries = std::mem::take(&mut self.0).into_tuple_vec();
        self.0 = LiteMap::from_sorted_store_unchecked(shrunk(entries));
    }
}

fn shrunk<T>(mut entries: Vec<T>) -> Vec<T> {
    entries.shrink_to_fit();
    entries
}

impl<V: Serialize> Serialize for StringMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter())
    }
}

/// Read as a mapping only (never a list of pairs), each entry as it comes, so a wrong
/// value is reported where it is, as for any other map.
impl<'de, V: Deserialize<'de>> Deserialize<'de> for StringMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Entries<V> {
            type Value = StringMap<V>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut map = StringMap::new();
                while let Some((key, value)) = access.next_entry::<String, V>()? {
                    map.0.insert(key, value);
                }
                map.fit();
                Ok(map)
            }
        }
        deserializer.deserialize_map(Entries(std::marker::PhantomData))
    }
}

/// Described as the `BTreeMap` it stands for: an object of strings to `V`.
impl<V: schemars::JsonSchema> schemars::JsonSchema for StringMap<V> {
    fn inline_schema() -> bool {
        <BTreeMap<String, V>>::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        <BTreeMap<String, V>>::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        <BTreeMap<String, V>>::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <BTreeMap<String, V>>::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_as_a_sorted_json_object() {
        let map: StringMap = serde_json::from_str(r#"{"b": "2", "a": "1", "c": "3"}"#).unwrap();
        assert_eq!(map.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(
            serde_json::to_string(&map).unwrap(),
            r#"{"a":"1","b":"2","c":"3"}"#
        );
        assert_eq!(map.get("b").map(String::as_str), Some("2"));
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value_as_a_btreemap_does() {
        let map: StringMap = serde_json::from_str(r#"{"a": "1", "a": "2"}"#).unwrap();
        assert_eq!(map.len(), 1);
        assert_eq!(map.get("a").map(String::as_str), Some("2"));
        let collected: StringMap = [("b", "1".to_string()), ("a", "x".into()), ("b", "2".into())]
            .into_iter()
            .collect();
        assert_eq!(format!("{collected:?}"), r#"{"a": "x", "b": "2"}"#);
    }

    #[test]
    fn a_list_is_not_a_map() {
        let err = serde_json::from_str::<StringMap>(r#"[["a", "1"]]"#).unwrap_err();
        assert!(err.to_string().contains("expected a map"), "{err}");
    }

    #[test]
    fn compares_and_converts_like_the_btreemap_it_replaces() {
        let tree = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let map = StringMap::from(tree.clone());
        assert_eq!(BTreeMap::from(map.clone()), tree);
        assert_eq!(map, StringMap::from([("k", "v".to_string())]));
        assert_ne!(map, StringMap::new());
    }

    #[test]
    fn a_decoded_map_keeps_no_spare_room() {
        // A vector grows to four entries for the first; a pod's two labels keep two.
        let map: StringMap = serde_json::from_str(r#"{"app": "web", "tier": "1"}"#).unwrap();
        assert_eq!(map.0.into_tuple_vec().capacity(), 2);
    }
}
