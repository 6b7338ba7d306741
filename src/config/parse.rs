//! Bytes → `serde_json::Value`, for JSON (simd-json) and YAML (a fast reader
//! for decK's block-style subset, [`yaml_fast`], with serde-saphyr for
//! everything else).
//!
//! Both formats follow [`StrictValue`]'s rules, so a JSON file and the YAML
//! file with the same content give the same value, and both refuse duplicate
//! keys and runaway nesting. Every failure carries a line and column.

use serde::de::DeserializeSeed;
use serde_json::Value;

use super::value::{StrictDoc, StrictValue};

#[path = "yaml_fast.rs"]
pub mod yaml_fast;

/// The syntax a member config is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    /// From a file name: `.json` is JSON, `.yaml`/`.yml` YAML, else sniffed.
    pub fn from_path(path: &std::path::Path, bytes: &[u8]) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => Format::Json,
            Some(e) if e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml") => {
                Format::Yaml
            }
            _ => Format::sniff(bytes),
        }
    }

    /// From an HTTP `Content-Type`; anything without `yaml` in it is sniffed.
    pub fn from_content_type(ct: Option<&str>, bytes: &[u8]) -> Format {
        match ct {
            Some(ct) if ct.contains("yaml") => Format::Yaml,
            Some(ct) if ct.contains("json") => Format::Json,
            _ => Format::sniff(bytes),
        }
    }

    /// JSON documents start with `{` (after whitespace); everything else is YAML.
    pub fn sniff(bytes: &[u8]) -> Format {
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') | Some(b'[') => Format::Json,
            _ => Format::Yaml,
        }
    }
}

/// Why bytes could not be read as a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseFailure {
    pub message: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
}

/// Parses `bytes` as one document of `format`.
pub fn parse(bytes: &[u8], format: Format) -> Result<Value, ParseFailure> {
    parse_with(bytes, format, true)
}

/// Parses `bytes` as one YAML document with the full parser only (serde-saphyr
/// into [`StrictValue`]), as [`parse`] did before the fast reader: the
/// reference the fast reader is checked against (tests, fuzz target, bench).
pub fn parse_yaml_reference(bytes: &[u8]) -> Result<Value, ParseFailure> {
    parse_with(bytes, Format::Yaml, false)
}

/// The fast reader alone: `None` where [`parse`] falls back to the full
/// parser (outside decK's subset, or an error). For tests and the bench.
pub fn parse_yaml_fast_only(bytes: &[u8]) -> Option<Value> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    yaml_fast::parse(std::str::from_utf8(bytes).ok()?).ok()
}

fn parse_with(bytes: &[u8], format: Format, fast_yaml: bool) -> Result<Value, ParseFailure> {
    // Editors on Windows write a UTF-8 byte order mark; the YAML parser skips
    // it, the JSON parsers refuse it ("expected value" at 1:1).
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseFailure {
            message:
                "the config is empty; a member config needs at least `_format_version: \"3.0\"`"
                    .into(),
            line: Some(1),
            column: Some(1),
        });
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let (line, column) = line_col(bytes, e.valid_up_to());
            return Err(ParseFailure {
                message: "the config is not valid UTF-8".into(),
                line: Some(line),
                column: Some(column),
            });
        }
    };
    if format == Format::Yaml
        && fast_yaml
        && let Ok(v) = yaml_fast::parse(text)
    {
        // The fast reader recurses at most `yaml_fast::FAST_MAX_DEPTH` levels
        // with small frames: no big stack needed.
        return Ok(v);
    }
    on_parser_stack(|| match format {
        Format::Json => parse_json(bytes),
        Format::Yaml => parse_yaml(bytes),
    })
}

/// Stack for the deserializers, which recurse once per nesting level.
/// serde-saphyr's frames are large (tens of KB per level in a debug build), so
/// the 128 levels we accept overflow the 2 MB stacks of rayon, tokio and test
/// threads, and a stack overflow aborts the whole process. The memory is only
/// reserved, not committed, until a deep document needs it.
const PARSER_STACK: usize = 64 << 20;

fn on_parser_stack(
    parse: impl FnOnce() -> Result<Value, ParseFailure> + Send,
) -> Result<Value, ParseFailure> {
    std::thread::scope(|s| {
        let spawned = std::thread::Builder::new()
            .name("rgmerge-parse".into())
            .stack_size(PARSER_STACK)
            .spawn_scoped(s, parse);
        match spawned {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(e) => Err(ParseFailure {
                message: format!("could not start a parser thread: {e}"),
                line: None,
                column: None,
            }),
        }
    })
}

fn parse_json(bytes: &[u8]) -> Result<Value, ParseFailure> {
    // simd-json parses in place, so it gets its own copy.
    let mut buf = bytes.to_vec();
    if let Some(v) = simd_json::to_tape(&mut buf)
        .ok()
        .and_then(|tape| strict_from_tape(&mut tape.0.iter(), 0))
    {
        return Ok(v);
    }
    // The slow path exists for its diagnostics: serde_json reports line and column.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result = StrictValue::root()
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    result.map_err(|e| ParseFailure {
        // serde_json stops at 128 levels before StrictValue would; say it the same way.
        message: if e.to_string().contains("recursion limit") {
            format!(
                "nesting deeper than {} levels is not accepted",
                super::value::MAX_DEPTH
            )
        } else {
            strip_position(&e.to_string())
        },
        line: Some(e.line() as u64),
        column: Some(e.column() as u64),
    })
}

/// The value of the next node of a simd-json tape, under the rules of
/// [`StrictValue`]: refused (`None`) on a duplicate key, nesting deeper than
/// `MAX_DEPTH` or a non-finite number. Walking the tape directly skips serde's
/// visitor calls and sizes each map once from the tape's key count, hashing
/// each key once; anything refused here is re-parsed by the serde_json path,
/// which words the error.
pub(super) fn strict_from_tape(
    nodes: &mut std::slice::Iter<'_, simd_json::Node<'_>>,
    depth: usize,
) -> Option<Value> {
    use simd_json::{Node, StaticNode};
    Some(match *nodes.next()? {
        Node::String(s) => Value::String(s.to_owned()),
        Node::Static(StaticNode::Null) => Value::Null,
        Node::Static(StaticNode::Bool(b)) => Value::Bool(b),
        Node::Static(StaticNode::I64(n)) => Value::Number(n.into()),
        Node::Static(StaticNode::U64(n)) => Value::Number(n.into()),
        Node::Static(StaticNode::F64(f)) => Value::Number(serde_json::Number::from_f64(f)?),
        Node::Array { len, .. } => {
            if depth + 1 > super::value::MAX_DEPTH {
                return None;
            }
            let mut out = Vec::with_capacity(len.min(4096));
            for _ in 0..len {
                out.push(strict_from_tape(nodes, depth + 1)?);
            }
            Value::Array(out)
        }
        Node::Object { len, .. } => {
            if depth + 1 > super::value::MAX_DEPTH {
                return None;
            }
            let mut out = serde_json::Map::with_capacity(len.min(4096));
            for _ in 0..len {
                let Node::String(key) = *nodes.next()? else {
                    return None;
                };
                let v = strict_from_tape(nodes, depth + 1)?;
                if out.insert(key.to_owned(), v).is_some() {
                    return None;
                }
            }
            Value::Object(out)
        }
        // 128-bit integers, when simd-json has them: left to the serde path.
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

fn parse_yaml(bytes: &[u8]) -> Result<Value, ParseFailure> {
    let text = std::str::from_utf8(bytes).map_err(|_| ParseFailure {
        message: "the config is not valid UTF-8".into(),
        line: None,
        column: None,
    })?;
    // serde-saphyr's default budget (250,000 nodes, 1,000,000 events, depth 64)
    // rejects a few MB of ordinary YAML that the same config in JSON passes. Its
    // limits guard against alias expansion; without aliases, nodes and scalar
    // bytes can't exceed the input, so they scale with it. Depth matches JSON's.
    let scaled = |default: usize| default.max(text.len().saturating_mul(2));
    let defaults = serde_saphyr::Budget::default();
    // YAML 1.2 booleans only (`true`/`false`), as decK's YAML reader does for
    // untyped values: a host named `y` or a country code `no` stays a string.
    let options = serde_saphyr::options! {
        strict_booleans: true,
        budget: serde_saphyr::budget! {
            max_depth: super::value::MAX_DEPTH + 1,
            max_nodes: scaled(defaults.max_nodes),
            max_events: scaled(defaults.max_events),
            max_total_scalar_bytes: scaled(defaults.max_total_scalar_bytes),
        },
    };
    serde_saphyr::from_str_with_options::<StrictDoc>(text, options)
        .map(|d| d.0)
        .map_err(|e| {
            let loc = e.location();
            ParseFailure {
                message: yaml_message(&e.to_string()),
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
            }
        })
}

/// serde-saphyr's first line, without the "error: line L column C: " prefix
/// (we report those as fields), and with nesting limits said the way JSON says them.
fn yaml_message(msg: &str) -> String {
    let line = first_line(msg);
    let rest = line.strip_prefix("error: ").unwrap_or(&line);
    let rest = match rest.strip_prefix("line ") {
        Some(r) => match r.find(": ") {
            Some(i) if r[..i].contains(" column ") => &r[i + 2..],
            _ => rest,
        },
        None => rest,
    };
    if rest.starts_with("multiple YAML documents detected") {
        "a member config is one YAML document, but this file holds several (separated by `---`)"
            .to_string()
    } else if let Some(key) = rest.strip_prefix("duplicate mapping key: ") {
        // serde-saphyr adds advice about its own options, which means nothing to a user.
        let key = key.split(", set DuplicateKeyPolicy").next().unwrap_or(key);
        format!("duplicate key `{key}` in one mapping")
    } else if rest.contains("recursion limit") || rest.contains("Depth {") {
        format!(
            "nesting deeper than {} levels is not accepted",
            super::value::MAX_DEPTH
        )
    } else if let Some(what) = rest.strip_prefix("budget breached: ") {
        format!(
            "the document expands beyond what a member config may hold ({what}); YAML aliases (`*name`) repeating large anchors are the usual cause"
        )
    } else {
        rest.to_string()
    }
}

/// serde_json appends " at line L column C"; we report those as fields.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn first_line(msg: &str) -> String {
    msg.lines().next().unwrap_or(msg).trim().to_string()
}

/// 1-based line and column of byte `offset`.
pub fn line_col(bytes: &[u8], offset: usize) -> (u64, u64) {
    let upto = &bytes[..offset.min(bytes.len())];
    let line = upto.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let col = upto.iter().rev().take_while(|&&b| b != b'\n').count() as u64 + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_yaml_give_the_same_value() {
        let j = parse(
            br#"{"_format_version":"3.0","services":[{"name":"a","port":80}]}"#,
            Format::Json,
        )
        .unwrap();
        let y = parse(
            b"_format_version: \"3.0\"\nservices:\n- name: a\n  port: 80\n",
            Format::Yaml,
        )
        .unwrap();
        assert_eq!(j, y);
    }

    #[test]
    fn json_errors_have_line_and_column() {
        let e = parse(b"{\n  \"a\": 1,\n  \"b\": }\n", Format::Json).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.column.unwrap() > 1);
    }

    #[test]
    fn duplicate_keys_are_refused_in_both_formats() {
        let e = parse(br#"{"a":1,"a":2}"#, Format::Json).unwrap_err();
        assert!(e.message.contains("duplicate key"), "{}", e.message);
        let e = parse(b"a: 1\na: 2\n", Format::Yaml).unwrap_err();
        assert!(
            e.message.to_lowercase().contains("duplicate"),
            "{}",
            e.message
        );
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let e = parse(deep.as_bytes(), Format::Json).unwrap_err();
        assert!(e.message.contains("nesting"), "{}", e.message);
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let e = parse(deep.as_bytes(), Format::Yaml).unwrap_err();
        assert!(e.line.is_some(), "{e:?}");
    }

    /// The tape walk must accept and refuse exactly what simd-json driving
    /// `StrictValue` through serde does, and give the same values.
    #[test]
    fn tape_walk_agrees_with_the_serde_seed() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let mut docs: Vec<String> = [
            r#"{"a":1,"b":-2,"c":18446744073709551615,"d":-9223372036854775808,"e":1.5e300,"f":0.1}"#,
            r#"{"s":"\u00e9\n\"x\"","t":true,"n":null,"l":[],"o":{},"m":[{"k":[1,{"z":[]}]}]}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":{"b":1,"c":{"b":2}},"d":[{"b":1},{"b":1}]}"#,
            r#"{"x":1e400}"#,
            r#"[1,2,"3"]"#,
            r#""just a string""#,
            r#"{"a":1} {"b":2}"#,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        docs.push(deep(super::super::value::MAX_DEPTH));
        docs.push(deep(super::super::value::MAX_DEPTH + 1));
        docs.push(String::from_utf8(crate::synth::member_config(1, 300, 0.1, 4)).unwrap());
        for doc in docs {
            let mut a = doc.clone().into_bytes();
            let via_serde = simd_json::Deserializer::from_slice(&mut a)
                .ok()
                .and_then(|mut de| StrictValue::root().deserialize(&mut de).ok());
            let mut b = doc.clone().into_bytes();
            let via_tape = simd_json::to_tape(&mut b)
                .ok()
                .and_then(|t| strict_from_tape(&mut t.0.iter(), 0));
            assert_eq!(via_serde, via_tape, "{}", &doc[..doc.len().min(80)]);
        }
    }

    #[test]
    fn empty_and_binary_input_are_explained() {
        assert!(
            parse(b"  \n", Format::Yaml)
                .unwrap_err()
                .message
                .contains("empty")
        );
        let e = parse(b"a: \xff\xfe", Format::Yaml).unwrap_err();
        assert!(e.message.contains("UTF-8"));
        assert_eq!((e.line, e.column), (Some(1), Some(4)));
    }
}
