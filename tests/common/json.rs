//! Partial JSON matching, after rust-analyzer's `slow-tests/support.rs`
//! (itself after cargo's test support): a test writes down the part of an
//! answer it is about and checks it whole, instead of field by field.
//!
//! - an object in `expected` matches when each of its keys is in `actual`
//!   with a matching value (other keys of `actual` are not looked at);
//! - arrays match position by position and must have the same length;
//! - a string matches equal text, where `[..]` stands for any run of
//!   characters (`"[..]"` alone: any string, `"v[..]"`: any starting with v);
//! - `"{...}"` matches any value at all;
//! - numbers, booleans and null match when equal.

use serde_json::Value;

/// The first place where `actual` does not match `expected`: its JSON
/// pointer, what was expected there and what was found.
pub fn find_mismatch<'a>(
    expected: &'a Value,
    actual: &'a Value,
) -> Option<(String, &'a Value, &'a Value)> {
    find_at(String::new(), expected, actual)
}

fn find_at<'a>(
    at: String,
    expected: &'a Value,
    actual: &'a Value,
) -> Option<(String, &'a Value, &'a Value)> {
    match (expected, actual) {
        (Value::String(e), _) if e == "{...}" => None,
        (Value::String(e), Value::String(a)) if text_matches(e, a) => None,
        (Value::Number(e), Value::Number(a)) if e == a => None,
        (Value::Bool(e), Value::Bool(a)) if e == a => None,
        (Value::Null, Value::Null) => None,
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => e
            .iter()
            .zip(a)
            .enumerate()
            .find_map(|(i, (e, a))| find_at(format!("{at}/{i}"), e, a)),
        (Value::Object(e), Value::Object(a)) => e.iter().find_map(|(k, ev)| {
            let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
            match a.get(k) {
                Some(av) => find_at(here, ev, av),
                None => Some((here, ev, &Value::Null)),
            }
        }),
        _ => Some((at, expected, actual)),
    }
}

/// `expected` with `[..]` as a wildcard for any run of characters.
pub fn text_matches(expected: &str, actual: &str) -> bool {
    let mut parts = expected.split("[..]");
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = actual.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for p in middle {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Panics, showing both whole and the first mismatch, unless `actual`
/// matches `expected` (see the module's rules).
#[track_caller]
pub fn check_json(actual: &Value, expected: &Value) {
    if let Some((at, e, a)) = find_mismatch(expected, actual) {
        let whole = serde_json::to_string_pretty(actual).unwrap_or_default();
        let mut end = whole.len().min(8192);
        while !whole.is_char_boundary(end) {
            end -= 1;
        }
        panic!(
            "JSON mismatch at `{at}`\n  expected: {}\n  found:    {}\n\nexpected (part of):\n{}\n\nactual:\n{}",
            short(e),
            short(a),
            serde_json::to_string_pretty(expected).unwrap_or_default(),
            &whole[..end],
        );
    }
}

/// A value shown within a few KB (an answer may hold megabytes).
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 4096 {
        return s;
    }
    let mut end = 4096;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// `assert_json_include!(actual, {"state": "OK", "members": [..]})`: the
/// expected part is written as `serde_json::json!` takes it.
#[macro_export]
macro_rules! assert_json_include {
    ($actual:expr, $($expected:tt)+) => {
        $crate::common::json::check_json(&$actual, &serde_json::json!($($expected)+))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subsets_positions_and_wildcards() {
        let actual = json!({"a": 1, "b": ["x", {"c": true, "d": null}], "e": "version 12"});
        assert!(find_mismatch(&json!({"a": 1}), &actual).is_none());
        assert!(find_mismatch(&json!({"b": ["[..]", {"c": true}]}), &actual).is_none());
        assert!(find_mismatch(&json!({"e": "version [..]"}), &actual).is_none());
        assert!(find_mismatch(&json!({"e": "[..]1[..]"}), &actual).is_none());
        assert!(find_mismatch(&json!({"b": "{...}"}), &actual).is_none());
        let (at, _, _) = find_mismatch(&json!({"b": ["x", {"c": false}]}), &actual).unwrap();
        assert_eq!(at, "/b/1/c");
        assert!(find_mismatch(&json!({"b": ["x"]}), &actual).is_some());
        assert!(find_mismatch(&json!({"z": null}), &actual).is_some());
        assert!(find_mismatch(&json!({"e": "version 1"}), &actual).is_some());
        assert!(!text_matches("a[..]b", "ab-"));
        assert!(text_matches("a[..]b", "ab"));
        assert!(!text_matches("ab[..]b", "ab"));
    }
}
