//! Hostile and odd input: whatever bytes a member config holds, the engine
//! gives findings with a location, never a panic, and JSON and YAML agree.

use std::path::PathBuf;
use std::sync::Arc;

use proptest::prelude::*;
use rgmerge::batch;
use rgmerge::compose::Composite;
use rgmerge::config::schema::{Req, Ty};
use rgmerge::config::{Coll, Format};
use rgmerge::intern::Interner;
use rgmerge::member::{Member, MemberInfo};
use rgmerge::report::{ErrorKind, Report, State};
use serde_json::{Value, json};

fn report(bytes: &[u8], format: Format) -> Report {
    let interner = Arc::new(Interner::new());
    let info = MemberInfo::new("m", "m", false);
    let m = Arc::new(Member::build(info, bytes, format, &interner));
    Composite::from_members(interner, [m]).report()
}

/// Exactly one error, a `parse_error` with a line and a column.
fn assert_parse_error(r: &Report, what: &str) -> String {
    assert_eq!(r.state, State::Invalid, "{what}");
    assert_eq!(r.errors.len(), 1, "{what}: {:?}", r.errors);
    let e = &r.errors[0];
    assert_eq!(e.kind, ErrorKind::ParseError, "{what}: {e:?}");
    assert!(e.line.is_some() && e.column.is_some(), "{what}: {e:?}");
    assert!(!e.message.is_empty(), "{what}");
    e.message.clone()
}

#[test]
fn empty_garbage_and_invalid_utf8_are_parse_errors_with_positions() {
    let inputs: &[(&str, &[u8])] = &[
        ("empty", b""),
        ("whitespace", b"  \n\t\n"),
        ("bom only", b"\xef\xbb\xbf"),
        ("nul bytes", b"\0\0\0\0"),
        (
            "binary",
            &[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0],
        ),
        (
            "lone latin-1",
            b"_format_version: \"3.0\"\nservices:\n- name: caf\xe9\n",
        ),
        (
            "truncated utf-8",
            b"{\"_format_version\": \"3.0\", \"x\": \"\xe2\x82\"}",
        ),
        ("html", b"<html><body>502 Bad Gateway</body></html>"),
        (
            "unbalanced",
            b"{\"_format_version\": \"3.0\", \"services\": [{]}",
        ),
        (
            "tabs",
            b"_format_version: \"3.0\"\nservices:\n\t- name: a\n",
        ),
    ];
    for (what, bytes) in inputs {
        for format in [Format::Json, Format::Yaml] {
            let r = report(bytes, format);
            if *what == "html" && format == Format::Yaml {
                // One plain YAML scalar: it parses, and is not a mapping.
                assert_eq!(r.errors.len(), 1);
                assert_eq!(r.errors[0].kind, ErrorKind::SchemaError);
                assert!(r.errors[0].message.contains("must be a mapping"));
                continue;
            }
            let msg = assert_parse_error(&r, &format!("{what} as {format:?}"));
            if what.contains("utf") || what.contains("latin") {
                assert!(msg.contains("UTF-8"), "{what}: {msg}");
            }
            if what.contains("empty") || what.contains("whitespace") || what.contains("bom") {
                assert!(msg.contains("empty"), "{what}: {msg}");
            }
        }
    }
}

#[test]
fn invalid_utf8_is_located_at_the_bad_byte() {
    let r = report(
        b"_format_version: \"3.0\"\nservices:\n- name: caf\xe9\n",
        Format::Yaml,
    );
    assert_parse_error(&r, "latin-1");
    assert_eq!((r.errors[0].line, r.errors[0].column), (Some(3), Some(12)));
}

#[test]
fn json_and_yaml_syntax_errors_give_line_and_column() {
    let r = report(
        b"{\n  \"_format_version\": \"3.0\",\n  \"services\": [}\n",
        Format::Json,
    );
    assert_parse_error(&r, "json");
    assert_eq!(r.errors[0].line, Some(3));
    let r = report(
        b"_format_version: \"3.0\"\nservices:\n- name: a\n   host: b\n",
        Format::Yaml,
    );
    assert_parse_error(&r, "yaml");
    assert_eq!(r.errors[0].line, Some(4));
    let r = report(
        b"_format_version: \"3.0\"\n---\n_format_version: \"3.0\"\n",
        Format::Yaml,
    );
    let msg = assert_parse_error(&r, "two documents");
    assert!(msg.contains("one YAML document"), "{msg}");
}

const DEEP: usize = 10_000;

#[test]
fn ten_thousand_levels_are_refused_not_overflowed() {
    let cases: Vec<(&str, String, Format)> = vec![
        (
            "json arrays",
            format!(
                "{{\"_format_version\":\"3.0\",\"x\":{}{}}}",
                "[".repeat(DEEP),
                "]".repeat(DEEP)
            ),
            Format::Json,
        ),
        (
            "json objects",
            format!(
                "{{\"_format_version\":\"3.0\",\"services\":[{{\"name\":\"a\",\"host\":\"h\",\"x\":{}1{}}}]}}",
                "{\"a\":".repeat(DEEP),
                "}".repeat(DEEP)
            ),
            Format::Json,
        ),
        (
            "yaml flow",
            format!(
                "_format_version: \"3.0\"\nx: {}{}\n",
                "[".repeat(DEEP),
                "]".repeat(DEEP)
            ),
            Format::Yaml,
        ),
        (
            "yaml flow mappings",
            format!(
                "_format_version: \"3.0\"\nx: {}1{}\n",
                "{a: ".repeat(DEEP),
                "}".repeat(DEEP)
            ),
            Format::Yaml,
        ),
        (
            "yaml block sequences",
            format!("_format_version: \"3.0\"\nx:\n{}1\n", "- ".repeat(DEEP)),
            Format::Yaml,
        ),
        (
            "yaml block mappings",
            format!(
                "_format_version: \"3.0\"\n{}",
                (0..300)
                    .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                    .collect::<String>()
            ),
            Format::Yaml,
        ),
    ];
    for (what, text, format) in cases {
        let r = report(text.as_bytes(), format);
        let msg = assert_parse_error(&r, what);
        assert!(msg.contains("nesting deeper than"), "{what}: {msg}");
    }
}

/// Nesting below the limit is accepted the same way in both syntaxes.
#[test]
fn deep_but_allowed_nesting_is_accepted_by_both_syntaxes() {
    let mut claims = json!("leaf");
    for i in 0..110 {
        claims = json!({ format!("k{i}"): claims });
    }
    // A config field whose value Kong's published schema leaves open
    // (jwt-signer's `add_claims`), so the nesting itself is all that is judged.
    let doc = json!({"_format_version": "3.0", "plugins": [{"name": "jwt-signer", "config": {"add_claims": claims}}]});
    let j = report(&serde_json::to_vec(&doc).unwrap(), Format::Json);
    let y = report(
        serde_saphyr::to_string(&doc).unwrap().as_bytes(),
        Format::Yaml,
    );
    assert_eq!(j.state, State::Ok, "{:?}", j.errors);
    assert_eq!(j, y);
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// About 50 MB per syntax: big values, read from files like the CLI does.
#[test]
fn fifty_megabyte_members_validate() {
    let tmp = tempfile::tempdir().unwrap();
    let pad = "x".repeat(50_000);
    let n = 1_000;
    let mut json = String::from("{\"_format_version\":\"3.0\",\"services\":[");
    let mut yaml = String::from("_format_version: \"3.0\"\nservices:\n");
    for i in 0..n {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!(
            "{{\"name\":\"big-{i}\",\"host\":\"h.internal\",\"tags\":[\"{pad}\"]}}"
        ));
        yaml.push_str(&format!(
            "- name: yaml-{i}\n  host: h.internal\n  tags:\n  - {pad}\n"
        ));
    }
    json.push_str("]}");
    assert!(json.len() > 50_000_000 && yaml.len() > 50_000_000);
    let files = vec![
        write(tmp.path(), "big.json", &json),
        write(tmp.path(), "huge.yaml", &yaml),
    ];
    drop((json, yaml));
    let c = batch::composite(&files, Arc::new(Interner::new())).unwrap();
    let r = c.report();
    assert_eq!(r.state, State::Ok, "{:?}", r.errors);
    assert_eq!(r.members.iter().map(|m| m.entities).sum::<usize>(), 2 * n);
    assert!(c.assemble().len() > 100_000_000);
}

/// 40,000 services in YAML: more nodes than serde-saphyr's default budget,
/// which once rejected what the same config in JSON passed.
#[test]
fn many_entities_in_yaml_are_not_a_parse_error() {
    let n = 40_000;
    let mut yaml = String::from("_format_version: \"3.0\"\nservices:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "- name: s-{i}\n  host: h{i}.internal\n  port: 80\n"
        ));
    }
    let r = report(yaml.as_bytes(), Format::Yaml);
    assert_eq!(r.state, State::Ok, "{:?}", r.errors);
    assert_eq!(r.members[0].entities, n);
}

// ---------- a wrong type anywhere ----------

/// Values of the wrong JSON type for a field of type `ty`.
fn wrong_values(ty: Ty) -> Vec<Value> {
    match ty {
        Ty::Str => vec![json!(42), json!(true), json!(["a"]), json!({"a": 1})],
        Ty::Int => vec![json!("80"), json!(1.5), json!(false)],
        Ty::Num => vec![json!("1"), json!([1])],
        Ty::Bool => vec![json!("yes"), json!(0)],
        Ty::Obj => vec![json!([]), json!("x")],
        Ty::List => vec![json!("x"), json!({"a": 1})],
        Ty::StrList => vec![json!("x"), json!([1]), json!({"a": "b"})],
    }
}

/// Every entity of `doc`: (collection, path, pointer).
fn entities(doc: &Value) -> Vec<(Coll, String, String)> {
    fn walk(
        coll: Coll,
        items: &Value,
        path: &str,
        ptr: &str,
        out: &mut Vec<(Coll, String, String)>,
    ) {
        for (i, item) in items.as_array().into_iter().flatten().enumerate() {
            let (p, q) = (format!("{path}[{i}]"), format!("{ptr}/{i}"));
            for &(field, child) in coll.nested() {
                walk(
                    child,
                    &item[field],
                    &format!("{p}.{field}"),
                    &format!("{q}/{field}"),
                    out,
                );
            }
            out.push((coll, p, q));
        }
    }
    let mut out = Vec::new();
    for (k, v) in doc.as_object().unwrap() {
        if let Some(coll) = Coll::from_name(k).filter(|c| *c != Coll::PluginConfigs) {
            walk(coll, v, k, &format!("/{k}"), &mut out);
        }
    }
    out
}

fn rich_configs() -> Vec<Value> {
    let root = crate::common::fixtures().join("cases");
    [
        "conflict-duplicate-id-every-collection/blue.yaml",
        "assoc-every-row-inside-one-member-is-clean/blue.yaml",
    ]
    .iter()
    .map(|f| serde_saphyr::from_slice(&std::fs::read(root.join(f)).unwrap()).unwrap())
    .collect()
}

fn has_schema_error_at(r: &Report, path: &str) -> bool {
    r.errors
        .iter()
        .any(|e| e.kind == ErrorKind::SchemaError && e.path == path)
}

/// Each typed field of each collection, set to each wrong type, in JSON and
/// YAML: a `schema_error` at exactly that field's path. Ids: not a UUID.
#[test]
fn a_wrong_type_anywhere_is_a_schema_error_at_that_path() {
    let mut checked = 0;
    let mut colls = std::collections::BTreeSet::new();
    for base in rich_configs() {
        assert_eq!(
            report(&serde_json::to_vec(&base).unwrap(), Format::Json).state,
            State::Ok
        );
        for (coll, path, ptr) in entities(&base) {
            colls.insert(coll);
            let mut fields: Vec<(&str, Vec<Value>)> = coll
                .fields()
                .iter()
                .map(|&(f, ty)| (f, wrong_values(ty)))
                .collect();
            fields.push(("id", vec![json!("svc-1"), json!(7), json!({"id": "x"})]));
            for &(field, _) in coll.nested() {
                fields.push((field, vec![json!("x"), json!({"a": 1}), json!([1])]));
            }
            for (field, values) in fields {
                for (n, wrong) in values.into_iter().enumerate() {
                    let mut doc = base.clone();
                    doc.pointer_mut(&ptr).unwrap()[field] = wrong.clone();
                    // A list of non-mappings is reported per item.
                    let at = match (&wrong, coll.nested().iter().any(|(f, _)| *f == field)) {
                        (Value::Array(_), true) => format!("{path}.{field}[0]"),
                        _ => format!("{path}.{field}"),
                    };
                    let j = report(&serde_json::to_vec(&doc).unwrap(), Format::Json);
                    assert!(
                        has_schema_error_at(&j, &at),
                        "{at} = {wrong}: {:?}",
                        j.errors
                    );
                    // The same mutation in YAML gives the same report (once per field).
                    if n == 0 {
                        let y = report(
                            serde_saphyr::to_string(&doc).unwrap().as_bytes(),
                            Format::Yaml,
                        );
                        assert_eq!(j, y, "{at} = {wrong}");
                    }
                    checked += 1;
                }
            }
            // The entity itself replaced by a scalar.
            let mut doc = base.clone();
            *doc.pointer_mut(&ptr).unwrap() = json!(17);
            let r = report(&serde_json::to_vec(&doc).unwrap(), Format::Json);
            assert!(has_schema_error_at(&r, &path), "{path}: {:?}", r.errors);
        }
    }
    assert!(colls.len() >= 20, "{colls:?}");
    assert!(checked > 1_000, "{checked}");
}

/// Each required field of each collection, removed: a `schema_error` naming it.
#[test]
fn a_missing_required_field_anywhere_is_a_schema_error() {
    let mut checked = 0;
    for base in rich_configs() {
        for (coll, path, ptr) in entities(&base) {
            for req in coll.required() {
                let (remove, at): (Vec<&str>, String) = match req {
                    Req::One(f) => (vec![f], format!("{path}.{f}")),
                    Req::Any(fs) => (fs.to_vec(), path.clone()),
                };
                let mut doc = base.clone();
                let obj = doc.pointer_mut(&ptr).unwrap().as_object_mut().unwrap();
                if !remove.iter().any(|f| obj.contains_key(*f)) {
                    continue;
                }
                for f in &remove {
                    obj.remove(*f);
                }
                let r = report(&serde_json::to_vec(&doc).unwrap(), Format::Json);
                assert!(has_schema_error_at(&r, &at), "{at}: {:?}", r.errors);
                checked += 1;
            }
        }
    }
    assert!(checked >= 30, "{checked}");
}

// ---------- no input makes it panic ----------

fn valid_doc() -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/cases/assoc-every-row-inside-one-member-is-clean/blue.yaml");
    std::fs::read(root).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct("fixtures/proptest/robustness.proptest-regressions"))), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), yaml: bool) {
        let r = report(&bytes, if yaml { Format::Yaml } else { Format::Json });
        for e in &r.errors {
            prop_assert!(e.line.is_some() || !e.path.is_empty() || e.kind == ErrorKind::SchemaError);
        }
    }

    #[test]
    fn mangled_configs_never_panic(
        cut in 0usize..4_000,
        flips in proptest::collection::vec((0usize..4_000, any::<u8>()), 0..6),
        as_json: bool,
    ) {
        let mut bytes = valid_doc();
        if as_json {
            let v: Value = serde_saphyr::from_slice(&bytes).unwrap();
            bytes = serde_json::to_vec_pretty(&v).unwrap();
        }
        for (at, b) in flips {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        bytes.truncate(cut.max(1).min(bytes.len()));
        let r = report(&bytes, if as_json { Format::Json } else { Format::Yaml });
        // A parse error always has a position.
        for e in r.errors.iter().filter(|e| e.kind == ErrorKind::ParseError) {
            prop_assert!(e.line.is_some() && e.column.is_some(), "{:?}", e);
        }
    }
}

/// "Billion laughs": aliases that expand exponentially, or repeat a big anchor,
/// are refused quickly with a position instead of exhausting memory.
#[test]
fn yaml_alias_bombs_are_refused() {
    let mut lol = String::from(
        "_format_version: \"3.0\"\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        lol.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let big = format!(
        "_format_version: \"3.0\"\nx: &x \"{}\"\ny: [{}]\n",
        "x".repeat(1_000_000),
        vec!["*x"; 200].join(",")
    );
    for (what, text) in [("exponential", lol), ("repeated big anchor", big)] {
        let r = report(text.as_bytes(), Format::Yaml);
        let msg = assert_parse_error(&r, what);
        assert!(msg.contains("aliases"), "{what}: {msg}");
    }
}
