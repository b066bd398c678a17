//! Kubernetes-style field paths: `spec.template.spec.containers[0].ports[0].containerPort`.

use std::fmt;

use crate::yaml::{Mark, Node, Style, Value};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    /// A struct field: `.name`.
    Field(String),
    /// A list item: `[3]`.
    Index(usize),
    /// A map entry, such as a label: `[app.kubernetes.io/name]`.
    Key(String),
    /// The key of a map entry itself (an invalid label key, say): rendered as [`Seg::Key`],
    /// located at the key rather than its value.
    KeyName(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(Vec<Seg>);

impl FieldPath {
    pub fn root() -> Self {
        Self::default()
    }

    pub fn new(field: &str) -> Self {
        Self(vec![Seg::Field(field.to_string())])
    }

    pub fn field(&self, name: &str) -> Self {
        self.with(Seg::Field(name.to_string()))
    }

    pub fn index(&self, i: usize) -> Self {
        self.with(Seg::Index(i))
    }

    pub fn key(&self, key: &str) -> Self {
        self.with(Seg::Key(key.to_string()))
    }

    /// Like [`FieldPath::key`], for a problem with the key itself.
    pub fn key_name(&self, key: &str) -> Self {
        self.with(Seg::KeyName(key.to_string()))
    }

    fn with(&self, seg: Seg) -> Self {
        let mut segs = self.0.clone();
        segs.push(seg);
        Self(segs)
    }

    pub fn push(&mut self, seg: Seg) {
        self.0.push(seg);
    }

    pub fn segs(&self) -> &[Seg] {
        &self.0
    }

    /// The path without its last segment; `None` at the root.
    pub fn parent(&self) -> Option<FieldPath> {
        let (_, init) = self.0.split_last()?;
        Some(Self(init.to_vec()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `self` is `other` or lies under it.
    pub fn starts_with(&self, other: &FieldPath) -> bool {
        self.0.starts_with(&other.0)
    }

    /// Where this path points in a document: the offending scalar value, the key of an
    /// offending list or mapping, or — for a field that is missing — the nearest enclosing
    /// node that exists (the object missing a required field).
    pub fn locate(&self, root: &Node) -> Mark {
        let mut node = root;
        let mut at = root.mark;
        for seg in &self.0 {
            let next = match (seg, &node.value) {
                (Seg::Field(name) | Seg::Key(name) | Seg::KeyName(name), Value::Map(_)) => {
                    node.entry(name)
                }
                (Seg::Index(i), Value::Seq(items)) => items.get(*i).map(|n| (n, n)),
                _ => None,
            };
            let Some((key, value)) = next else { break };
            at = match (seg, &value.value) {
                (Seg::KeyName(_), _) => key.mark,
                // A block scalar's mark is its first content line; point at its key.
                (_, Value::Scalar(_, Style::Block)) => key.mark,
                (_, Value::Scalar(..)) => value.mark,
                _ => key.mark,
            };
            node = value;
        }
        at
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Field(name) if i == 0 => write!(f, "{name}")?,
                Seg::Field(name) => write!(f, ".{name}")?,
                Seg::Index(idx) => write!(f, "[{idx}]")?,
                Seg::Key(key) | Seg::KeyName(key) => write!(f, "[{key}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_documents;

    #[test]
    fn renders_like_kubernetes() {
        let p = FieldPath::new("spec")
            .field("containers")
            .index(0)
            .field("ports")
            .index(1)
            .field("containerPort");
        assert_eq!(p.to_string(), "spec.containers[0].ports[1].containerPort");
        assert_eq!(
            FieldPath::new("metadata")
                .field("labels")
                .key("app")
                .to_string(),
            "metadata.labels[app]"
        );
    }

    #[test]
    fn locates_values_keys_and_missing_fields() {
        let text = "spec:\n  containers:\n  - name: a\n    ports:\n    - containerPort: 99999\n";
        let root = parse_documents(text).unwrap().remove(0).root.unwrap();
        let port = FieldPath::new("spec")
            .field("containers")
            .index(0)
            .field("ports")
            .index(0)
            .field("containerPort");
        assert_eq!(port.locate(&root), Mark { line: 5, col: 22 });
        let missing = FieldPath::new("spec")
            .field("containers")
            .index(0)
            .field("image");
        assert_eq!(missing.locate(&root).line, 3);
        let list = FieldPath::new("spec").field("containers");
        assert_eq!(list.locate(&root), Mark { line: 2, col: 3 });
    }
}
