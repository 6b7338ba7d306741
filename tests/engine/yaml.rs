//! The YAML fast reader (`config::parse` with `Format::Yaml`) against the full
//! parser it falls back to (`parse_yaml_reference`, serde-saphyr into the
//! strict value: the reader before the fast path existed), on data:
//!
//! - every case in `fixtures/yaml/` (our own tricky inputs: anchors, merge keys,
//!   block scalars, flow collections, quoted keys, comments, tabs, CRLF, BOM,
//!   duplicate keys, booleans, numbers, timestamps, several documents, …), with
//!   the values of some pinned in `fixtures/yaml/expected.json` and the errors of
//!   some in `fixtures/yaml/expected_errors.json`;
//! - every real YAML file under `../shared/fixtures/real` (never committed
//!   here; skipped with a printed reason when missing, a failure under `CI=true`);
//! - generated decK files (`rgmerge::synth`) and CRLF, BOM and nesting variants
//!   built here;
//! - a few thousand pseudo-random documents assembled from YAML fragments.
//!
//! Agreement means the same `Value`, or the same `ParseFailure` (message, line
//! and column): the fast reader never words an error, so errors must be identical.

use std::path::{Path, PathBuf};

use rgmerge::config::parse::yaml_fast::parse_by_entries;
use rgmerge::config::parse::{parse_yaml_fast_only, parse_yaml_reference};
use rgmerge::config::{Format, parse};
use serde_json::Value;

fn cases_dir() -> PathBuf {
    crate::common::fixtures().join("yaml")
}

fn real_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/real")
}

/// Both readers on `bytes`, and the fast reader an entry at a time (what
/// `config::read_member` streams YAML with); panics with `name` if they
/// disagree. Returns the result and whether the fast reader alone accepted it.
fn agree(name: &str, bytes: &[u8]) -> (Result<Value, rgmerge::config::ParseFailure>, bool) {
    let (result, fast_only, _) = agree_by_entries(name, bytes);
    (result, fast_only)
}

/// [`agree`], and whether the entry-at-a-time read accepted it.
fn agree_by_entries(
    name: &str,
    bytes: &[u8],
) -> (Result<Value, rgmerge::config::ParseFailure>, bool, bool) {
    let fast = parse(bytes, Format::Yaml);
    let reference = parse_yaml_reference(bytes);
    assert_eq!(
        fast,
        reference,
        "{name}: the fast path and the full parser disagree on\n{}",
        String::from_utf8_lossy(bytes)
    );
    let fast_only = parse_yaml_fast_only(bytes);
    if let Some(v) = &fast_only {
        assert_eq!(
            Ok(v),
            reference.as_ref(),
            "{name}: the fast reader alone accepted what the full parser gives differently"
        );
    }
    let text = std::str::from_utf8(bytes).unwrap_or("");
    let by_entries = parse_by_entries(text.strip_prefix('\u{feff}').unwrap_or(text)).ok();
    if let Some(v) = &by_entries {
        assert_eq!(
            Ok(v),
            reference.as_ref(),
            "{name}: the fast reader an entry at a time gives what the full parser gives differently"
        );
    }
    (fast, fast_only.is_some(), by_entries.is_some())
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable directory") {
            let p = e.expect("directory entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml") | Some("yml")
            ) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn read_json(path: &Path) -> serde_json::Map<String, Value> {
    let bytes = std::fs::read(path).expect("expectations file");
    match serde_json::from_slice(&bytes).expect("expectations are JSON") {
        Value::Object(m) => m,
        _ => panic!("{} is not an object", path.display()),
    }
}

#[test]
fn our_cases_agree_and_match_their_expectations() {
    let files = yaml_files(&cases_dir());
    assert!(files.len() >= 40, "fixtures/yaml has {} cases", files.len());
    let values = read_json(&cases_dir().join("expected.json"));
    let errors = read_json(&cases_dir().join("expected_errors.json"));
    let mut fast = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(f).unwrap();
        let (result, took_fast_path) = agree(&name, &bytes);
        if took_fast_path {
            fast.push(name.clone());
        }
        if let Err(e) = &result {
            // Every refusal says where.
            assert!(
                e.line.is_some() && e.column.is_some(),
                "{name}: error without a position: {e:?}"
            );
        }
        if let Some(want) = values.get(&name) {
            assert_eq!(result.as_ref().ok(), Some(want), "{name}");
        }
        if let Some(want) = errors.get(&name) {
            let e = result
                .as_ref()
                .expect_err(&format!("{name} must be refused"));
            let contains = want["contains"].as_str().unwrap_or("");
            assert!(e.message.contains(contains), "{name}: {e:?}");
            if let Some(line) = want["line"].as_u64() {
                assert_eq!(e.line, Some(line), "{name}: {e:?}");
            }
        }
    }
    for name in values.keys().chain(errors.keys()) {
        assert!(
            files.iter().any(|f| f.ends_with(name)),
            "expectation for a missing case {name}"
        );
    }
    eprintln!(
        "fast path taken by {} of {}: {fast:?}",
        fast.len(),
        files.len()
    );
}

/// The cases the fast reader must take itself (decK's subset), so the speed-up
/// is not lost silently to the fallback.
#[test]
fn the_deck_subset_takes_the_fast_path() {
    for name in [
        "comments.yaml",
        "booleans.yaml",
        "nulls.yaml",
        "numbers.yaml",
        "numbers_more.yaml",
        "keys_more.yaml",
        "timestamps.yaml",
        "unicode.yaml",
        "special_plain.yaml",
        "tabs_in_quotes.yaml",
        "bom.yaml",
        "crlf.yaml",
        "block_scalar_eof.yaml",
        "multiline_plain.yaml",
        "multiline_quoted.yaml",
        "sequence_root.yaml",
    ] {
        let bytes = std::fs::read(cases_dir().join(name)).unwrap();
        assert!(
            parse_yaml_fast_only(&bytes).is_some(),
            "{name} fell back to the full parser"
        );
    }
    for spec in [(1, 50), (7, 1000)] {
        let doc = rgmerge::synth::member_document(
            spec.0,
            &rgmerge::synth::Spec {
                entities: spec.1,
                conflicts: 0.1,
                seed: 3,
            },
            0,
        );
        let yaml = rgmerge::synth::to_yaml(&doc).unwrap();
        assert_eq!(parse_yaml_fast_only(&yaml).as_ref(), Some(&doc));
        let text = std::str::from_utf8(&yaml).unwrap();
        assert_eq!(parse_by_entries(text).ok().as_ref(), Some(&doc));
    }
}

#[test]
fn real_files_agree() {
    let root = real_root();
    if !root.is_dir() {
        let reason = format!("{} is missing", root.display());
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "real_files_agree: {reason}; CI must have ../shared/fixtures/real"
        );
        eprintln!("SKIPPED real_files_agree: {reason}");
        return;
    }
    let files = yaml_files(&root);
    assert!(!files.is_empty(), "no YAML file under {}", root.display());
    let mut slow = Vec::new();
    let mut whole = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let name = f.strip_prefix(&root).unwrap().display().to_string();
        let (value, took_fast_path, by_entries) = agree_by_entries(&name, &bytes);
        if !took_fast_path {
            slow.push(name.clone());
        }
        if matches!(value, Ok(Value::Object(_))) && !by_entries {
            whole.push(name);
        }
    }
    // Every real file that is a mapping is read an entry at a time.
    assert!(
        whole.is_empty(),
        "real files read as a whole tree: {whole:?}"
    );
    eprintln!(
        "{} real YAML files agree; {} left to the full parser: {slow:?}",
        files.len(),
        slow.len()
    );
    // Every real decK/Kong file is in the subset the fast reader covers.
    assert!(
        slow.is_empty(),
        "real files outside the fast subset: {slow:?}"
    );
}

#[test]
fn generated_deck_files_agree() {
    for (entities, conflicts, seed) in [(10, 0.0, 1), (300, 0.1, 2), (1000, 0.02, 5)] {
        let spec = rgmerge::synth::Spec {
            entities,
            conflicts,
            seed,
        };
        let yaml = rgmerge::synth::to_yaml(&rgmerge::synth::member_document(3, &spec, 1)).unwrap();
        let (r, fast) = agree(&format!("synth {entities}"), &yaml);
        assert!(r.is_ok() && fast);
    }
}

#[test]
fn crlf_bom_and_deep_variants_agree() {
    let base = std::fs::read(cases_dir().join("comments.yaml")).unwrap();
    let text = String::from_utf8(base).unwrap();
    let crlf = text.replace('\n', "\r\n");
    let (_, fast) = agree("crlf", crlf.as_bytes());
    assert!(fast, "CRLF line breaks are in the subset");
    let cr = text.replace('\n', "\r");
    let _ = agree("cr only", cr.as_bytes());
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend_from_slice(text.as_bytes());
    let (_, fast) = agree("bom", &bom);
    assert!(fast, "a leading byte order mark is in the subset");
    let mut bom2 = text.clone().into_bytes();
    bom2.extend_from_slice(b"x: \xef\xbb\xbfy\n");
    let _ = agree("bom inside", &bom2);
    for depth in [10, 99, 100, 101, 127, 128, 129, 130, 500] {
        // Block mappings nested `depth` deep, and block sequences.
        let mut m = String::new();
        for i in 0..depth {
            m.push_str(&" ".repeat(i));
            m.push_str("k:\n");
        }
        m.push_str(&" ".repeat(depth));
        m.push_str("leaf: 1\n");
        let (r, _) = agree(&format!("mappings {depth}"), m.as_bytes());
        assert_eq!(r.is_ok(), depth < 128, "depth {depth}: {r:?}");
        let mut s = String::new();
        for i in 0..depth {
            s.push_str(&" ".repeat(2 * i));
            s.push_str("-\n");
        }
        s.push_str(&" ".repeat(2 * depth));
        s.push_str("- x\n");
        let _ = agree(&format!("sequences {depth}"), s.as_bytes());
        let flow = format!("a: {}{}\n", "[".repeat(depth), "]".repeat(depth));
        let _ = agree(&format!("flow {depth}"), flow.as_bytes());
    }
}

/// Deterministic pseudo-random documents from YAML fragments: indentation,
/// keys, sequence dashes, every kind of scalar, comments, block scalar
/// headers, flow brackets, anchors, tabs. Most are invalid or outside the
/// subset; all must agree.
const FRAGMENTS: &[&str] = &[
    "key: ",
    "k2: ",
    "name: ",
    "- ",
    "-",
    "? ",
    ": ",
    "a:",
    "\"q\": ",
    "'s': ",
    "x",
    "yes",
    "true",
    "False",
    "~",
    "null",
    "0x1F",
    "0o17",
    "0b2",
    "1e3",
    "-0",
    "012",
    "1_0",
    "1__0",
    "1.5",
    ".5",
    "-.inf",
    ".NaN",
    "1e999",
    "18446744073709551616",
    "2001-12-14",
    "\"a\\tb\"",
    "\"\\u00e9\"",
    "\"\\x4\"",
    "\"\\q\"",
    "'it''s'",
    "'open",
    "\"open",
    "|",
    "|-",
    "|+",
    ">",
    "|2",
    "[]",
    "{}",
    "[a, b]",
    "{a: 1}",
    "[",
    "}",
    "&a ",
    "*a",
    "!!str ",
    "<<: ",
    "# c",
    " #c",
    "#",
    "\t",
    " ",
    "  ",
    "---",
    "...",
    "%YAML 1.2",
    "é",
    "a b",
    "a:b",
    "-x",
    "@",
    "`",
    ",",
    "\u{85}",
    "\u{feff}",
    "\n",
    "\n  ",
    "'a\n  b'",
    "\"a\\\n b\"",
    "[a, b]",
    "[a, [b]]",
];

#[test]
fn generated_fragment_documents_agree() {
    let mut rng = rgmerge::synth::Rng::new(17);
    let mut fast = 0;
    let n = if cfg!(debug_assertions) { 3000 } else { 30000 };
    for i in 0..n {
        let mut doc = String::new();
        let lines = 1 + rng.below(8);
        for _ in 0..lines {
            doc.push_str(&" ".repeat(rng.below(5)));
            for _ in 0..1 + rng.below(3) {
                let f: &&str = rng.pick(FRAGMENTS);
                doc.push_str(f);
            }
            doc.push('\n');
        }
        if rng.chance(0.1) {
            doc.pop();
        }
        let (_, f) = agree(&format!("generated #{i}"), doc.as_bytes());
        fast += usize::from(f);
    }
    eprintln!("{fast} of {n} generated documents took the fast path");
    assert!(fast > 0, "no generated document exercises the fast path");
}

/// Scalars as a decK file (or a person) might write them, each a complete
/// inline value.
const SCALARS: &[&str] = &[
    "a",
    "name-1",
    "http://x.example:80/p?q=1",
    "~/flights$",
    "\"3.0\"",
    "'it''s'",
    "\"\"",
    "''",
    "80",
    "-1",
    "1.5",
    "0x1F",
    "1e3",
    "true",
    "yes",
    "on",
    "no",
    "False",
    "null",
    "~",
    "2001-12-14",
    "\"a\\tb\\u00e9\"",
    "\"{vault://env/x}\"",
    "a b c",
    "a:b",
    "a#b",
    "[]",
    "{}",
    "[a, \"b\", 3]",
    "[ ]",
    "café",
    "-x",
    "012",
    "1_000",
    ".5",
    "+1",
    "9e99",
];

/// Emits `depth`-bounded random YAML in the block style, with the variations
/// the fast reader handles (and a few it leaves to the full parser): a
/// sequence when `seq`, else a mapping, at column `indent`.
fn emit(rng: &mut rgmerge::synth::Rng, out: &mut String, indent: usize, depth: usize, seq: bool) {
    let pad = |n: usize| " ".repeat(n);
    let entries = 1 + rng.below(4);
    let step = 1 + rng.below(3);
    for i in 0..entries {
        if rng.chance(0.1) {
            out.push_str(&pad(rng.below(6)));
            out.push_str("# comment\n");
        }
        if rng.chance(0.05) {
            out.push('\n');
        }
        out.push_str(&pad(indent));
        if seq {
            out.push('-');
            if depth > 0 && rng.chance(0.15) {
                // `-` alone, the node on the next lines.
                out.push('\n');
                let child_seq = rng.chance(0.3);
                emit(rng, out, indent + step, depth - 1, child_seq);
                continue;
            }
            out.push(' ');
            if rng.chance(0.2) {
                out.push_str(&pad(rng.below(3)));
            }
        }
        // The column of what follows (a compact mapping's keys after `- `).
        let col = out.len() - out.rfind('\n').map_or(0, |n| n + 1);
        let (value_parent, mut key_col) = (col, col);
        if seq && rng.chance(0.4) {
            // A scalar entry.
            value(rng, out, indent);
            continue;
        }
        let key: &&str = rng.pick(&["k", "name", "host", "\"q k", "'s", "1", "true", "x y"]);
        out.push_str(key);
        // Keys unique in their mapping, unless the index is left off.
        if rng.chance(0.97) {
            out.push_str(&format!("{i}"));
        }
        if let Some(q) = key.chars().next().filter(|c| *c == '"' || *c == '\'') {
            out.push(q);
        }
        out.push(':');
        if depth > 0 && rng.chance(0.4) {
            if rng.chance(0.2) {
                out.push_str(" # after key");
            }
            out.push('\n');
            let child_seq = rng.chance(0.4);
            if !(child_seq && rng.chance(0.5)) {
                key_col += step;
            }
            emit(rng, out, key_col, depth - 1, child_seq);
        } else {
            out.push(' ');
            value(rng, out, value_parent);
        }
        if seq {
            // Further keys of the compact mapping.
            for j in 0..rng.below(3) {
                out.push_str(&pad(col));
                out.push_str(&format!("more{j}: "));
                value(rng, out, col);
            }
        }
    }
}

/// An inline value (after `key: ` or `- `) of an entry of a collection at
/// column `parent`, with its line break.
fn value(rng: &mut rgmerge::synth::Rng, out: &mut String, parent: usize) {
    let pad = |n: usize| " ".repeat(n);
    if rng.chance(0.1) {
        let chomp: &&str = rng.pick(&["|", "|-", "|+"]);
        out.push_str(chomp);
        out.push('\n');
        let n = parent + 1 + rng.below(3);
        for k in 0..1 + rng.below(3) {
            if k > 0 && rng.chance(0.2) {
                out.push('\n');
                continue;
            }
            out.push_str(&pad(n + if k > 0 { rng.below(2) } else { 0 }));
            out.push_str("line text\n");
        }
    } else if rng.chance(0.1) {
        // A plain scalar over several lines.
        out.push_str("plain words");
        for _ in 0..1 + rng.below(3) {
            out.push_str(&"\n".repeat(1 + rng.below(2)));
            out.push_str(&pad(parent + 1 + rng.below(3)));
            let w: &&str = rng.pick(&["more words", "x#y", "a:b", "1", "true", "more # c"]);
            out.push_str(w);
        }
        out.push('\n');
    } else if rng.chance(0.1) {
        let q: &&str = rng.pick(&["'", "\""]);
        out.push_str(q);
        out.push_str("folded ");
        for _ in 0..1 + rng.below(3) {
            out.push_str(&"\n".repeat(1 + rng.below(2)));
            out.push_str(&pad(parent + 1 + rng.below(4)));
            out.push_str("more text ");
        }
        out.push_str(q);
        out.push('\n');
    } else {
        let v: &&str = rng.pick(SCALARS);
        out.push_str(v);
        if rng.chance(0.1) {
            out.push_str("   # trailing");
        }
        out.push('\n');
    }
}

/// Structured documents in decK's style, most of them valid and in the fast
/// subset, a third of them then damaged at random (a fragment inserted, a
/// byte removed, a line duplicated or re-indented).
#[test]
fn generated_block_documents_agree() {
    let mut rng = rgmerge::synth::Rng::new(23);
    let n = if cfg!(debug_assertions) { 4000 } else { 40000 };
    let (mut fast, mut ok) = (0, 0);
    for i in 0..n {
        let mut doc = String::new();
        let root_seq = rng.chance(0.1);
        emit(&mut rng, &mut doc, 0, 3, root_seq);
        if rng.chance(0.35) {
            let mut bytes = doc.into_bytes();
            let at = rng.below(bytes.len() + 1);
            match rng.below(4) {
                0 => {
                    let f: &&str = rng.pick(FRAGMENTS);
                    bytes.splice(at..at, f.bytes());
                }
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                2 => bytes.splice(at..at, [b' ']).for_each(drop),
                _ => {
                    let text = String::from_utf8_lossy(&bytes).to_string();
                    let lines: Vec<&str> = text.lines().collect();
                    let k = rng.below(lines.len());
                    let mut v: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                    v.insert(k, lines[k].to_string());
                    bytes = (v.join("\n") + "\n").into_bytes();
                }
            }
            doc = String::from_utf8_lossy(&bytes).to_string();
        }
        if rng.chance(0.1) {
            // Windows line breaks.
            doc = doc.replace('\n', "\r\n");
        }
        let (r, f) = agree(&format!("block #{i}"), doc.as_bytes());
        fast += usize::from(f);
        ok += usize::from(r.is_ok());
    }
    eprintln!("{fast} of {n} block documents took the fast path, {ok} parsed");
    assert!(
        fast > n / 3,
        "too few block documents exercise the fast path: {fast}"
    );
}

/// YAML 1.2 booleans only: `yes`, `on`, `y` stay strings, as they did before
/// the fast path.
#[test]
fn yaml_11_booleans_stay_strings() {
    let v = parse(b"a: yes\nb: on\nc: y\nd: True\n", Format::Yaml).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"a": "yes", "b": "on", "c": "y", "d": true})
    );
}
