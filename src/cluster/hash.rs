//! Kong's hybrid-mode configuration hash.
//!
//! Data planes compare the `config_hash` of a reconfigure frame with the hash
//! of the configuration they run, and skip reloads when they match, so a
//! control plane must reproduce Kong's value byte for byte. This follows
//! `kong/clustering/config_helper.lua` of Kong 3.10 (`calculate_config_hash`,
//! `calculate_hash`, `to_sorted_string`) and the number formatting of the
//! OpenResty LuaJIT that Kong ships.
//!
//! The serialization, in short:
//! - `null` is `/null/`, booleans are `true`/`false`, strings are their bytes,
//!   numbers are Lua's `tostring` of a double (see [`lua_number`]);
//! - an empty array and an empty object are both `{}` (to Lua both are an
//!   empty table);
//! - arrays of one to five items are joined with `;`, longer arrays get a `;`
//!   after every item, the last included;
//! - objects are `key:value;` for each key in byte order;
//! - whenever a value is about to be written while the buffer holds more than
//!   1,000,000 bytes, the buffer is replaced by the raw 16-byte md5 of its
//!   contents, and writing continues after those bytes.
//!
//! The config hash is the md5 of the hex hashes of `routes`, `services`,
//! `plugins`, `upstreams`, `targets` and of the rest of the config, concatenated
//! in that order; an absent section hashes to [`EMPTY_HASH`].

use md5::{Digest, Md5};
use serde_json::Value;

/// Kong's DECLARATIVE_EMPTY_CONFIG_HASH.
pub const EMPTY_HASH: &str = "00000000000000000000000000000000";

/// The per-section hashes Kong sends beside `config_hash` in a reconfigure frame.
///
/// Field names and order are those of Kong's `hashes` table (its `hash_fields`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hashes {
    pub config: String,
    pub routes: String,
    pub services: String,
    pub plugins: String,
    pub upstreams: String,
    pub targets: String,
}

/// The sections Kong hashes on their own, in the order their hashes are
/// concatenated.
const SECTIONS: [&str; 5] = ["routes", "services", "plugins", "upstreams", "targets"];

/// Kong folds the buffer into its md5 once it holds more than this many bytes
/// (`#o > 1000000`), which bounds memory for big configs.
const FOLD_THRESHOLD: usize = 1_000_000;

/// Kong's calculate_config_hash over a config table (the declarative config as JSON).
///
/// For an object the sections are hashed apart and removed from the rest; a
/// section present with value `null` hashes `/null/`, not to [`EMPTY_HASH`].
/// An array is a Lua table without those keys: every section is absent and
/// the whole array is the rest. For a scalar Kong returns only `config`; the
/// other fields are [`EMPTY_HASH`] here, as a data plane's
/// `fill_empty_hashes` would make them.
pub fn config_hash(config_table: &Value) -> (String, Hashes) {
    let mut sorter = Sorter::default();
    let (sections, rest) = match config_table {
        Value::Object(map) => {
            let sections = SECTIONS.map(|name| match map.get(name) {
                Some(section) => sorter.hash_value(section),
                None => EMPTY_HASH.to_owned(),
            });
            let mut rest: Vec<(&String, &Value)> = map
                .iter()
                .filter(|(key, _)| !SECTIONS.contains(&key.as_str()))
                .collect();
            (sections, sorter.hash_entries(&mut rest))
        }
        Value::Array(_) => (
            SECTIONS.map(|_| EMPTY_HASH.to_owned()),
            sorter.hash_value(config_table),
        ),
        scalar => {
            let hash = sorter.hash_value(scalar);
            let empty = || EMPTY_HASH.to_owned();
            return (
                hash.clone(),
                Hashes {
                    config: hash,
                    routes: empty(),
                    services: empty(),
                    plugins: empty(),
                    upstreams: empty(),
                    targets: empty(),
                },
            );
        }
    };
    let mut joined = String::with_capacity(32 * 6);
    for hash in sections.iter().chain(std::iter::once(&rest)) {
        joined.push_str(hash);
    }
    let config = md5_hex(joined.as_bytes());
    let [routes, services, plugins, upstreams, targets] = sections;
    (
        config.clone(),
        Hashes {
            config,
            routes,
            services,
            plugins,
            upstreams,
            targets,
        },
    )
}

/// Kong's calculate_hash of one present value: the md5 of its sorted string
/// (with the big-buffer folding, which [`sorted_string`] cannot show).
pub fn value_hash(value: &Value) -> String {
    Sorter::default().hash_value(value)
}

/// Kong's to_sorted_string of a value (exposed for tests and for hashing one section).
///
/// Past 1,000,000 bytes Kong's buffer holds raw md5 bytes, which are not
/// UTF-8; such bytes come out here as U+FFFD, so hash with [`value_hash`],
/// never with the md5 of this string.
pub fn sorted_string(value: &Value) -> String {
    let mut sorter = Sorter::default();
    sorter.write_value(value);
    match String::from_utf8(sorter.buf) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    }
}

/// Lua's tostring for a number under LuaJIT (%.14g, ties away from zero).
///
/// Kong's OpenResty LuaJIT formats with its own `%.14g` (`lj_strfmt_num.c`):
/// it rounds the exact decimal expansion by adding 5 at the first dropped
/// digit, so exact ties go away from zero (123456789012345 gives
/// `1.2345678901235e+14` where glibc gives `...234e+14`). Also as LuaJIT
/// writes them: `-0` keeps its sign, infinities are `inf`/`-inf`, and every
/// NaN is `nan` whatever its sign bit (LuaJIT never prints `-nan`).
///
/// Upstream LuaJIT moved to ties-to-even in December 2025; the OpenResty
/// LuaJIT of Kong 3.10 (OpenResty 1.27.1.2) predates that change.
pub fn lua_number(x: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_lua_number(&mut out, x);
    // Only ASCII digits, signs, '.', 'e', "inf" and "nan" are ever written.
    String::from_utf8_lossy(&out).into_owned()
}

/// Hex md5, as ngx.md5 returns it.
fn md5_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Md5::digest(bytes);
    let mut hex = String::with_capacity(32);
    for byte in digest.iter() {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hex
}

/// One pending piece of output. Kong recurses; this walks an explicit stack
/// in the same order so that deeply nested input cannot overflow ours.
enum Step<'a> {
    Visit(&'a Value),
    Put(&'a [u8]),
}

/// Kong's string.buffer plus the work stack of to_sorted_string.
#[derive(Default)]
struct Sorter<'a> {
    buf: Vec<u8>,
    stack: Vec<Step<'a>>,
}

impl<'a> Sorter<'a> {
    /// calculate_hash on a present value.
    fn hash_value(&mut self, value: &'a Value) -> String {
        self.buf.clear();
        self.write_value(value);
        md5_hex(&self.buf)
    }

    /// calculate_hash on an object given as its entries (the config without
    /// its sections).
    fn hash_entries(&mut self, entries: &mut [(&'a String, &'a Value)]) -> String {
        self.buf.clear();
        self.fold_if_big();
        if entries.is_empty() {
            self.buf.extend_from_slice(b"{}");
        } else {
            self.push_entries(entries);
            self.drain();
        }
        md5_hex(&self.buf)
    }

    fn write_value(&mut self, value: &'a Value) {
        self.stack.push(Step::Visit(value));
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(step) = self.stack.pop() {
            match step {
                Step::Put(bytes) => self.buf.extend_from_slice(bytes),
                Step::Visit(value) => self.visit(value),
            }
        }
    }

    /// Kong checks the size on entry to every to_sorted_string call, and only
    /// there: separators and keys never trigger a fold.
    fn fold_if_big(&mut self) {
        if self.buf.len() > FOLD_THRESHOLD {
            let digest = Md5::digest(&self.buf);
            self.buf.clear();
            self.buf.extend_from_slice(&digest);
        }
    }

    fn visit(&mut self, value: &'a Value) {
        self.fold_if_big();
        match value {
            Value::Null => self.buf.extend_from_slice(b"/null/"),
            Value::Bool(true) => self.buf.extend_from_slice(b"true"),
            Value::Bool(false) => self.buf.extend_from_slice(b"false"),
            Value::Number(number) => match number.as_f64() {
                // cjson decodes every JSON number to a double.
                Some(x) => write_lua_number(&mut self.buf, x),
                // Only reachable with serde_json's arbitrary_precision.
                None => self.buf.extend_from_slice(number.to_string().as_bytes()),
            },
            Value::String(text) => self.buf.extend_from_slice(text.as_bytes()),
            Value::Array(items) if items.is_empty() => self.buf.extend_from_slice(b"{}"),
            Value::Array(items) if items.len() <= 5 => {
                // Kong's unrolled cases for 1..=5 items put no trailing ';'.
                for (i, item) in items.iter().enumerate().rev() {
                    self.stack.push(Step::Visit(item));
                    if i > 0 {
                        self.stack.push(Step::Put(b";"));
                    }
                }
            }
            Value::Array(items) => {
                for item in items.iter().rev() {
                    self.stack.push(Step::Put(b";"));
                    self.stack.push(Step::Visit(item));
                }
            }
            Value::Object(map) if map.is_empty() => self.buf.extend_from_slice(b"{}"),
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                self.push_entries(&mut entries);
            }
        }
    }

    /// Queues `key:value;` for each entry, keys in byte order (Lua's `<` on
    /// strings compares bytes).
    fn push_entries(&mut self, entries: &mut [(&'a String, &'a Value)]) {
        entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (key, value) in entries.iter().rev() {
            self.stack.push(Step::Put(b";"));
            self.stack.push(Step::Visit(value));
            self.stack.push(Step::Put(b":"));
            self.stack.push(Step::Put(key.as_bytes()));
        }
    }
}

/// Significant digits of Lua's number format.
const PRECISION: usize = 14;

/// Appends LuaJIT's `%.14g` of `x` (see [`lua_number`]).
fn write_lua_number(out: &mut Vec<u8>, x: f64) {
    if x.is_nan() {
        out.extend_from_slice(b"nan");
        return;
    }
    if x.is_sign_negative() {
        out.push(b'-');
    }
    let magnitude = x.abs();
    if magnitude.is_infinite() {
        out.extend_from_slice(b"inf");
        return;
    }
    if magnitude == 0.0 {
        out.push(b'0');
        return;
    }
    // Fast path: integers below 1e14 have at most 14 digits, so %.14g
    // writes them exactly and in fixed notation. The cast is exact.
    if magnitude < 1e14 && magnitude.fract() == 0.0 {
        out.extend_from_slice((magnitude as u64).to_string().as_bytes());
        return;
    }

    let (mut digits, mut exponent) = exact_decimal(magnitude);
    if digits.len() > PRECISION {
        let round_up = digits[PRECISION] >= b'5';
        digits.truncate(PRECISION);
        if round_up && increment(&mut digits) {
            exponent += 1;
        }
    }
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }

    // %g: scientific notation unless -4 <= exponent < precision.
    if exponent < -4 || exponent >= PRECISION as i32 {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exponent < 0 { b'-' } else { b'+' });
        let abs = exponent.unsigned_abs();
        if abs < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(abs.to_string().as_bytes());
    } else if exponent >= 0 {
        let int_len = exponent as usize + 1;
        if digits.len() <= int_len {
            out.extend_from_slice(&digits);
            out.resize(out.len() + int_len - digits.len(), b'0');
        } else {
            out.extend_from_slice(&digits[..int_len]);
            out.push(b'.');
            out.extend_from_slice(&digits[int_len..]);
        }
    } else {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + (-exponent - 1) as usize, b'0');
        out.extend_from_slice(&digits);
    }
}

/// Adds one unit in the last place of a run of ASCII digits; on overflow
/// (all nines) the run becomes `100…0` of the same length and this returns
/// true, meaning the decimal exponent grows by one.
fn increment(digits: &mut [u8]) -> bool {
    for digit in digits.iter_mut().rev() {
        if *digit == b'9' {
            *digit = b'0';
        } else {
            *digit += 1;
            return false;
        }
    }
    if let Some(first) = digits.first_mut() {
        *first = b'1';
    }
    true
}

/// Exact decimal expansion of a finite positive double: its significant
/// digits (ASCII, no leading or trailing zeros) and the decimal exponent of
/// the first one, so that x = d.ddd… × 10^exponent exactly.
///
/// Every double is m·2^e; for e < 0 that is m·5^-e / 10^-e, so the digits
/// are those of the integer m·2^e or m·5^-e, computed in base 10^9.
fn exact_decimal(x: f64) -> (Vec<u8>, i32) {
    const BASE: u64 = 1_000_000_000;
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mut mantissa, mut exp2) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), biased - 1075)
    };
    let zeros = mantissa.trailing_zeros();
    mantissa >>= zeros;
    exp2 += zeros as i32;

    let mut limbs: Vec<u32> = Vec::with_capacity(90);
    while mantissa > 0 {
        limbs.push((mantissa % BASE) as u32);
        mantissa /= BASE;
    }
    let mul = |limbs: &mut Vec<u32>, factor: u32| {
        let mut carry = 0u64;
        for limb in limbs.iter_mut() {
            let v = u64::from(*limb) * u64::from(factor) + carry;
            *limb = (v % BASE) as u32;
            carry = v / BASE;
        }
        while carry > 0 {
            limbs.push((carry % BASE) as u32);
            carry /= BASE;
        }
    };
    let (base_factor, chunk, steps, fraction_digits) = if exp2 >= 0 {
        (2u32, 31u32, exp2 as u32, 0)
    } else {
        (5u32, 13u32, exp2.unsigned_abs(), exp2.unsigned_abs() as i32)
    };
    let mut left = steps;
    while left > 0 {
        let n = left.min(chunk);
        mul(&mut limbs, base_factor.pow(n));
        left -= n;
    }

    let mut text = String::with_capacity(limbs.len() * 9);
    for (i, limb) in limbs.iter().rev().enumerate() {
        if i == 0 {
            text.push_str(&limb.to_string());
        } else {
            text.push_str(&format!("{limb:09}"));
        }
    }
    let mut digits = text.into_bytes();
    let exponent = digits.len() as i32 - 1 - fraction_digits;
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    (digits, exponent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EMPTY_TABLE_MD5: &str = "99914b932bd37a50b983c5e7c90ae93b"; // md5("{}")

    fn hash_of(value: Value) -> String {
        config_hash(&value).0
    }

    // spec/01-unit/19-hybrid/02-clustering_spec.lua, ".calculate_config_hash()":
    // "calculates hash for null" / "number" / "double" / "empty string" /
    // "string" / "boolean false" / "boolean true". (The function, thread,
    // userdata and cdata cases have no JSON counterpart.)
    #[test]
    fn spec_scalars() {
        assert_eq!(hash_of(Value::Null), "5bf07a8b7343015026657d1108d8206e");
        assert_eq!(hash_of(json!(10)), "d3d9446802a44259755d38e6d163e820");
        assert_eq!(hash_of(json!(0.9)), "a894124cc6d5c5c71afe060d5dde0762");
        assert_eq!(hash_of(json!("")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hash_of(json!("hello")), "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(hash_of(json!(false)), "68934a3e9455fa72420237eb05902327");
        assert_eq!(hash_of(json!(true)), "b326b5062b2f0e69046810717534cb09");
        // The spec also checks these equal ngx.md5 of the serialization.
        assert_eq!(hash_of(Value::Null), md5_hex(b"/null/"));
        assert_eq!(hash_of(json!(10)), md5_hex(b"10"));
        assert_eq!(hash_of(json!(0.9)), md5_hex(b"0.9"));
    }

    // Same spec, "calculates hash for null": Kong returns only `config` for a
    // scalar; the other fields are filled as fill_empty_hashes would.
    #[test]
    fn scalar_hashes_fill_sections_with_empty_hash() {
        let (hash, hashes) = config_hash(&Value::Null);
        assert_eq!(hashes.config, hash);
        assert_eq!(hashes.routes, EMPTY_HASH);
        assert_eq!(hashes.targets, EMPTY_HASH);
    }

    // Same spec, "calculates hash for empty table"; a JSON [] is the same
    // empty Lua table.
    #[test]
    fn spec_empty_table() {
        assert_eq!(hash_of(json!({})), "2da3c26e4dbd6dd6ea3ab60a3dd7fb3e");
        assert_eq!(hash_of(json!([])), "2da3c26e4dbd6dd6ea3ab60a3dd7fb3e");
    }

    // Same spec, "calculates hash for complex table".
    #[test]
    fn spec_complex_table() {
        let consumers: Vec<Value> = (1..=1000)
            .map(|i| json!({ "username": format!("user-{i}") }))
            .collect();
        let value = json!({
            "plugins": [
                { "name": "0", "config": { "param": "value" } },
                { "name": "1", "config": { "param": ["v1", "v2", "v3", "v4", "v5", "v6"] } },
                { "name": "2", "config": { "param": ["v1", "v2", "v3", "v4", "v5"] } },
                { "name": "3", "config": { "param": ["v1", "v2", "v3", "v4"] } },
                { "name": "4", "config": { "param": ["v1", "v2", "v3"] } },
                { "name": "5", "config": { "param": ["v1", "v2"] } },
                { "name": "6", "config": { "param": ["v1"] } },
                { "name": "7", "config": { "param": {} } },
                { "name": "8", "config": { "param": "value",
                    "array": ["v1", "v2", "v3", "v4", "v5", "v6"] } },
                { "name": "9", "config": { "bool1": true, "bool2": false, "number": 1,
                    "double": 1.1, "empty": {}, "null": null, "string": "test",
                    "hash": { "k": "v" }, "array": ["v1", "v2", "v3", "v4", "v5", "v6"] } },
            ],
            "consumers": consumers,
        });
        let (hash, hashes) = config_hash(&value);
        assert_eq!(hash, "675ff4b6b1c8cefa5198284110786ad0");
        assert_eq!(hashes.config, hash);
        assert_eq!(hashes.routes, EMPTY_HASH);
        assert_ne!(hashes.plugins, EMPTY_HASH);
        // Key order in the input must not matter.
        let mut reordered = serde_json::Map::new();
        if let Value::Object(map) = &value {
            for (key, item) in map.iter().rev() {
                reordered.insert(key.clone(), item.clone());
            }
        }
        assert_eq!(hash_of(Value::Object(reordered)), hash);
    }

    // Same spec, "granular hashes" / "filled with empty hash values for
    // missing config fields": an absent section (Kong's nil) is EMPTY_HASH.
    #[test]
    fn spec_granular_missing_fields() {
        let (hash, hashes) = config_hash(&json!({}));
        assert_eq!(hash, "2da3c26e4dbd6dd6ea3ab60a3dd7fb3e");
        assert_eq!(
            hashes,
            Hashes {
                config: "2da3c26e4dbd6dd6ea3ab60a3dd7fb3e".into(),
                routes: EMPTY_HASH.into(),
                services: EMPTY_HASH.into(),
                plugins: EMPTY_HASH.into(),
                upstreams: EMPTY_HASH.into(),
                targets: EMPTY_HASH.into(),
            }
        );
    }

    // Same spec, "granular hashes" / "has sensible values for existing fields".
    #[test]
    fn spec_granular_existing_fields() {
        for empty in [json!({}), json!([])] {
            let value = json!({ "routes": empty, "services": empty, "plugins": empty });
            let (hash, hashes) = config_hash(&value);
            assert_eq!(hash, "81aac97a81ad03c0cf0b36663806488e");
            assert_eq!(
                hashes,
                Hashes {
                    config: "81aac97a81ad03c0cf0b36663806488e".into(),
                    routes: EMPTY_TABLE_MD5.into(),
                    services: EMPTY_TABLE_MD5.into(),
                    plugins: EMPTY_TABLE_MD5.into(),
                    upstreams: EMPTY_HASH.into(),
                    targets: EMPTY_HASH.into(),
                }
            );

            let value = json!({ "upstreams": empty, "targets": empty });
            let (hash, hashes) = config_hash(&value);
            assert_eq!(hash, "4d60dd9998ea4314039da5ca2f1db96f");
            assert_eq!(
                hashes,
                Hashes {
                    config: "4d60dd9998ea4314039da5ca2f1db96f".into(),
                    routes: EMPTY_HASH.into(),
                    services: EMPTY_HASH.into(),
                    plugins: EMPTY_HASH.into(),
                    upstreams: EMPTY_TABLE_MD5.into(),
                    targets: EMPTY_TABLE_MD5.into(),
                }
            );
        }
    }

    #[test]
    fn absent_section_is_empty_hash_but_null_section_is_not() {
        let without = config_hash(&json!({ "_format_version": "3.0", "routes": [] })).1;
        assert_eq!(without.services, EMPTY_HASH);
        assert_eq!(without.routes, EMPTY_TABLE_MD5);
        let with_null = config_hash(&json!({ "_format_version": "3.0", "services": null })).1;
        assert_eq!(with_null.services, md5_hex(b"/null/"));
        // The config hash is md5 over the six hex hashes, rest last.
        let rest = md5_hex(b"_format_version:3.0;");
        let joined = format!("{EMPTY_TABLE_MD5}{}{rest}", EMPTY_HASH.repeat(4));
        assert_eq!(without.config, md5_hex(joined.as_bytes()));
    }

    #[test]
    fn sorted_string_layout() {
        // One to five items: ';' between; six or more: ';' after each.
        assert_eq!(sorted_string(&json!(["a"])), "a");
        assert_eq!(
            sorted_string(&json!(["a", "b", "c", "d", "e"])),
            "a;b;c;d;e"
        );
        assert_eq!(
            sorted_string(&json!(["a", "b", "c", "d", "e", "f"])),
            "a;b;c;d;e;f;"
        );
        // Keys in byte order ('B' < '_' < 'a'), each entry closed by ';'.
        assert_eq!(
            sorted_string(&json!({ "a": 1, "B": null, "_": [true, false], "e": {} })),
            "B:/null/;_:true;false;a:1;e:{};"
        );
        assert_eq!(sorted_string(&json!([[], {}, 1.5])), "{};{};1.5");
        assert_eq!(
            sorted_string(&json!(123456789012345u64)),
            "1.2345678901235e+14"
        );
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let mut value = json!("x");
        for _ in 0..100_000 {
            value = Value::Array(vec![value]);
        }
        assert_eq!(sorted_string(&value), "x");
        // Dropping a deep Value recurses in serde_json; leak it instead.
        std::mem::forget(value);
    }

    // Kong replaces the buffer by its raw md5 when a value starts while it
    // holds more than 1,000,000 bytes; this derives the expected hash by hand.
    #[test]
    fn big_buffer_is_folded_into_raw_md5() {
        let big = |c: char| c.to_string().repeat(600_000);
        let items: Vec<Value> = "abcdef".chars().map(|c| json!(big(c))).collect();
        let value = Value::Array(items);
        let raw = |bytes: &[u8]| Md5::digest(bytes).to_vec();

        // a; b; are written (1,200,002 bytes), then c's start folds them.
        let mut buf = format!("{};{};", big('a'), big('b')).into_bytes();
        buf = raw(&buf);
        buf.extend_from_slice(format!("{};", big('c')).as_bytes());
        // 600,017 bytes: d is appended without a fold, e's start folds.
        buf.extend_from_slice(format!("{};", big('d')).as_bytes());
        buf = raw(&buf);
        buf.extend_from_slice(format!("{};", big('e')).as_bytes());
        buf.extend_from_slice(format!("{};", big('f')).as_bytes());
        let expected = md5_hex(&buf);

        assert_eq!(value_hash(&value), expected);
        let (_, hashes) = config_hash(&json!({ "routes": value }));
        assert_eq!(hashes.routes, expected);
        // Without folding the hash would differ.
        let unfolded = "abcdef"
            .chars()
            .map(|c| format!("{};", big(c)))
            .collect::<String>();
        assert_ne!(expected, md5_hex(unfolded.as_bytes()));
    }

    #[test]
    fn fold_needs_strictly_more_than_the_threshold() {
        // "k:" + 999,995 bytes + ";l:" is exactly 1,000,000 bytes when the
        // value of "l" starts: no fold.
        let value = json!({ "k": "x".repeat(999_995), "l": "y" });
        let plain = format!("k:{};l:y;", "x".repeat(999_995));
        assert_eq!(value_hash(&value), md5_hex(plain.as_bytes()));
        // One byte more and the value of "l" starts on a folded buffer.
        let value = json!({ "k": "x".repeat(999_996), "l": "y" });
        let mut buf = Md5::digest(format!("k:{};l:", "x".repeat(999_996)).as_bytes()).to_vec();
        buf.extend_from_slice(b"y;");
        assert_eq!(value_hash(&value), md5_hex(&buf));
    }

    // Expected strings were printed by tostring() in OpenResty's LuaJIT 2.1.
    #[test]
    fn lua_number_cases() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-3.0, "-3"),
            (10.0, "10"),
            (100.0, "100"),
            (0.5, "0.5"),
            (2.5, "2.5"),
            (-1.5, "-1.5"),
            (0.9, "0.9"),
            (1.1, "1.1"),
            (0.1, "0.1"),
            (0.1 + 0.2, "0.3"),
            (0.05, "0.05"),
            (1.0 / 3.0, "0.33333333333333"),
            (std::f64::consts::PI, "3.1415926535898"),
            (123456.7890123456, "123456.78901235"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (2.5e-5, "2.5e-05"),
            (1.5e-10, "1.5e-10"),
            (0.000123456789012345, "0.00012345678901234"),
            (1e-300, "1e-300"),
            (99999999999999.0, "99999999999999"),
            (1e14, "1e+14"),
            (1e15, "1e+15"),
            (1e21, "1e+21"),
            (1e100, "1e+100"),
            (999999999999994.0, "9.9999999999999e+14"),
            (9007199254740992.0, "9.007199254741e+15"),
            (-9007199254740992.0, "-9.007199254741e+15"),
            (9223372036854775808.0, "9.2233720368548e+18"),
            (1234567890123.45, "1234567890123.4"),
            (5e-324, "4.9406564584125e-324"),
            (2.2250738585072014e-308, "2.2250738585072e-308"),
            (f64::MAX, "1.7976931348623e+308"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (-f64::NAN, "nan"),
        ];
        for &(x, want) in cases {
            assert_eq!(lua_number(x), want, "{x:e}");
        }
    }

    // Exact ties at the 15th significant digit round away from zero, where
    // C's printf rounds to even.
    #[test]
    fn lua_number_ties_round_away_from_zero() {
        let cases: &[(f64, &str)] = &[
            (123456789012345.0, "1.2345678901235e+14"),
            (-123456789012345.0, "-1.2345678901235e+14"),
            (12345678901234.5, "12345678901235"),
            (99999999999999.5, "1e+14"),
            (999999999999995.0, "1e+15"),
            (f64::from_bits(0x42fc_d04f_f5f2_0210), "5.0689632469815e+14"),
            (
                f64::from_bits(0xc2fc_d04f_f5f2_0210),
                "-5.0689632469815e+14",
            ),
            (f64::from_bits(0x4334_9b6d_c7bf_754a), "5.8003953391671e+15"),
        ];
        for &(x, want) in cases {
            assert_eq!(lua_number(x), want, "{x:e}");
        }
    }

    #[test]
    fn exact_decimal_expansion() {
        assert_eq!(exact_decimal(0.5), (b"5".to_vec(), -1));
        assert_eq!(exact_decimal(1024.0), (b"1024".to_vec(), 3));
        let (digits, exponent) = exact_decimal(0.1);
        assert_eq!(exponent, -1);
        assert_eq!(
            &digits[..],
            &b"1000000000000000055511151231257827021181583404541015625"[..]
        );
        let (digits, exponent) = exact_decimal(5e-324);
        assert_eq!(exponent, -324);
        assert_eq!(digits.len(), 751);
        assert!(digits.starts_with(b"49406564584124654417656879286822137236505980"));
        assert_eq!(
            exact_decimal(2f64.powi(64)),
            (b"18446744073709551616".to_vec(), 19)
        );
    }

    #[test]
    fn increment_carries() {
        let mut digits = b"1299".to_vec();
        assert!(!increment(&mut digits));
        assert_eq!(digits, b"1300");
        let mut digits = b"999".to_vec();
        assert!(increment(&mut digits));
        assert_eq!(digits, b"100");
    }

    #[test]
    fn hashes_serialize_with_kong_field_names() {
        let (_, hashes) = config_hash(&json!({}));
        let text = serde_json::to_string(&hashes).unwrap();
        assert!(text.starts_with("{\"config\":\"2da3c26e4dbd6dd6ea3ab60a3dd7fb3e\",\"routes\":"));
        assert!(text.contains("\"targets\":\"00000000000000000000000000000000\"}"));
    }
}
