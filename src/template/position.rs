//! Line/column lookup for any path of a YAML document.
//!
//! [`PositionIndex::build`] walks the event stream of `yaml-rust2` (which carries a marker for
//! every node) and records, for every node of the first document, the 1-based `(line, column)`
//! where it starts. Paths use the same syntax as serde_yaml's error paths and as
//! [`crate::template::validate::Problem::path`]: mapping keys joined with `.`, sequence items as
//! `[i]` — `steps.stepTwo.dependencies[0]`, `inputs[2].regex`,
//! `steps.a.conditions[0].then.stepThree`.
//!
//! Invariants: building never panics on any input (untrusted YAML); if the parser fails the
//! index is empty. For a mapping entry the position of its *key* is recorded (that is where an
//! author looks for the field); [`PositionIndex::lookup_value`] gives the value's position.
//! [`PositionIndex::lookup`] falls back to the nearest recorded ancestor of the path.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based `(line, column)` pair.
pub type Position = (u32, u32);

/// Path → position table of one YAML document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PositionIndex {
    /// Position of the key (mapping entries) or of the node itself (sequence items, root).
    keys: HashMap<String, Position>,
    /// Position of the value node.
    values: HashMap<String, Position>,
}

impl PositionIndex {
    /// Index the first document of `src`. Never panics; an unparsable source gives an empty
    /// index.
    pub fn build(src: &str) -> PositionIndex {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(src);
        match parser.load(&mut builder, false) {
            Ok(()) => PositionIndex {
                keys: builder.keys,
                values: builder.values,
            },
            Err(_) => PositionIndex::default(),
        }
    }

    /// True when nothing was recorded (empty or unparsable document).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Number of recorded paths.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Position of `path` (the key for a mapping entry), or of its nearest recorded ancestor.
    /// `None` when neither the path nor any ancestor is known (or for the empty path of an
    /// empty document).
    pub fn lookup(&self, path: &str) -> Option<Position> {
        let mut current = path;
        loop {
            if let Some(p) = self.keys.get(current) {
                return Some(*p);
            }
            current = parent_path(current)?;
        }
    }

    /// Position of the exact `path` only (no ancestor fallback).
    pub fn lookup_exact(&self, path: &str) -> Option<Position> {
        self.keys.get(path).copied()
    }

    /// Position of the value node at `path` (falls back like [`PositionIndex::lookup`]).
    pub fn lookup_value(&self, path: &str) -> Option<Position> {
        if let Some(p) = self.values.get(path) {
            return Some(*p);
        }
        self.lookup(path)
    }

    /// Every recorded path (unordered).
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

/// The parent of a path: `a.b[0].c` → `a.b[0]` → `a.b` → `a` → `""` → `None`.
pub fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// Append a mapping key to a path.
pub fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Append a sequence index to a path.
pub fn join_index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

enum Frame {
    Mapping {
        path: String,
        /// `None` while waiting for a key; `Some(key path)` while waiting for its value.
        pending_value: Option<String>,
        /// Key nodes that are themselves collections are skipped (depth of that key node).
        complex_keys: usize,
    },
    Sequence {
        path: String,
        next: usize,
    },
    /// A collection used as a mapping key: its content is not indexed.
    Skipped,
}

#[derive(Default)]
struct Builder {
    keys: HashMap<String, Position>,
    values: HashMap<String, Position>,
    stack: Vec<Frame>,
    documents: usize,
    done: bool,
}

fn pos(mark: Marker) -> Position {
    let line = u32::try_from(mark.line()).unwrap_or(u32::MAX);
    // yaml-rust2 columns are 0-based.
    let col = u32::try_from(mark.col())
        .unwrap_or(u32::MAX - 1)
        .saturating_add(1);
    (line, col)
}

enum Slot {
    /// The node is a mapping key (scalar text, when it is a scalar).
    Key,
    /// The node is a value at this path.
    Value(String),
    /// Inside a skipped (complex key) region.
    Skip,
}

impl Builder {
    /// Decide what the node starting now is, and advance the parent frame.
    fn slot(&mut self) -> Slot {
        match self.stack.last_mut() {
            None => Slot::Value(String::new()),
            Some(Frame::Skipped) => Slot::Skip,
            Some(Frame::Sequence { path, next }) => {
                let p = join_index(path, *next);
                *next += 1;
                Slot::Value(p)
            }
            Some(Frame::Mapping {
                pending_value,
                complex_keys,
                ..
            }) => {
                if *complex_keys > 0 {
                    return Slot::Skip;
                }
                match pending_value.take() {
                    Some(p) => Slot::Value(p),
                    None => Slot::Key,
                }
            }
        }
    }

    fn record_value(&mut self, path: String, p: Position) {
        self.keys.entry(path.clone()).or_insert(p);
        self.values.entry(path).or_insert(p);
    }

    fn key_scalar(&mut self, key: &str, p: Position) {
        if let Some(Frame::Mapping {
            path,
            pending_value,
            ..
        }) = self.stack.last_mut()
        {
            // yaml-rust2 marks a block mapping's start after its first key: a mapping starts
            // no later than its first key.
            for table in [&mut self.keys, &mut self.values] {
                if let Some(start) = table.get_mut(path.as_str())
                    && p < *start
                {
                    *start = p;
                }
            }
            let kp = join_key(path, key);
            *pending_value = Some(kp.clone());
            self.keys.entry(kp).or_insert(p);
        }
    }

    fn start_collection(&mut self, mapping: bool, p: Position) {
        match self.slot() {
            Slot::Skip => self.stack.push(Frame::Skipped),
            Slot::Key => {
                // A collection used as a key: mark it so its content is skipped, and make the
                // parent expect a value afterwards under a placeholder key.
                if let Some(Frame::Mapping {
                    path,
                    pending_value,
                    ..
                }) = self.stack.last_mut()
                {
                    *pending_value = Some(join_key(path, "?"));
                }
                self.stack.push(Frame::Skipped);
            }
            Slot::Value(path) => {
                self.record_value(path.clone(), p);
                if mapping {
                    self.stack.push(Frame::Mapping {
                        path,
                        pending_value: None,
                        complex_keys: 0,
                    });
                } else {
                    self.stack.push(Frame::Sequence { path, next: 0 });
                }
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.done {
            return;
        }
        let p = pos(mark);
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.done = true;
                }
            }
            Event::DocumentEnd => {
                if self.documents >= 1 {
                    self.done = true;
                }
            }
            Event::Scalar(text, ..) => match self.slot() {
                Slot::Key => self.key_scalar(&text, p),
                Slot::Value(path) => self.record_value(path, p),
                Slot::Skip => {}
            },
            Event::Alias(_) => match self.slot() {
                Slot::Key => self.key_scalar("*", p),
                Slot::Value(path) => self.record_value(path, p),
                Slot::Skip => {}
            },
            Event::MappingStart(..) => self.start_collection(true, p),
            Event::SequenceStart(..) => self.start_collection(false, p),
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "name: x
steps:
  stepOne:
    action: {type: echo}
  stepTwo:
    dependencies: [stepOne, \"stepThree\"]
    conditions:
      - type: check
        then:
          stepThree: PRUNE
inputs:
  - name: a
  - name: b
    regex: '^x$'
";

    #[test]
    fn keys_and_values_are_located() {
        let idx = PositionIndex::build(SRC);
        assert_eq!(idx.lookup("name"), Some((1, 1)));
        assert_eq!(idx.lookup_value("name"), Some((1, 7)));
        assert_eq!(idx.lookup("steps.stepOne"), Some((3, 3)));
        assert_eq!(idx.lookup("steps.stepOne.action.type"), Some((4, 14)));
        assert_eq!(idx.lookup("steps.stepTwo.dependencies[0]"), Some((6, 20)));
        assert_eq!(idx.lookup("steps.stepTwo.dependencies[1]"), Some((6, 29)));
        assert_eq!(
            idx.lookup("steps.stepTwo.conditions[0].then.stepThree"),
            Some((10, 11))
        );
        assert_eq!(idx.lookup("inputs[1].regex"), Some((14, 5)));
        assert_eq!(idx.lookup("inputs[1]"), Some((13, 5)));
    }

    #[test]
    fn lookup_falls_back_to_ancestors() {
        let idx = PositionIndex::build(SRC);
        assert_eq!(
            idx.lookup("steps.stepOne.action.nothing.deeper"),
            Some((4, 5))
        );
        assert_eq!(idx.lookup("inputs[7].x"), Some((11, 1)));
        assert_eq!(idx.lookup("unknown"), Some((1, 1)));
        assert_eq!(idx.lookup_exact("unknown"), None);
    }

    #[test]
    fn bad_or_odd_input_never_panics() {
        for src in [
            "",
            "a: [",
            "{",
            "- - - -",
            "? [a, b]\n: c\nd: e",
            "a: &x {b: 1}\nc: *x",
            "---\na: 1\n---\nb: 2",
            "\t\tfoo: bar",
            "a:\n  b:\n    - {c: [1, {d: e}]}",
        ] {
            let _ = PositionIndex::build(src);
        }
        assert!(PositionIndex::build("a: [").is_empty());
        let idx = PositionIndex::build("? [a, b]\n: c\nd: e");
        assert_eq!(idx.lookup_exact("d"), Some((3, 1)));
        let idx = PositionIndex::build("---\na: 1\n---\nb: 2");
        assert!(idx.lookup_exact("b").is_none());
        assert_eq!(idx.lookup_exact("a"), Some((2, 1)));
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent_path("a.b[0].c"), Some("a.b[0]"));
        assert_eq!(parent_path("a.b[0]"), Some("a.b"));
        assert_eq!(parent_path("a"), Some(""));
        assert_eq!(parent_path(""), None);
    }
}
