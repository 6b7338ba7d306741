//! A JSON member config read one top-level entity at a time.
//!
//! [`parse`](super::parse::parse) builds one `serde_json::Value` of the whole
//! document; for a file of a million consumers that tree alone is tens of
//! times the input. Here a scanner finds the top-level keys and the byte
//! range of each value, and a collection (`"consumers": [...]`) is parsed a
//! batch of entities at a time (simd-json, the same strict rules), so only
//! one batch is ever a tree.
//!
//! The scanner only checks the document's outline (the top-level object, its
//! keys, the commas and brackets of each collection); every value it hands
//! out is parsed by simd-json under [`StrictValue`](super::value::StrictValue)'s
//! rules. Anything it does not accept — a syntax error, a duplicate key,
//! another root — makes the caller fall back to the whole-document parse,
//! which accepts or refuses it exactly as before and words the error.
//!
//! YAML in decK's block subset is read the same way ([`Yaml`]): the fast
//! reader splits the document at its top-level keys and reads a collection
//! an item at a time (`yaml_fast::outline`, `entry_items`).

use std::borrow::Cow;
use std::ops::Range;

use serde_json::Value;

use super::parse::yaml_fast;

/// A member document read one top-level entry at a time. Any `None` means
/// the reader gave up (invalid, or outside what it reads): the caller then
/// parses the whole document, which accepts or words the error.
pub trait Source {
    /// The top-level entries in document order, keys distinct.
    fn entries(&self) -> &[Entry];
    /// One entry's value, whole.
    fn value(&mut self, e: &Entry) -> Option<Value>;
    /// One entry's items handed to `each` in order when it is a list
    /// ([`Listed::Items`]); any other value whole ([`Listed::Not`]).
    fn items(&mut self, e: &Entry, each: &mut dyn FnMut(Value)) -> Option<Listed>;
}

/// What [`Source::items`] found.
pub enum Listed {
    Items,
    Not(Value),
}

/// JSON bytes (without a byte order mark, valid UTF-8).
pub struct Json<'a> {
    bytes: &'a [u8],
    entries: Vec<Entry>,
    buffers: simd_json::Buffers,
}

impl<'a> Json<'a> {
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        Some(Json {
            entries: entries(bytes)?,
            bytes,
            buffers: simd_json::Buffers::default(),
        })
    }
}

impl Source for Json<'_> {
    fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn value(&mut self, e: &Entry) -> Option<Value> {
        value(self.bytes, e.value.clone(), &mut self.buffers)
    }

    fn items(&mut self, e: &Entry, each: &mut dyn FnMut(Value)) -> Option<Listed> {
        if self.bytes.get(e.value.start) != Some(&b'[') {
            return self.value(e).map(Listed::Not);
        }
        items(self.bytes, e.value.clone(), &mut self.buffers, each)?;
        Some(Listed::Items)
    }
}

/// YAML text (without a byte order mark) in the fast reader's subset; the
/// same value as `parse`'s fast reader gives, an entry at a time.
pub struct Yaml<'a> {
    text: Cow<'a, str>,
    entries: Vec<Entry>,
}

impl<'a> Yaml<'a> {
    pub fn new(text: &'a str) -> Option<Self> {
        let text = yaml_fast::lf_breaks(text).ok()?;
        let entries = yaml_fast::outline(&text)
            .ok()?
            .into_iter()
            .map(|(key, value)| Entry { key, value })
            .collect();
        Some(Yaml { text, entries })
    }
}

impl Source for Yaml<'_> {
    fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn value(&mut self, e: &Entry) -> Option<Value> {
        yaml_fast::entry_value(&self.text, e.value.clone()).ok()
    }

    fn items(&mut self, e: &Entry, each: &mut dyn FnMut(Value)) -> Option<Listed> {
        match yaml_fast::entry_items(&self.text, e.value.clone(), each).ok()? {
            None => Some(Listed::Items),
            Some(v) => Some(Listed::Not(v)),
        }
    }
}

/// Bytes of entities parsed as one tree: large enough that simd-json's
/// per-call cost vanishes, small enough that the tree stays in cache.
const BATCH: usize = 64 << 10;

/// One top-level key and the bytes of its value.
#[derive(Clone)]
pub struct Entry {
    pub key: String,
    pub value: Range<usize>,
}

/// The document's top-level entries in file order, or `None` when the bytes
/// are not one JSON object with distinct keys (the caller falls back).
pub fn entries(b: &[u8]) -> Option<Vec<Entry>> {
    let mut i = ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(b, i + 1);
    let mut out: Vec<Entry> = Vec::new();
    if b.get(i) == Some(&b'}') {
        return (ws(b, i + 1) == b.len()).then_some(out);
    }
    loop {
        let k0 = i;
        i = string_end(b, i)?;
        let key: String = serde_json::from_slice(&b[k0..i]).ok()?;
        if out.iter().any(|e| e.key == key) {
            return None;
        }
        i = ws(b, i);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(b, i + 1);
        let v0 = i;
        i = value_end(b, i)?;
        out.push(Entry { key, value: v0..i });
        i = ws(b, i);
        match b.get(i) {
            Some(b',') => i = ws(b, i + 1),
            Some(b'}') => break,
            _ => return None,
        }
    }
    (ws(b, i + 1) == b.len()).then_some(out)
}

/// Parses one value of the document (at depth 1, under the root object).
pub fn value(b: &[u8], range: Range<usize>, buffers: &mut simd_json::Buffers) -> Option<Value> {
    let mut buf = b[range].to_vec();
    let tape = simd_json::to_tape_with_buffers(&mut buf, buffers).ok()?;
    let mut nodes = tape.0.iter();
    let v = super::parse::strict_from_tape(&mut nodes, 1)?;
    nodes.next().is_none().then_some(v)
}

/// The elements of the array at `range`, parsed a batch at a time and
/// handed to `each` in order; `None` (and no further calls) as soon as the
/// array or an element is not valid.
pub fn items(
    b: &[u8],
    range: Range<usize>,
    buffers: &mut simd_json::Buffers,
    mut each: impl FnMut(Value),
) -> Option<()> {
    let end = range.end;
    let mut i = range.start;
    if b.get(i) != Some(&b'[') {
        return None;
    }
    i = ws(b, i + 1);
    if b.get(i) == Some(&b']') {
        return (i + 1 == end).then_some(());
    }
    let mut buf = Vec::new();
    loop {
        // One batch: whole elements from `start` while under `BATCH` bytes.
        let start = i;
        let last;
        loop {
            i = value_end(b, i)?;
            i = ws(b, i);
            match b.get(i) {
                Some(b',') if i - start < BATCH => i = ws(b, i + 1),
                Some(b',') => {
                    last = false;
                    break;
                }
                Some(b']') => {
                    last = true;
                    break;
                }
                _ => return None,
            }
        }
        buf.clear();
        buf.push(b'[');
        buf.extend_from_slice(&b[start..i]);
        buf.push(b']');
        let tape = simd_json::to_tape_with_buffers(&mut buf, buffers).ok()?;
        let mut nodes = tape.0.iter();
        let Some(Value::Array(batch)) = super::parse::strict_from_tape(&mut nodes, 1) else {
            return None;
        };
        if nodes.next().is_some() {
            return None;
        }
        batch.into_iter().for_each(&mut each);
        if last {
            return (i + 1 == end).then_some(());
        }
        i = ws(b, i + 1);
    }
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(i) {
        i += 1;
    }
    i
}

/// Past the closing quote of the string starting at `i`.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    loop {
        j += memchr::memchr2(b'"', b'\\', b.get(j..)?)?;
        if b[j] == b'"' {
            return Some(j + 1);
        }
        j += 2;
    }
}

/// Past the end of the value starting at `i`: its brackets matched outside
/// strings (only its own kind counts, `{}` or `[]`: in valid JSON they
/// nest properly, and anything else fails the parse that follows), a scalar
/// up to the next delimiter. Checks nothing else: the value's bytes are
/// parsed afterwards. Jumps between the bytes that matter (memchr), as
/// pretty-printed input is mostly indentation.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    let (open, close) = match *b.get(i)? {
        b'"' => return string_end(b, i),
        b'{' => (b'{', b'}'),
        b'[' => (b'[', b']'),
        b',' | b']' | b'}' | b':' => return None,
        _ => {
            let mut j = i;
            while let Some(&c) = b.get(j) {
                if matches!(c, b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t') {
                    break;
                }
                j += 1;
            }
            return Some(j);
        }
    };
    let mut depth = 0usize;
    let mut j = i;
    loop {
        j += memchr::memchr3(b'"', open, close, b.get(j..)?)?;
        match b[j] {
            b'"' => {
                j = string_end(b, j)?;
                continue;
            }
            c if c == open => depth += 1,
            _ => {
                depth -= 1;
                if depth == 0 {
                    return Some(j + 1);
                }
            }
        }
        j += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each top-level entry: its key, whether it was read as a list an
    /// item at a time, and its values (the items, or the one value).
    fn all(doc: &str) -> Option<Vec<(String, bool, Vec<Value>)>> {
        let b = doc.as_bytes();
        let mut buffers = simd_json::Buffers::default();
        let mut out = Vec::new();
        for e in entries(b)? {
            let mut got = Vec::new();
            let list = b[e.value.start] == b'[';
            if list {
                items(b, e.value.clone(), &mut buffers, |v| got.push(v))?;
            } else {
                got.push(value(b, e.value.clone(), &mut buffers)?);
            }
            out.push((e.key, list, got));
        }
        Some(out)
    }

    /// Whatever the scanner accepts, the whole-document parse accepts with
    /// the same values; what it refuses falls back to that parse.
    #[test]
    fn agrees_with_the_whole_document_parse() {
        let docs = [
            r#"{"_format_version":"3.0","consumers":[{"username":"a"},{"username":"b","x":[1,{"y":"]}\"["}]}]}"#,
            r#" { "a" : [ ] , "b" : [ 1 , "x" , null , true ] , "c" : {"d":[]} , "e" : -1.5e3 } "#,
            "{\n\t\"a\":\r\n[{}]\n}\n",
            r#"{}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[1 2]}"#,
            r#"{"a":[{"b":1,"b":2}]}"#,
            r#"{"a":[1],}"#,
            r#"{"a":tru}"#,
            r#"{"a":[{"s":"\u00e9\\"}]} x"#,
            r#"[1]"#,
            r#"{"a":[{]}"#,
            r#"{"a":[}]}"#,
            r#"{"a":"x\"}"#,
            r#"{"a" 1}"#,
            r#"{"a":[1,,2]}"#,
            r#"{"\u0061":1,"a":2}"#,
        ];
        for doc in docs {
            let whole = super::super::parse::parse(doc.as_bytes(), super::super::Format::Json);
            match all(doc) {
                Some(parts) => {
                    let Ok(Value::Object(top)) = whole else {
                        panic!("scanner accepted what the parse refuses: {doc}")
                    };
                    assert_eq!(parts.len(), top.len(), "{doc}");
                    for ((k, list, vs), (k2, v2)) in parts.iter().zip(top.iter()) {
                        assert_eq!(k, k2, "{doc}");
                        match v2 {
                            Value::Array(a) if *list => assert_eq!(vs, a, "{doc}"),
                            other => assert_eq!(vs, &vec![other.clone()], "{doc}"),
                        }
                    }
                }
                None => assert!(
                    whole.is_err() || doc.starts_with('['),
                    "scanner refused a valid document: {doc}"
                ),
            }
        }
    }

    #[test]
    fn batches_split_long_collections() {
        let items_json: Vec<String> = (0..20_000)
            .map(|i| format!(r#"{{"username":"user-{i}","n":{i}}}"#))
            .collect();
        let doc = format!(r#"{{"consumers":[{}]}}"#, items_json.join(",\n "));
        let parts = all(&doc).expect("valid");
        assert_eq!(parts[0].2.len(), 20_000);
        assert_eq!(parts[0].2[19_999]["n"], 19_999);
    }
}
