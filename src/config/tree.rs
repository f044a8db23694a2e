//! Where each key of a YAML document sits: key paths and their line:column.
//!
//! Owns a second, schema-free read of the config text that records, for every mapping key,
//! its dotted path (`quantization.activation.n_bits`, sequence items as `formats.1`) and the
//! positions of the key and of its value. Errors found after parsing (semantic checks) and
//! unknown-key errors use it to name and point at the key. Does not interpret any value.

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::error::Position;

/// One key of the document: its path from the root and where it and its value are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyEntry {
    /// Keys from the root, sequence indices as decimal numbers.
    pub path: Vec<String>,
    /// Where the key itself starts.
    pub key_at: Position,
    /// Where its value starts.
    pub value_at: Position,
    /// Whether its value is a mapping or a list (errors located there concern the container).
    pub value_is_container: bool,
}

/// Every key of a document, in document order.
#[derive(Debug, Default)]
pub(crate) struct KeyTree {
    entries: Vec<KeyEntry>,
}

impl KeyTree {
    /// Reads `text`; `None` when it is not YAML this reader can walk (the caller then reports
    /// positions without key paths).
    pub fn parse(text: &str) -> Option<Self> {
        let options = super::yaml_options();
        let root: Spanned<Node> = serde_saphyr::from_str_with_options(text, options).ok()?;
        let mut tree = Self::default();
        tree.collect(&mut Vec::new(), &root.value);
        Some(tree)
    }

    /// The entry whose dotted path is `dotted` (e.g. `calibration.batch_size`).
    pub fn find(&self, dotted: &str) -> Option<&KeyEntry> {
        self.entries
            .iter()
            .find(|entry| entry.path.join(".") == dotted)
    }

    /// Where the value of `dotted` is, or of its nearest ancestor present in the document
    /// (a key left at its default is not in the file; its section may be).
    pub fn nearest_value(&self, dotted: &str) -> Option<Position> {
        let mut key = dotted;
        loop {
            if let Some(entry) = self.find(key) {
                return Some(entry.value_at);
            }
            key = &key[..key.rfind('.')?];
        }
    }

    /// The entry whose value starts at `position`.
    pub fn value_at(&self, position: Position) -> Option<&KeyEntry> {
        self.entries.iter().find(|entry| entry.value_at == position)
    }

    /// The entry holding `entry` (none for a top-level key).
    pub fn parent(&self, entry: &KeyEntry) -> Option<&KeyEntry> {
        let (_, parent) = entry.path.split_last()?;
        self.entries
            .iter()
            .find(|candidate| candidate.path == parent)
    }

    /// The entry whose key starts at `position`.
    pub fn key_at(&self, position: Position) -> Option<&KeyEntry> {
        self.entries.iter().find(|entry| entry.key_at == position)
    }

    fn collect(&mut self, prefix: &mut Vec<String>, node: &Node) {
        match node {
            Node::Map(entries) => {
                for (key, value) in entries {
                    prefix.push(key.value.clone());
                    self.push(prefix, &key.referenced, value);
                    self.collect(prefix, &value.value);
                    prefix.pop();
                }
            }
            Node::Seq(items) => {
                for (index, item) in items.iter().enumerate() {
                    prefix.push(index.to_string());
                    self.push(prefix, &item.referenced, item);
                    self.collect(prefix, &item.value);
                    prefix.pop();
                }
            }
            Node::Scalar => {}
        }
    }

    fn push(&mut self, path: &[String], key: &serde_saphyr::Location, value: &Spanned<Node>) {
        if let (Some(key_at), Some(value_at)) = (Position::of(key), Position::of(&value.referenced))
        {
            let value_is_container = !matches!(value.value, Node::Scalar);
            self.entries.push(KeyEntry {
                path: path.to_vec(),
                key_at,
                value_at,
                value_is_container,
            });
        }
    }
}

/// A YAML node with positions kept on its children.
enum Node {
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_i128<E>(self, _: i128) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_u128<E>(self, _: u128) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_bytes<E>(self, _: &[u8]) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key()? {
            entries.push((key, map.next_value()?));
        }
        Ok(Node::Map(entries))
    }
}
