//! Builds located [`Node`] trees from yaml-rust2's event stream, without recursion.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::{Document, MAX_BYTES, MAX_DEPTH, MAX_NODES, Mark, Node, Style, SyntaxError, Value};

fn mark(m: &Marker) -> Mark {
    // yaml-rust2 lines are 1-based and columns 0-based.
    Mark {
        line: u32::try_from(m.line()).unwrap_or(u32::MAX),
        col: u32::try_from(m.col().saturating_add(1)).unwrap_or(u32::MAX),
    }
}

/// What a subtree costs when an alias repeats it: nodes, scalar bytes, and nesting depth.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    nodes: usize,
    bytes: usize,
    depth: usize,
}

fn cost(node: &Node) -> Cost {
    let mut total = Cost::default();
    let mut stack = vec![(node, 1usize)];
    while let Some((n, depth)) = stack.pop() {
        total.nodes += 1;
        total.depth = total.depth.max(depth);
        match &n.value {
            Value::Scalar(text, _) => total.bytes += text.len(),
            Value::Seq(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Map(entries) => {
                for (k, v) in entries {
                    stack.push((k, depth + 1));
                    stack.push((v, depth + 1));
                }
            }
        }
    }
    total
}

enum Frame {
    Seq {
        mark: Mark,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        mark: Mark,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        /// The entries' key texts and lines, for duplicate checks in constant time.
        keys: HashMap<String, u32>,
        key: Option<Node>,
        /// Mappings named by `<<` merge keys, applied when the mapping ends.
        merges: Vec<Node>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, Cost)>,
    nodes: usize,
    bytes: usize,
    root: Option<Node>,
}

fn error(mark: Mark, message: impl Into<String>) -> SyntaxError {
    SyntaxError {
        mark,
        message: message.into(),
    }
}

impl Builder {
    fn count(&mut self, nodes: usize, bytes: usize, at: Mark) -> Result<(), SyntaxError> {
        self.nodes = self.nodes.saturating_add(nodes);
        self.bytes = self.bytes.saturating_add(bytes);
        if self.nodes > MAX_NODES || self.bytes > MAX_BYTES {
            return Err(error(
                at,
                format!(
                    "file expands to more than {MAX_NODES} YAML nodes or {} MiB of text (alias bomb?)",
                    MAX_BYTES >> 20
                ),
            ));
        }
        Ok(())
    }

    fn open(&mut self, frame: Frame, at: Mark) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(error(
                at,
                format!("lists and mappings nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.count(1, 0, at)?;
        self.stack.push(frame);
        Ok(())
    }

    /// Hands a finished node to its parent (or makes it the document root).
    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), SyntaxError> {
        if anchor != 0 {
            let size = cost(&node);
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                keys,
                key,
                merges,
                ..
            }) => match key.take() {
                None => *key = Some(node),
                Some(k) => {
                    if matches!(&k.value, Value::Scalar(t, Style::Plain) if t == "<<") {
                        match &node.value {
                            Value::Map(_) => merges.push(node),
                            Value::Seq(maps)
                                if maps.iter().all(|m| matches!(m.value, Value::Map(_))) =>
                            {
                                merges.extend(maps.iter().cloned())
                            }
                            _ => {
                                return Err(error(
                                    node.mark,
                                    "a merge key `<<` needs a mapping or a list of mappings",
                                ));
                            }
                        }
                    } else {
                        if let Some(name) = k.as_str() {
                            if let Some(first) = keys.get(name) {
                                return Err(error(
                                    k.mark,
                                    format!(
                                        "duplicate key {name:?} (first defined at line {first})"
                                    ),
                                ));
                            }
                            keys.insert(name.to_string(), k.mark.line);
                        }
                        entries.push((k, node));
                    }
                }
            },
        }
        Ok(())
    }

    fn close(&mut self, at: Mark) -> Result<(), SyntaxError> {
        let (node, anchor) = match self.stack.pop() {
            Some(Frame::Seq {
                mark,
                anchor,
                items,
            }) => (
                Node {
                    mark,
                    value: Value::Seq(items),
                },
                anchor,
            ),
            Some(Frame::Map {
                mark,
                anchor,
                mut entries,
                mut keys,
                merges,
                ..
            }) => {
                // Explicit keys win over merged ones; earlier merges win over later ones.
                for merged in merges {
                    if let Value::Map(more) = merged.value {
                        for (k, v) in more {
                            let fresh = match k.as_str() {
                                Some(name) => keys.insert(name.to_string(), k.mark.line).is_none(),
                                None => true,
                            };
                            if fresh {
                                entries.push((k, v));
                            }
                        }
                    }
                }
                // A block mapping's start event sits after its first key; point at the key.
                let mark = entries.first().map_or(mark, |(k, _)| mark.min(k.mark));
                (
                    Node {
                        mark,
                        value: Value::Map(entries),
                    },
                    anchor,
                )
            }
            None => return Err(error(at, "unbalanced YAML structure")),
        };
        self.finish(node, anchor)
    }
}

impl Builder {
    fn scalar(
        &mut self,
        text: String,
        style: Style,
        anchor: usize,
        at: Mark,
    ) -> Result<(), SyntaxError> {
        self.count(1, text.len(), at)?;
        let node = Node {
            mark: at,
            value: Value::Scalar(text, style),
        };
        self.finish(node, anchor)
    }

    /// An alias is a copy of its anchored node, counted again against the limits so an
    /// alias bomb stops at the same size a written-out document would.
    fn alias(&mut self, id: usize, at: Mark) -> Result<(), SyntaxError> {
        let Some((mut node, size)) = self.anchors.get(&id).cloned() else {
            return Err(error(at, "alias to an unknown anchor"));
        };
        self.count(size.nodes, size.bytes, at)?;
        if self.stack.len() + size.depth > MAX_DEPTH {
            return Err(error(
                at,
                format!("this alias nests lists and mappings deeper than {MAX_DEPTH} levels"),
            ));
        }
        node.mark = at;
        self.finish(node, 0)
    }
}

fn scalar_style(style: TScalarStyle, tag: Option<&Tag>) -> Style {
    if let Some(tag) = tag
        && (tag.suffix == "str" || tag.suffix.ends_with(":str"))
    {
        return Style::Quoted;
    }
    match style {
        TScalarStyle::Plain => Style::Plain,
        TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => Style::Quoted,
        TScalarStyle::Literal | TScalarStyle::Folded => Style::Block,
    }
}

/// Parses every document of a file. An empty file has no documents.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        bytes: 0,
        root: None,
    };
    let mut doc_mark = Mark::default();
    loop {
        let (event, marker) = parser
            .next_token()
            .map_err(|e| error(mark(e.marker()), e.info().to_string()))?;
        let at = mark(&marker);
        match event {
            Event::StreamStart | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart => {
                doc_mark = at;
                builder.root = None;
                builder.stack.clear();
            }
            Event::DocumentEnd => {
                let root = builder.root.take().filter(|n| !n.is_null());
                docs.push(Document {
                    index: docs.len(),
                    mark: doc_mark,
                    root,
                });
            }
            Event::Scalar(text, style, anchor, tag) => {
                builder.scalar(text, scalar_style(style, tag.as_ref()), anchor, at)?
            }
            Event::Alias(id) => builder.alias(id, at)?,
            Event::SequenceStart(anchor, _) => builder.open(
                Frame::Seq {
                    mark: at,
                    anchor,
                    items: Vec::new(),
                },
                at,
            )?,
            Event::MappingStart(anchor, _) => builder.open(
                Frame::Map {
                    mark: at,
                    anchor,
                    entries: Vec::new(),
                    keys: HashMap::new(),
                    key: None,
                    merges: Vec::new(),
                },
                at,
            )?,
            Event::SequenceEnd | Event::MappingEnd => builder.close(at)?,
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let docs = parse_documents(text).expect("parses");
        docs.into_iter()
            .next()
            .and_then(|d| d.root)
            .expect("a root")
    }

    #[test]
    fn marks_are_file_lines_and_one_based_columns() {
        let docs = parse_documents("a: 1\n---\n# c\nkind: Pod\nspec:\n  x: [1, 2]\n").unwrap();
        assert_eq!(docs.len(), 2);
        let second = docs[1].root.as_ref().unwrap();
        let (k, v) = second.entry("kind").unwrap();
        assert_eq!((k.mark.line, k.mark.col), (4, 1));
        assert_eq!((v.mark.line, v.mark.col), (4, 7));
        let x = second.get("spec").unwrap().get("x").unwrap();
        assert_eq!(x.mark.line, 6);
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let root = one("base: &b {a: 1, b: 2}\nuse:\n  <<: *b\n  b: 3\nlist: *b\n");
        let used = root.get("use").unwrap();
        assert_eq!(used.get("a").and_then(Node::as_str), Some("1"));
        assert_eq!(used.get("b").and_then(Node::as_str), Some("3"));
        assert_eq!(
            root.get("list").unwrap().get("b").and_then(Node::as_str),
            Some("2")
        );
    }

    #[test]
    fn duplicate_keys_are_errors_with_both_lines() {
        let err = parse_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.mark.line, 3);
        assert!(err.message.contains("line 1"), "{}", err.message);
    }

    #[test]
    fn hostile_inputs_are_errors_not_crashes() {
        let deep = "[".repeat(10_000);
        assert!(parse_documents(&deep).is_err());
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("l{}", i - 1)
            };
            bomb.push_str(&format!(
                "l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        let err = parse_documents(&bomb).unwrap_err();
        assert!(err.message.contains("alias bomb"), "{}", err.message);
    }

    #[test]
    fn aliases_cannot_nest_past_the_depth_limit_or_blow_up_text() {
        // Each anchor nests 60 levels and refers to the previous one.
        let mut deep = String::new();
        for k in 0..5 {
            let inner = if k == 0 {
                "x".to_string()
            } else {
                format!("*a{}", k - 1)
            };
            deep.push_str(&format!(
                "a{k}: &a{k} {}{inner}{}\n",
                "[".repeat(60),
                "]".repeat(60)
            ));
        }
        let err = parse_documents(&deep).unwrap_err();
        assert!(err.message.contains("deeper than"), "{}", err.message);
        // A 1 MiB scalar repeated 10 × 10 times is 100 MiB of text from a small file.
        let big = format!(
            "a: &a \"{}\"\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n",
            "x".repeat(1 << 20)
        );
        let err = parse_documents(&big).unwrap_err();
        assert!(err.message.contains("MiB"), "{}", err.message);
    }

    #[test]
    fn duplicates_among_many_keys_name_the_first_line() {
        let mut text: String = (0..50_000).map(|i| format!("k{i}: v\n")).collect();
        assert!(parse_documents(&text).is_ok());
        text.push_str("k7: again\n");
        let err = parse_documents(&text).unwrap_err();
        assert_eq!(err.mark.line, 50_001);
        assert!(
            err.message.contains("first defined at line 8"),
            "{}",
            err.message
        );
    }

    #[test]
    fn empty_documents_have_no_root() {
        let docs = parse_documents("---\n# only a comment\n---\n").unwrap();
        assert!(docs.iter().all(|d| d.root.is_none()));
        assert!(parse_documents("").unwrap().is_empty());
    }
}
