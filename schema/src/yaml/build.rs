//! Builds located [`Node`] trees from yaml-rust2's event stream, without recursion.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::{Document, MAX_DEPTH, MAX_NODES, Mark, Node, Style, SyntaxError, Value};

fn mark(m: &Marker) -> Mark {
    // yaml-rust2 lines are 1-based and columns 0-based.
    Mark {
        line: u32::try_from(m.line()).unwrap_or(u32::MAX),
        col: u32::try_from(m.col().saturating_add(1)).unwrap_or(u32::MAX),
    }
}

fn node_count(node: &Node) -> usize {
    let mut count = 0;
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        count += 1;
        match &n.value {
            Value::Scalar(..) => {}
            Value::Seq(items) => stack.extend(items.iter()),
            Value::Map(entries) => {
                for (k, v) in entries {
                    stack.push(k);
                    stack.push(v);
                }
            }
        }
    }
    count
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
        key: Option<Node>,
        /// Mappings named by `<<` merge keys, applied when the mapping ends.
        merges: Vec<Node>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
    root: Option<Node>,
}

fn error(mark: Mark, message: impl Into<String>) -> SyntaxError {
    SyntaxError {
        mark,
        message: message.into(),
    }
}

impl Builder {
    fn count(&mut self, n: usize, at: Mark) -> Result<(), SyntaxError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(error(
                at,
                format!("file expands to more than {MAX_NODES} YAML nodes (alias bomb?)"),
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
        self.count(1, at)?;
        self.stack.push(frame);
        Ok(())
    }

    /// Hands a finished node to its parent (or makes it the document root).
    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), SyntaxError> {
        if anchor != 0 {
            let size = node_count(&node);
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
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
                        if let Some(name) = k.as_str()
                            && let Some((first, _)) =
                                entries.iter().find(|(e, _)| e.as_str() == Some(name))
                        {
                            return Err(error(
                                k.mark,
                                format!(
                                    "duplicate key {name:?} (first defined at line {})",
                                    first.mark.line
                                ),
                            ));
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
                merges,
                ..
            }) => {
                // Explicit keys win over merged ones; earlier merges win over later ones.
                for merged in merges {
                    if let Value::Map(more) = merged.value {
                        for (k, v) in more {
                            let present = k.as_str().is_some_and(|name| {
                                entries.iter().any(|(e, _)| e.as_str() == Some(name))
                            });
                            if !present {
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
                builder.count(1, at)?;
                let node = Node {
                    mark: at,
                    value: Value::Scalar(text, scalar_style(style, tag.as_ref())),
                };
                builder.finish(node, anchor)?;
            }
            Event::Alias(id) => {
                let Some((node, size)) = builder.anchors.get(&id).cloned() else {
                    return Err(error(at, "alias to an unknown anchor"));
                };
                builder.count(size, at)?;
                let mut node = node;
                node.mark = at;
                builder.finish(node, 0)?;
            }
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
    fn empty_documents_have_no_root() {
        let docs = parse_documents("---\n# only a comment\n---\n").unwrap();
        assert!(docs.iter().all(|d| d.root.is_none()));
        assert!(parse_documents("").unwrap().is_empty());
    }
}
