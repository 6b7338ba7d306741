//! A fast reader for the block-style YAML subset that decK and Kong's tools
//! write, building the `serde_json::Value` directly from the bytes.
//!
//! It covers what real decK files hold: block mappings and sequences (the
//! sequence at its key's indentation or deeper); plain scalars, also over
//! several lines; single- and double-quoted scalars, also over several lines;
//! literal block scalars (`|`, `|-`, `|+`); one-line flow sequences of scalars
//! (`[a, "b", 3]`, `[]`) and the empty flow mapping `{}`; comments, blank
//! lines, a leading byte order mark (stripped by the caller) and CRLF line
//! breaks.
//!
//! Anything outside that subset (anchors, aliases, tags, merge keys, other
//! flow collections, folded block scalars, tabs used as indentation or
//! separators, a CR that is not part of a CRLF, directives and document
//! markers, nesting near the depth limit) and anything that is an error (a
//! duplicate key, a bad indentation) makes it give up ([`Bail`]): the caller
//! then parses the whole input with the full YAML parser (serde-saphyr), which
//! gives the value or the error (with its line and column) exactly as before.
//!
//! So this reader must never return a value the full parser would not: the
//! `yaml_agreement` fuzz target and `tests/yaml.rs` compare both on
//! arbitrary and tricky inputs. Plain scalars are typed by a port of
//! serde-saphyr's own rules for untyped values (YAML 1.2 core booleans only,
//! `null`/`~`/empty as null, decimal, `0x`/`0o`/`0b` integers with `_`
//! separators, floats), with non-finite floats left to the full parser (which
//! refuses them).

use std::borrow::Cow;
use std::ops::Range;

use serde_json::{Map, Number, Value};

/// The input is outside the fast subset (or is an error): use the full parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bail;

type R<T> = Result<T, Bail>;

/// Collections nested deeper than this are left to the full parser, which
/// enforces the real limit (`MAX_DEPTH`) and words its error.
pub const FAST_MAX_DEPTH: usize = 100;

/// Implicit keys longer than this are left to the full parser (YAML limits
/// them to 1024 characters).
const MAX_KEY_LEN: usize = 1000;

/// Parses `text` if it is in the fast subset; `Err(Bail)` otherwise.
pub fn parse(text: &str) -> R<Value> {
    parse_lf(&lf_breaks(text)?)
}

/// `text` with LF line breaks. CRLF line breaks (Windows editors) are made
/// LF: YAML reads a CRLF as one line break, so the same document with LF
/// breaks has the same value. A CR alone bails.
pub fn lf_breaks(text: &str) -> R<Cow<'_, str>> {
    if text.as_bytes().contains(&b'\r') {
        return crlf_to_lf(text).map(Cow::Owned);
    }
    Ok(Cow::Borrowed(text))
}

/// `text` with every CRLF made LF; a CR not followed by LF bails.
fn crlf_to_lf(text: &str) -> R<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('\r') {
        if rest.as_bytes().get(i + 1) != Some(&b'\n') {
            return Err(bail(line!()));
        }
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn parse_lf(text: &str) -> R<Value> {
    let bytes = text.as_bytes();
    precheck(bytes)?;
    let mut p = Parser::new(text, 0);
    let Some(indent) = p.next_content_line()? else {
        return Err(bail(line!()));
    };
    if indent != 0 {
        return Err(bail(line!()));
    }
    p.check_line_start()?;
    let value = if p.at_seq_entry() {
        p.sequence(0)?
    } else {
        p.mapping(0)?
    };
    // The root collection ends only at the end of the input.
    if p.next_content_line()?.is_some() {
        return Err(bail(line!()));
    }
    Ok(value)
}

/// The top-level entries of a document whose root is a block mapping, in
/// order: each key with the span of its value, from after its `:` to the
/// next top-level key. [`entry_value`] and [`entry_items`] then read one
/// entry at a time (`config::stream`), so the whole tree is never built.
///
/// Top-level keys are the lines starting at column 0 with something other
/// than `-`, `#` or a space: inside the root mapping nothing else starts
/// there (a value's lines are indented, a sequence at its key's column
/// starts with `-`). A span cut wrongly by that rule holds an unfinished
/// or a second entry, which its read refuses. Bails on anything [`parse`]
/// might not read as these same entries: another root, a duplicate key,
/// anything outside the subset up to the keys.
pub fn outline(text: &str) -> R<Vec<(String, Range<usize>)>> {
    let s = text.as_bytes();
    precheck(s)?;
    let mut starts = Vec::new();
    let mut line = 0;
    while line < s.len() {
        if !matches!(s[line], b' ' | b'\n' | b'-' | b'#' | b'\t') {
            starts.push(line);
        }
        line = match memchr::memchr(b'\n', &s[line..]) {
            Some(n) => line + n + 1,
            None => s.len(),
        };
    }
    let mut p = Parser::new(text, 1);
    if p.next_content_line()? != Some(0) || starts.first() != Some(&p.pos) {
        return Err(bail(line!()));
    }
    let mut seen = std::collections::HashSet::with_capacity(starts.len());
    let mut out = Vec::with_capacity(starts.len());
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(s.len());
        p.pos = start;
        p.check_line_start()?;
        let key = p.key()?;
        if p.pos > end || !seen.insert(key.clone()) {
            return Err(bail(line!()));
        }
        out.push((key, p.pos..end));
    }
    Ok(out)
}

/// The value of a top-level entry whose span [`outline`] gave.
pub fn entry_value(text: &str, span: Range<usize>) -> R<Value> {
    let mut p = Parser::new(text.get(..span.end).ok_or_else(|| bail(line!()))?, 1);
    p.pos = span.start;
    let v = p.value_after_key(0)?;
    p.finish_entry()?;
    Ok(v)
}

/// A top-level entry's value read one item at a time when it is a sequence:
/// each item goes to `each` as soon as it is read (`Ok(None)`). Any other
/// value is returned whole (`Ok(Some)`).
pub fn entry_items(
    text: &str,
    span: Range<usize>,
    each: &mut dyn FnMut(Value),
) -> R<Option<Value>> {
    let mut p = Parser::new(text.get(..span.end).ok_or_else(|| bail(line!()))?, 1);
    p.pos = span.start;
    let v = p.value_streamed(each)?;
    p.finish_entry()?;
    match v {
        Some(Value::Array(items)) => {
            items.into_iter().for_each(each);
            Ok(None)
        }
        other => Ok(other),
    }
}

/// The document as the entry-at-a-time read sees it ([`outline`], then
/// [`entry_items`] for each entry), put back together: for the tests and
/// the `yaml_agreement` fuzz target, which check it is [`parse`]'s value.
pub fn parse_by_entries(text: &str) -> R<Value> {
    let text = lf_breaks(text)?;
    let mut out = Map::new();
    for (key, span) in outline(&text)? {
        let mut items = Vec::new();
        let v = match entry_items(&text, span, &mut |v| items.push(v))? {
            Some(v) => v,
            None => Value::Array(items),
        };
        out.insert(key, v);
    }
    Ok(Value::Object(out))
}

/// Bytes the fast reader leaves to the full parser wherever they appear: CR
/// (a CR alone, once CRLFs are made LF), control characters other than tab
/// and LF, DEL, C1 controls (including NEL), a byte order mark after the
/// start, U+2028, U+2029, U+FFFE and U+FFFF. The caller has checked the
/// input is UTF-8.
fn precheck(s: &[u8]) -> R<()> {
    for (i, &b) in s.iter().enumerate() {
        if !PRECHECK[b as usize] {
            continue;
        }
        let next = s.get(i + 1).copied().unwrap_or(0);
        let third = s.get(i + 2).copied().unwrap_or(0);
        let refused = match b {
            0xc2 => next < 0xa0,
            0xe2 => next == 0x80 && (third == 0xa8 || third == 0xa9),
            0xef => (next == 0xbb && third == 0xbf) || (next == 0xbf && third >= 0xbe),
            _ => true,
        };
        if refused {
            return Err(bail(line!()));
        }
    }
    Ok(())
}

/// The bytes [`precheck`] looks at: controls other than tab and LF, DEL, and
/// the lead bytes of the refused multi-byte characters.
const PRECHECK: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b != b'\n' as usize && b != b'\t' as usize;
        b += 1;
    }
    t[0x7f] = true;
    t[0xc2] = true;
    t[0xe2] = true;
    t[0xef] = true;
    t
};

/// Bytes that may end a plain scalar or need a look: LF, tab, space, `:`, `#`.
const PLAIN_STOP: [bool; 256] = {
    let mut t = [false; 256];
    t[b'\n' as usize] = true;
    t[b'\t' as usize] = true;
    t[b' ' as usize] = true;
    t[b':' as usize] = true;
    t[b'#' as usize] = true;
    t
};

struct Parser<'a> {
    text: &'a str,
    s: &'a [u8],
    pos: usize,
    depth: usize,
    /// Entries of the mappings being read, innermost last.
    entries: Vec<(String, Value)>,
    /// Items of the sequences being read, innermost last.
    items: Vec<Value>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, depth: usize) -> Self {
        Parser {
            text,
            s: text.as_bytes(),
            pos: 0,
            depth,
            entries: Vec::new(),
            items: Vec::new(),
        }
    }

    /// After a top-level entry's value: nothing but blank and comment lines
    /// may be left in its span.
    fn finish_entry(&mut self) -> R<()> {
        match self.next_content_line()? {
            None => Ok(()),
            Some(_) => Err(bail(line!())),
        }
    }

    /// [`Self::value_after_key`] for a top-level key, a block sequence's
    /// items handed to `each` instead of collected (then `None`).
    fn value_streamed(&mut self, each: &mut dyn FnMut(Value)) -> R<Option<Value>> {
        while self.peek() == b' ' {
            self.pos += 1;
        }
        let line = match self.peek() {
            b'\n' => self.pos + 1,
            b'#' => self.line_end(self.pos) + 1,
            _ => return self.inline_value(0).map(Some),
        };
        self.pos = line;
        // As `block_node(0, true)` would read it: a sequence at column 0 or deeper.
        if let Some(indent) = self.next_content_line()?
            && self.at_seq_entry()
        {
            self.sequence_to(indent, Some(each))?;
            return Ok(None);
        }
        self.pos = line;
        self.block_node(0, true).map(Some)
    }

    fn peek(&self) -> u8 {
        self.s.get(self.pos).copied().unwrap_or(b'\n')
    }

    fn at(&self, i: usize) -> u8 {
        self.s.get(i).copied().unwrap_or(b'\n')
    }

    fn str(&self, from: usize, to: usize) -> R<&'a str> {
        // Slices are cut at ASCII delimiters, so always at char boundaries
        // (which `get` checks, without validating the UTF-8 again).
        self.text.get(from..to).ok_or_else(|| bail(line!()))
    }

    /// Moves to the first line (from the current position, which must be a
    /// line start) holding something other than spaces or a comment, leaves
    /// `pos` after its indentation and returns that indentation; `None` at
    /// the end of the input. A tab in the indentation bails.
    fn next_content_line(&mut self) -> R<Option<usize>> {
        loop {
            let start = self.pos;
            let mut i = start;
            while i < self.s.len() && self.s[i] == b' ' {
                i += 1;
            }
            if i >= self.s.len() {
                self.pos = i;
                return Ok(None);
            }
            match self.s[i] {
                b'\n' => self.pos = i + 1,
                b'\t' => return Err(bail(line!())),
                b'#' => self.pos = self.line_end(i) + 1,
                _ => {
                    self.pos = i;
                    return Ok(Some(i - start));
                }
            }
        }
    }

    /// Index of the `\n` ending the line holding `i` (or the input's length).
    fn line_end(&self, i: usize) -> usize {
        match self
            .s
            .get(i..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        {
            Some(n) => i + n,
            None => self.s.len(),
        }
    }

    /// At column 0: `---`, `...` (document markers) and `%` (directives) are
    /// left to the full parser.
    fn check_line_start(&self) -> R<()> {
        let b = self.peek();
        if b == b'%' {
            return Err(bail(line!()));
        }
        if (b == b'-' || b == b'.')
            && self.at(self.pos + 1) == b
            && self.at(self.pos + 2) == b
            && matches!(self.at(self.pos + 3), b' ' | b'\t' | b'\n')
        {
            return Err(bail(line!()));
        }
        Ok(())
    }

    /// Whether `pos` is at a block sequence entry (`-` then space or end of line).
    fn at_seq_entry(&self) -> bool {
        self.peek() == b'-' && matches!(self.at(self.pos + 1), b' ' | b'\n')
    }

    /// After a value on a line: only spaces, then an optional comment (after
    /// a space), then the end of the line. Leaves `pos` at the next line.
    fn end_of_line(&mut self) -> R<()> {
        let start = self.pos;
        while self.peek() == b' ' {
            self.pos += 1;
        }
        match self.peek() {
            b'\n' => {
                self.pos += 1;
                Ok(())
            }
            b'#' if self.pos > start => {
                self.pos = self.line_end(self.pos) + 1;
                Ok(())
            }
            _ => Err(bail(line!())),
        }
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > FAST_MAX_DEPTH {
            return Err(bail(line!()));
        }
        Ok(())
    }

    /// A block mapping whose keys are at column `indent`; `pos` is at its
    /// first key (which may follow a sequence entry's `- ` on the same line).
    fn mapping(&mut self, indent: usize) -> R<Value> {
        self.mapping_from(indent, None)
    }

    /// [`Self::mapping`], its first key already read (`pos` after its `:`) when `first`.
    fn mapping_from(&mut self, indent: usize, mut first: Option<String>) -> R<Value> {
        self.enter()?;
        // Entries are gathered on a stack shared by all mappings, so each map
        // is allocated once at its final size (as the JSON path sizes maps
        // from simd-json's tape): no growth, no spare capacity kept.
        let base = self.entries.len();
        loop {
            let key = match first.take() {
                Some(k) => k,
                None => self.key()?,
            };
            let value = self.value_after_key(indent)?;
            self.entries.push((key, value));
            let line = self.pos;
            match self.next_content_line()? {
                Some(n) if n == indent => {
                    if indent == 0 {
                        self.check_line_start()?;
                    }
                    if self.at_seq_entry() {
                        return Err(bail(line!()));
                    }
                }
                // Deeper: a continuation line or an error.
                Some(n) if n > indent => return Err(bail(line!())),
                // Shallower or the end: the parent reads that line again.
                _ => {
                    self.pos = line;
                    break;
                }
            }
        }
        self.depth -= 1;
        let mut out = Map::with_capacity(self.entries.len() - base);
        for (key, value) in self.entries.drain(base..) {
            if out.insert(key, value).is_some() {
                // Duplicate key: the full parser words the error.
                return Err(bail(line!()));
            }
        }
        Ok(Value::Object(out))
    }

    /// A mapping key and its `:`; `pos` is left after the `:`.
    fn key(&mut self) -> R<String> {
        let start = self.pos;
        let key = match self.peek() {
            b'"' => self.double_quoted(None)?,
            b'\'' => self.single_quoted(None)?,
            _ => {
                let s = self.plain()?;
                return self.plain_key(start, s);
            }
        };
        self.key_colon(start, key)
    }

    /// A plain scalar read from `start` (`pos` after it) as a key, with its `:`.
    fn plain_key(&mut self, start: usize, s: &str) -> R<String> {
        if s == "<<" {
            // A merge key.
            return Err(bail(line!()));
        }
        let key = key_string(s)?;
        self.key_colon(start, key)
    }

    /// The `:` after a key read from `start`; `pos` is left after it.
    fn key_colon(&mut self, start: usize, key: String) -> R<String> {
        if self.pos - start > MAX_KEY_LEN {
            return Err(bail(line!()));
        }
        while self.peek() == b' ' {
            self.pos += 1;
        }
        if self.peek() != b':' || !matches!(self.at(self.pos + 1), b' ' | b'\n') {
            return Err(bail(line!()));
        }
        self.pos += 1;
        Ok(key)
    }

    /// The value of a mapping entry whose key is at column `indent`; `pos` is
    /// just after the `:`. Leaves `pos` at the start of the line after the value.
    fn value_after_key(&mut self, indent: usize) -> R<Value> {
        while self.peek() == b' ' {
            self.pos += 1;
        }
        match self.peek() {
            b'\n' => {
                self.pos += 1;
                self.block_node(indent, true)
            }
            b'#' => {
                // Comment right after `key:` (preceded by a space, checked by
                // the key's `: ` rule).
                self.pos = self.line_end(self.pos) + 1;
                self.block_node(indent, true)
            }
            _ => self.inline_value(indent),
        }
    }

    /// The node on the lines after `key:` or `-` with nothing else on the
    /// line: a collection indented deeper than `parent` (or, for a mapping
    /// value, a sequence at `parent`), or null when nothing is there.
    fn block_node(&mut self, parent: usize, seq_at_parent: bool) -> R<Value> {
        let line = self.pos;
        let indent = match self.next_content_line()? {
            Some(n) => n,
            None => return Ok(Value::Null),
        };
        if indent > parent {
            if self.at_seq_entry() {
                return self.sequence(indent);
            }
            return match self.peek() {
                // A scalar or flow node on its own line: left to the full
                // parser. (A quoted scalar there must be a key.)
                b'[' | b'{' | b'|' | b'>' | b'&' | b'*' | b'!' | b'?' => Err(bail(line!())),
                _ => self.mapping(indent),
            };
        }
        if indent == parent && seq_at_parent && self.at_seq_entry() {
            return self.sequence(indent);
        }
        // Empty value; the caller reads the next line again.
        self.pos = line;
        Ok(Value::Null)
    }

    /// A value starting on the current line after `key: ` or `- `, in a
    /// collection at column `parent`.
    fn inline_value(&mut self, parent: usize) -> R<Value> {
        let v = match self.peek() {
            b'"' => Value::String(self.double_quoted(Some(parent))?),
            b'\'' => Value::String(self.single_quoted(Some(parent))?),
            b'|' => return self.literal(parent),
            b'[' => self.flow_sequence()?,
            b'{' => {
                // Only the empty flow mapping.
                if self.at(self.pos + 1) != b'}' {
                    return Err(bail(line!()));
                }
                self.pos += 2;
                Value::Object(Map::new())
            }
            _ => {
                let s = self.plain()?;
                if self.peek() == b':' {
                    // `key: a: b`: an error, or something not in the subset.
                    return Err(bail(line!()));
                }
                return self.plain_lines(s, parent);
            }
        };
        self.end_of_line()?;
        Ok(v)
    }

    /// A plain value whose first line is `first` (`pos` after it), with the
    /// continuation lines that follow it: lines indented deeper than
    /// `parent`, folded into one space (or one line feed per empty line
    /// between). A comment ends the scalar. Continuation lines starting with
    /// an indicator, or holding `: `, bail. Leaves `pos` at the next line.
    fn plain_lines(&mut self, first: &'a str, parent: usize) -> R<Value> {
        let before = self.pos;
        self.end_of_line()?;
        if self
            .s
            .get(before..self.pos)
            .is_some_and(|t| t.contains(&b'#'))
        {
            // A comment after the first line: nothing can continue it.
            return plain_value(first);
        }
        let mut folded: Option<String> = None;
        loop {
            let line = self.pos;
            // Empty lines, then the next line's indentation.
            let mut empty = 0;
            let mut i = line;
            let indent = loop {
                let start = i;
                while i < self.s.len() && self.s[i] == b' ' {
                    i += 1;
                }
                match self.s.get(i) {
                    None => break None,
                    Some(b'\n') => {
                        empty += 1;
                        i += 1;
                    }
                    Some(b'\t') => return Err(bail(line!())),
                    Some(_) => break Some(i - start),
                }
            };
            match indent {
                Some(n) if n > parent && self.s[i] != b'#' => {}
                // Not a continuation: the caller reads from `line` again.
                _ => {
                    self.pos = line;
                    break;
                }
            }
            if matches!(
                self.s[i],
                b'-' | b'?'
                    | b':'
                    | b','
                    | b'['
                    | b']'
                    | b'{'
                    | b'}'
                    | b'&'
                    | b'*'
                    | b'!'
                    | b'|'
                    | b'>'
                    | b'\''
                    | b'"'
                    | b'%'
                    | b'@'
                    | b'`'
            ) {
                return Err(bail(line!()));
            }
            self.pos = i;
            let text = self.plain()?;
            if self.peek() == b':' {
                // `key: value` deeper than a plain scalar: an error.
                return Err(bail(line!()));
            }
            let out = folded.get_or_insert_with(|| first.to_owned());
            if empty == 0 {
                out.push(' ');
            } else {
                out.extend(std::iter::repeat_n('\n', empty));
            }
            out.push_str(text);
            let before = self.pos;
            self.end_of_line()?;
            if self
                .s
                .get(before..self.pos)
                .is_some_and(|t| t.contains(&b'#'))
            {
                break;
            }
        }
        match folded {
            Some(text) => plain_value(&text),
            None => plain_value(first),
        }
    }

    /// A block sequence whose `-` are at column `indent`; `pos` is at the first `-`.
    fn sequence(&mut self, indent: usize) -> R<Value> {
        self.sequence_to(indent, None)
    }

    /// [`Self::sequence`]; with `each`, every item goes there as it is read
    /// and the array returned is empty.
    fn sequence_to(&mut self, indent: usize, mut each: Option<&mut dyn FnMut(Value)>) -> R<Value> {
        self.enter()?;
        // Items on a shared stack, each sequence allocated once (see `mapping_from`).
        let base = self.items.len();
        loop {
            // At `-`, followed by a space or the end of the line.
            let dash = self.pos;
            self.pos += 1;
            while self.peek() == b' ' {
                self.pos += 1;
            }
            let item = match self.peek() {
                b'\n' => {
                    self.pos += 1;
                    self.block_node(indent, false)?
                }
                b'#' => {
                    self.pos = self.line_end(self.pos) + 1;
                    self.block_node(indent, false)?
                }
                b'-' if matches!(self.at(self.pos + 1), b' ' | b'\n') => return Err(bail(line!())),
                _ => self.entry(indent, self.pos - dash + indent)?,
            };
            match each.as_mut() {
                Some(f) => f(item),
                None => self.items.push(item),
            }
            let line = self.pos;
            match self.next_content_line()? {
                Some(n) if n == indent => {
                    if indent == 0 {
                        self.check_line_start()?;
                    }
                    if !self.at_seq_entry() {
                        // The parent mapping's next key (a sequence at its key's
                        // indentation), or an error: the parent decides.
                        self.pos = line;
                        break;
                    }
                }
                Some(n) if n > indent => return Err(bail(line!())),
                _ => {
                    self.pos = line;
                    break;
                }
            }
        }
        self.depth -= 1;
        Ok(Value::Array(self.items.drain(base..).collect()))
    }

    /// A sequence entry's content starting on the `-` line at column `col`:
    /// a compact mapping (`- key: value`) or a scalar.
    fn entry(&mut self, indent: usize, col: usize) -> R<Value> {
        let start = self.pos;
        // Is it `key:`? Scan the first scalar and look at what follows.
        let is_key = match self.peek() {
            b'"' | b'\'' => {
                if self.peek() == b'"' {
                    self.double_quoted(Some(indent))?;
                } else {
                    self.single_quoted(Some(indent))?;
                }
                let multi_line = self.s[start..self.pos].contains(&b'\n');
                while self.peek() == b' ' {
                    self.pos += 1;
                }
                if self.peek() == b':' && multi_line {
                    // An implicit key can't span lines.
                    return Err(bail(line!()));
                }
                self.peek() == b':'
            }
            b'|' | b'[' | b'{' => false,
            _ => {
                // Plain: read once, as a key or as the value.
                let s = self.plain()?;
                if self.peek() == b':' {
                    let key = self.plain_key(start, s)?;
                    return self.mapping_from(col, Some(key));
                }
                return self.plain_lines(s, indent);
            }
        };
        self.pos = start;
        if is_key {
            self.mapping(col)
        } else {
            self.inline_value(indent)
        }
    }

    /// A plain scalar on one line, in block context: ends at the end of the
    /// line, at `: ` / `:` + end of line, or at ` #`. Trailing spaces are not
    /// part of it. Bails on what a plain scalar can't start with here and on tabs.
    fn plain(&mut self) -> R<&'a str> {
        let start = self.pos;
        let first = self.peek();
        match first {
            b'\n' | b' ' | b'\t' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!'
            | b'|' | b'>' | b'\'' | b'"' | b'%' | b'@' | b'`' => return Err(bail(line!())),
            b'-' | b'?' | b':' if matches!(self.at(start + 1), b' ' | b'\t' | b'\n') => {
                return Err(bail(line!()));
            }
            _ => {}
        }
        let s = self.s;
        let mut i = start;
        let mut end = start;
        loop {
            // Runs of ordinary bytes at once.
            let run = i;
            while i < s.len() && !PLAIN_STOP[s[i] as usize] {
                i += 1;
            }
            if i > run {
                end = i;
            }
            let Some(&b) = s.get(i) else { break };
            match b {
                b'\n' => break,
                b'\t' => return Err(bail(line!())),
                b':' if matches!(self.at(i + 1), b' ' | b'\t' | b'\n') => break,
                b'#' if i > start && s[i - 1] == b' ' => break,
                b' ' => {}
                _ => end = i + 1,
            }
            i += 1;
        }
        // `pos` is left at the `:` that ended the scalar, or after its last
        // non-space character (before the spaces and comment that end the line).
        self.pos = if self.at(i) == b':' { i } else { end };
        self.str(start, end)
    }

    /// A double-quoted scalar. With `fold = Some(parent)` it may span lines
    /// (a value in a collection at column `parent`: every continuation line
    /// must be indented deeper); with `None` (keys, flow items) it must close
    /// on its line.
    fn double_quoted(&mut self, fold: Option<usize>) -> R<String> {
        self.pos += 1;
        let mut out = String::new();
        let mut run = self.pos;
        loop {
            match self.peek() {
                b'"' if self.pos < self.s.len() => {
                    out.push_str(self.str(run, self.pos)?);
                    self.pos += 1;
                    return Ok(out);
                }
                b'\n' => {
                    let parent = fold.ok_or_else(|| bail(line!()))?;
                    self.push_trimmed(&mut out, run)?;
                    self.pos += 1;
                    let empty = self.continuation(parent)?;
                    fold_break(&mut out, empty);
                    run = self.pos;
                }
                b'\\' => {
                    out.push_str(self.str(run, self.pos)?);
                    let c = self.at(self.pos + 1);
                    if c == b'\n' && self.pos + 1 < self.s.len() {
                        // An escaped line break: nothing, then the empty lines.
                        let parent = fold.ok_or_else(|| bail(line!()))?;
                        self.pos += 2;
                        let empty = self.continuation(parent)?;
                        out.extend(std::iter::repeat_n('\n', empty));
                        run = self.pos;
                        continue;
                    }
                    self.pos += 2;
                    let ch = match c {
                        b'0' => '\0',
                        b'a' => '\x07',
                        b'b' => '\x08',
                        b't' | b'\t' => '\t',
                        b'n' => '\n',
                        b'v' => '\x0b',
                        b'f' => '\x0c',
                        b'r' => '\r',
                        b'e' => '\x1b',
                        b' ' => ' ',
                        b'"' => '"',
                        b'/' => '/',
                        b'\\' => '\\',
                        b'N' => '\u{85}',
                        b'_' => '\u{a0}',
                        b'L' => '\u{2028}',
                        b'P' => '\u{2029}',
                        b'x' => self.hex_escape(2)?,
                        b'u' => self.hex_escape(4)?,
                        b'U' => self.hex_escape(8)?,
                        _ => return Err(bail(line!())),
                    };
                    out.push(ch);
                    run = self.pos;
                }
                _ => self.pos += 1,
            }
        }
    }

    fn hex_escape(&mut self, digits: usize) -> R<char> {
        let hex = self
            .s
            .get(self.pos..self.pos + digits)
            .ok_or_else(|| bail(line!()))?;
        let mut v: u32 = 0;
        for &h in hex {
            v = v * 16 + (h as char).to_digit(16).ok_or_else(|| bail(line!()))?;
        }
        self.pos += digits;
        char::from_u32(v).ok_or_else(|| bail(line!()))
    }

    /// A single-quoted scalar (`''` is a quote); `fold` as for [`Self::double_quoted`].
    fn single_quoted(&mut self, fold: Option<usize>) -> R<String> {
        self.pos += 1;
        let mut out = String::new();
        let mut run = self.pos;
        loop {
            match self.peek() {
                b'\'' if self.at(self.pos + 1) == b'\'' => {
                    out.push_str(self.str(run, self.pos + 1)?);
                    self.pos += 2;
                    run = self.pos;
                }
                b'\'' => {
                    out.push_str(self.str(run, self.pos)?);
                    self.pos += 1;
                    return Ok(out);
                }
                b'\n' => {
                    let parent = fold.ok_or_else(|| bail(line!()))?;
                    self.push_trimmed(&mut out, run)?;
                    self.pos += 1;
                    let empty = self.continuation(parent)?;
                    fold_break(&mut out, empty);
                    run = self.pos;
                }
                _ => self.pos += 1,
            }
        }
    }

    /// The text from `run` to `pos` (a line break inside a quoted scalar)
    /// without its trailing spaces; a trailing tab bails.
    fn push_trimmed(&self, out: &mut String, run: usize) -> R<()> {
        if self.pos >= self.s.len() {
            // The input ended inside the scalar.
            return Err(bail(line!()));
        }
        let text = self.str(run, self.pos)?.trim_end_matches(' ');
        if text.ends_with('\t') {
            return Err(bail(line!()));
        }
        out.push_str(text);
        Ok(())
    }

    /// At the start of the line after a line break inside a quoted scalar:
    /// skips the empty lines (returning how many) and the next line's
    /// indentation, which must be deeper than `parent`. Tabs there, and the
    /// end of the input, bail.
    fn continuation(&mut self, parent: usize) -> R<usize> {
        let mut empty = 0;
        loop {
            let line = self.pos;
            while self.peek() == b' ' && self.pos < self.s.len() {
                self.pos += 1;
            }
            if self.pos >= self.s.len() {
                return Err(bail(line!()));
            }
            match self.s[self.pos] {
                b'\t' => return Err(bail(line!())),
                b'\n' => {
                    empty += 1;
                    self.pos += 1;
                }
                _ if self.pos - line <= parent => return Err(bail(line!())),
                _ => return Ok(empty),
            }
        }
    }

    /// A flow sequence on one line holding only scalars (`[a, "b", 3]`, `[]`).
    fn flow_sequence(&mut self) -> R<Value> {
        self.enter()?;
        self.pos += 1;
        let base = self.items.len();
        self.skip_spaces();
        if self.peek() == b']' {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Array(Vec::new()));
        }
        loop {
            let item = match self.peek() {
                b'"' => Value::String(self.double_quoted(None)?),
                b'\'' => Value::String(self.single_quoted(None)?),
                _ => plain_value(self.flow_plain()?)?,
            };
            self.items.push(item);
            self.skip_spaces();
            match self.peek() {
                b',' => {
                    self.pos += 1;
                    self.skip_spaces();
                    if self.peek() == b']' {
                        // A trailing comma: left to the full parser.
                        return Err(bail(line!()));
                    }
                }
                b']' => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(bail(line!())),
            }
        }
        self.depth -= 1;
        Ok(Value::Array(self.items.drain(base..).collect()))
    }

    /// A plain scalar inside a flow sequence: ends at `,` or `]`; flow
    /// indicators, `: `, comments, tabs and line ends inside it bail.
    fn flow_plain(&mut self) -> R<&'a str> {
        let start = self.pos;
        let stop = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b',' | b'[' | b']' | b'{' | b'}');
        match self.peek() {
            b'\n' | b' ' | b'\t' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!'
            | b'|' | b'>' | b'\'' | b'"' | b'%' | b'@' | b'`' => return Err(bail(line!())),
            b'-' | b'?' | b':' if stop(self.at(start + 1)) => return Err(bail(line!())),
            _ => {}
        }
        let mut i = start;
        let mut end = start;
        loop {
            match self.at(i) {
                b',' | b']' => break,
                b'\n' | b'\t' | b'[' | b'{' | b'}' => return Err(bail(line!())),
                b':' if stop(self.at(i + 1)) => return Err(bail(line!())),
                b'#' if self.s[i - 1] == b' ' => return Err(bail(line!())),
                b' ' => {}
                _ => end = i + 1,
            }
            i += 1;
        }
        self.pos = end;
        self.str(start, end)
    }

    fn skip_spaces(&mut self) {
        while self.peek() == b' ' && self.pos < self.s.len() {
            self.pos += 1;
        }
    }

    /// A literal block scalar (`|`, `|-`, `|+`), value of an entry of a
    /// collection at column `parent`; `pos` is at the `|`. Explicit
    /// indentation indicators, content less indented than its first line's
    /// leading blank lines, whitespace-only lines deeper than the content and
    /// content ending without a final line break are left to the full parser.
    fn literal(&mut self, parent: usize) -> R<Value> {
        self.pos += 1;
        let chomp = match self.peek() {
            b'-' | b'+' => {
                self.pos += 1;
                self.s[self.pos - 1]
            }
            _ => b' ',
        };
        if self.peek() != b' ' && self.peek() != b'\n' {
            return Err(bail(line!()));
        }
        self.end_of_line()?;
        // Auto-detected indentation: the first non-blank line's.
        let mut i = self.pos;
        let mut blank_max = 0;
        let n = loop {
            let mut j = i;
            while self.at(j) == b' ' && j < self.s.len() {
                j += 1;
            }
            if j >= self.s.len() {
                return Err(bail(line!()));
            }
            match self.s[j] {
                b'\n' => {
                    blank_max = blank_max.max(j - i);
                    i = j + 1;
                }
                b'\t' => return Err(bail(line!())),
                _ => break j - i,
            }
        };
        if n <= parent || blank_max > n {
            return Err(bail(line!()));
        }
        let mut out = String::new();
        let mut line = self.pos;
        loop {
            let mut j = line;
            while j < self.s.len() && self.s[j] == b' ' && j - line < n {
                j += 1;
            }
            if j >= self.s.len() {
                // End of input: the last line had its line break.
                break;
            }
            let spaces = j - line;
            match self.s[j] {
                b'\n' => {
                    out.push('\n');
                    line = j + 1;
                }
                _ if spaces < n => {
                    if self.s[j] == b'\t' {
                        return Err(bail(line!()));
                    }
                    break;
                }
                _ => {
                    let end = self.line_end(j);
                    if end >= self.s.len() {
                        return Err(bail(line!()));
                    }
                    let text = self.str(j, end)?;
                    if text.bytes().all(|b| b == b' ') {
                        // Only spaces, deeper than the content.
                        return Err(bail(line!()));
                    }
                    out.push_str(text);
                    out.push('\n');
                    line = end + 1;
                }
            }
        }
        self.pos = line;
        match chomp {
            b'-' => {
                let keep = out.trim_end_matches('\n').len();
                out.truncate(keep);
            }
            b'+' => {}
            _ => {
                let keep = out.trim_end_matches('\n').len();
                if keep == 0 {
                    return Err(bail(line!()));
                }
                out.truncate(keep + 1);
            }
        }
        Ok(Value::String(out))
    }
}

/// After a line break inside a quoted scalar, followed by `empty` empty lines:
/// one space, or one line feed per empty line.
fn fold_break(out: &mut String, empty: usize) {
    if empty == 0 {
        out.push(' ');
    } else {
        out.extend(std::iter::repeat_n('\n', empty));
    }
}

/// A mapping key read from a plain scalar, converted as `value::KeySeed`
/// converts what serde-saphyr gives it. Null and float keys bail.
fn key_string(s: &str) -> R<String> {
    Ok(match plain_value(s)? {
        Value::String(s) => s,
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        _ => return Err(bail(line!())),
    })
}

/// The value of an untagged plain scalar, as serde-saphyr 2.1's
/// `deserialize_any` types it with `strict_booleans` and the default options
/// (no legacy octal, leading-zero or underscored numbers kept as numbers);
/// non-finite floats, which it refuses, bail.
fn plain_value(s: &str) -> R<Value> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        _ => {}
    }
    match s.as_bytes().first() {
        Some(b'0'..=b'9' | b'+' | b'-' | b'.') => {}
        // Neither an integer nor a float (Rust's float syntax starts with a
        // sign, a digit or a dot, or spells a non-finite value, which
        // serde-saphyr takes as a string).
        _ => return Ok(Value::String(s.to_owned())),
    }
    if s.starts_with('-') {
        if !leading_zero_decimal(s)
            && let Some(v) = int_signed(s)
        {
            return Ok(Value::Number(v.into()));
        }
    } else if let Some(v) = int_unsigned(s) {
        return Ok(Value::Number(v.into()));
    }
    // Floats: YAML 1.2's non-finite spellings, then Rust's syntax.
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    if matches!(
        unsigned,
        ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF"
    ) {
        return Err(bail(line!()));
    }
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(Value::Number(
            Number::from_f64(f).ok_or_else(|| bail(line!()))?,
        )),
        // Overflowing numerals (`1e999`) are refused by the full parser.
        Ok(_) if unsigned.as_bytes().first().is_some_and(u8::is_ascii_digit) => Err(bail(line!())),
        _ => Ok(Value::String(s.to_owned())),
    }
}

fn leading_zero_decimal(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit())
}

fn radix_and_digits(rest: &str) -> (u32, &str) {
    if let Some(r) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
        (16, r)
    } else if let Some(r) = rest.strip_prefix("0o").or_else(|| rest.strip_prefix("0O")) {
        (8, r)
    } else if let Some(r) = rest.strip_prefix("0b").or_else(|| rest.strip_prefix("0B")) {
        (2, r)
    } else {
        (10, rest)
    }
}

/// Digits with single `_` separators between them (not first, not last,
/// never doubled), in `radix`; `None` if invalid or beyond u128.
fn digits_u128(digits: &str, radix: u32) -> Option<u128> {
    let bytes = digits.as_bytes();
    let mut val: u128 = 0;
    let mut saw = false;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'_' {
            let prev_ok = i > 0 && bytes[i - 1] != b'_';
            let next_ok = i + 1 < bytes.len() && bytes[i + 1] != b'_';
            if !prev_ok || !next_ok {
                return None;
            }
            continue;
        }
        let d = (b as char).to_digit(16)?;
        if d >= radix || (radix == 10 && !b.is_ascii_digit()) {
            return None;
        }
        val = val
            .checked_mul(u128::from(radix))?
            .checked_add(u128::from(d))?;
        saw = true;
    }
    saw.then_some(val)
}

fn int_signed(s: &str) -> Option<i64> {
    let (neg, rest) = match s.strip_prefix('+') {
        Some(r) => (false, r),
        None => match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s),
        },
    };
    let (radix, digits) = radix_and_digits(rest);
    if radix == 10 && digits.starts_with('0') && digits != "0" {
        return None;
    }
    let mag = digits_u128(digits, radix)?;
    let v: i128 = if neg {
        if mag == (i128::MAX as u128) + 1 {
            i128::MIN
        } else {
            i128::try_from(mag).ok()?.checked_neg()?
        }
    } else {
        i128::try_from(mag).ok()?
    };
    i64::try_from(v).ok()
}

fn int_unsigned(s: &str) -> Option<u64> {
    if s.starts_with('-') {
        return None;
    }
    let rest = s.strip_prefix('+').unwrap_or(s);
    let (radix, digits) = radix_and_digits(rest);
    if radix == 10 && digits.starts_with('0') && digits != "0" {
        return None;
    }
    u64::try_from(digits_u128(digits, radix)?).ok()
}

/// A [`Bail`] from line `line` of this file. Debug builds print the line
/// when `YAML_FAST_TRACE` is set, to find why an input left the fast path.
fn bail(line: u32) -> Bail {
    #[cfg(debug_assertions)]
    if std::env::var_os("YAML_FAST_TRACE").is_some() {
        eprintln!("yaml_fast: gave up at src/config/yaml_fast.rs:{line}");
    }
    let _ = line;
    Bail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Value {
        parse(s).unwrap_or_else(|_| panic!("bailed on {s:?}"))
    }

    /// Documents whose top-level keys are found by lines, including lines
    /// that look like keys but are not: the entry-at-a-time read gives
    /// `parse`'s value, or gives up where `parse` gives up or might differ.
    #[test]
    fn entries_read_one_at_a_time_agree_with_the_whole_parse() {
        let docs = [
            "_format_version: \"3.0\"\nservices:\n- name: a\n  routes:\n  - paths: [/a]\n- name: b\nconsumers: []\n",
            "# head\n\na: 1\n# between\nb:\n  - x\n  - y\nc:\n  d: e\n",
            "a: |\n  text\n  more\n\nb: |+\n  kept\n\n\nc: 1",
            "a: \"x\ny\"\n",
            "a: \"x\n  y\"\nb: 2\n",
            "a: plain\n  continued\nb: 2\n",
            "a: plain\ncontinued\n",
            "a: 1\n-b: 2\n",
            "-b: 2\na: 1\n",
            "a: 1\na: 2\n",
            "- a\n- b\n",
            "  a: 1\n",
            "a: 1\n---\nb: 2\n",
            "a: 1\n...\n",
            "a: 1\n%YAML 1.2\n",
            "a:\n- 1\n-\n  - 2\nb: [1, 2]\nc:\n",
            "a: 1\r\nb:\r\n- x\r\n",
            "a: 1\rb: 2\n",
            "a: 1\n b: 2\n",
            "a: {}\nb: ''\nc: \"\"\n",
            "a:\n  - x\n b: 1\n",
            "\"a\": 1\n'b': 2\n",
            "a: 1 # c\nb: 2\n",
            "",
            "# only a comment\n",
        ];
        for doc in docs {
            let whole = parse(doc);
            match parse_by_entries(doc) {
                Ok(v) => assert_eq!(Ok(v), whole, "{doc:?}"),
                Err(Bail) => {
                    // Gave up: fine, unless it is a plain decK document.
                    assert!(
                        whole.is_err() || doc.contains("-b") || doc.starts_with('-'),
                        "gave up on {doc:?}"
                    );
                }
            }
        }
        assert!(parse_by_entries("a: 1\nb:\n- 2\n").is_ok());
    }

    #[test]
    fn reads_the_deck_subset() {
        let v = ok(
            "_format_version: \"3.0\"\nservices:\n- name: a\n  port: 80\n  tags: []\n  routes:\n  - paths:\n    - /x\n    strip_path: false\n",
        );
        assert_eq!(
            v,
            serde_json::json!({"_format_version":"3.0","services":[{"name":"a","port":80,"tags":[],"routes":[{"paths":["/x"],"strip_path":false}]}]})
        );
    }

    #[test]
    fn scalars_are_typed_as_serde_saphyr_types_them() {
        let v = ok(
            "a: yes\nb: 0x1F\nc: 1e3\nd: ~\ne: 2001-12-14\nf: -0\ng: 1_000\nh: True\ni: 012\nj: .5\n",
        );
        assert_eq!(
            v,
            serde_json::json!({"a":"yes","b":31,"c":1000.0,"d":null,"e":"2001-12-14","f":0,"g":1000,"h":true,"i":12.0,"j":0.5})
        );
        assert_eq!(parse("a: .inf\n"), Err(bail(line!())));
        assert_eq!(parse("a: 1e999\n"), Err(bail(line!())));
    }

    #[test]
    fn literal_block_scalars() {
        let v = ok("a: |-\n  x\n   y\n\n  z\nb: |\n  k\n\n\nc: |+\n  k\n\nd: 1\n");
        assert_eq!(
            v,
            serde_json::json!({"a":"x\n y\n\nz","b":"k\n","c":"k\n\n","d":1})
        );
    }

    #[test]
    fn multi_line_quoted_scalars_fold() {
        let v = ok(
            "a: 'one\n  two\n\n  three '\nb: \"x  \\\n   y\\ty \\\n\n  z\"\nc: [a, 'b', \"c\", 1, ~]\n",
        );
        assert_eq!(
            v,
            serde_json::json!({"a": "one two\nthree ", "b": "x  y\ty \nz", "c": ["a", "b", "c", 1, null]})
        );
    }

    #[test]
    fn bails_outside_the_subset() {
        for doc in [
            "a: &x 1\nb: *x\n",
            "a: 1\na: 2\n",
            "a: b\n  # c\n  d\n",
            "a: b\n  - c\n",
            "a: [1, [2]]\n",
            "a: [1, 2,]\n",
            "a: {b: 1}\n",
            "a: >\n  x\n",
            "a: 1\rb: 2\n",
            "---\na: 1\n",
            "a:\tb\n",
            "<<: {}\n",
            "a: \"x\ny\"\n",
            "- \"x\n  y\": 1\n",
            "- - a\n",
            "just a scalar\n",
        ] {
            assert_eq!(parse(doc), Err(bail(line!())), "{doc:?}");
        }
    }
}
