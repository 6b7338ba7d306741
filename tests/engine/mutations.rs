//! Mutation tests of the plugin rules in the data (issue 29, item 7).
//!
//! Every rule of `plugin_schemas.json` and `plugin_schemas_enterprise.json`
//! (a field's type, `required`, `one_of`, `between`, `gt`, `len_min`,
//! `len_max`, `match`, `match_none`, `is_regex`, format, a record's unknown
//! fields, map keys, entity checks, custom checks and validators) is listed
//! by walking the data. For each, one change to a config is made (drop a
//! required field, a wrong type, out of range, a bad format, …) and the check
//! must refuse it with that rule's words at that rule's path: a problem the
//! config did not have before the change. A rule with no case fails the test.
//!
//! The configs changed are the plugin configs of the real files
//! (`../shared/fixtures/real`, read at test time) and of the project's own
//! cases (`fixtures/cases`) wherever a plugin appears there, and otherwise a
//! config built from the plugin's description (its required fields).
//! `real_files_*` below also changes the real files as wholes: an entity
//! field rule of `rules::FIELD_RULES` per collection (refused with the
//! rule's own words at every place the collection has there), a dangling
//! reference and a duplicate, each built as a member and refused with its
//! path. `entity_rules` lists every foreign key and uniqueness rule of
//! Kong's entity schemas, top level and nested: each document where the
//! rule holds is clean, and its change is refused with the rule's finding,
//! path and words.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rgmerge::config::kong::rules::{self, FIELD_RULES};
use rgmerge::config::kong::schemas::{
    self, CustomCheck, EntityCheck, Field, PluginSchema, Problem, Ty,
};
use rgmerge::config::{Format, KongTarget};
use rgmerge::intern::Interner;
use rgmerge::member::{Member, MemberInfo};
use serde_json::{Map, Value, json};

/// One step of a path below `config`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Key(String),
    /// The first element of an array.
    Elem,
    /// A value of a map, under the key `mk`.
    MapVal,
}

fn show(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Elem => s.push_str("[0]"),
            Step::MapVal => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str("mk");
            }
        }
    }
    s
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Unknown,
    Required,
    Type,
    OneOf,
    Between,
    Gt,
    LenMin,
    LenMax,
    Match,
    MatchNone(usize),
    IsRegex,
    Format,
    KeyLen,
    KeyFormat,
    KeyMatchNone(usize),
    Entity(usize),
    Custom(usize),
    Validator(String),
}

/// A rule of the data: where it is, what it is.
#[derive(Clone, Debug)]
struct Rule {
    plugin: &'static str,
    /// The field (or, for record rules, the record) it is on.
    path: Vec<Step>,
    kind: Kind,
    field: &'static Field,
    /// Which edition sees the field (`only`).
    oss: bool,
}

impl Rule {
    fn id(&self) -> String {
        format!("{} {} {:?}", self.plugin, show(&self.path), self.kind)
    }
}

fn shared() -> &'static BTreeMap<String, Field> {
    &schemas::file().expect("data parses").shared
}

fn resolve(f: &'static Field) -> &'static Field {
    match &f.reference {
        Some(r) => shared().get(r).expect("known $ref"),
        None => f,
    }
}

/// The root of a plugin's config as a record field (with the config's own
/// entity checks), built once per plugin.
fn root(schema: &'static PluginSchema) -> &'static Field {
    use std::sync::{Mutex, OnceLock};
    static ROOTS: OnceLock<Mutex<BTreeMap<usize, &'static Field>>> = OnceLock::new();
    let key = schema as *const PluginSchema as usize;
    let mut roots = ROOTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    roots.entry(key).or_insert_with(|| {
        let mut root = Field {
            ty: Ty::Record,
            fields: Some(schema.config.clone()),
            entity_checks: schema.entity_checks.clone(),
            ..Field::default()
        };
        // The fields later versions add to a hand-read plugin (taken on an
        // Enterprise target) are rules of the data too: put them in place.
        let name = schemas::file()
            .and_then(|f| f.plugins.iter().find(|(_, s)| std::ptr::eq(*s, schema)))
            .map(|(n, _)| n.as_str());
        let later = schemas::enterprise_file().map_or(&[][..], |f| f.later_fields.as_slice());
        for l in later.iter().filter(|l| Some(l.plugin.as_str()) == name) {
            let mut f = &mut root;
            for step in &l.path {
                f = inline(match step.as_str() {
                    "[]" => f.elements.as_deref_mut().expect("a list"),
                    k => f
                        .fields
                        .as_mut()
                        .and_then(|fs| fs.get_mut(k))
                        .expect("a field"),
                });
            }
            f.fields
                .get_or_insert_with(BTreeMap::new)
                .insert(l.name.clone(), l.field.clone());
        }
        Box::leak(Box::new(root))
    })
}

/// A field with its `$ref` replaced by the typedef itself (so that it can
/// be extended without extending the typedef).
fn inline(f: &mut Field) -> &mut Field {
    if let Some(r) = f.reference.take() {
        *f = shared().get(&r).expect("known $ref").clone();
    }
    f
}

fn resolve_box(f: &Field) -> &Field {
    match &f.reference {
        Some(r) => shared().get(r).expect("known $ref"),
        None => f,
    }
}

fn visible(f: &Field, oss: bool) -> bool {
    match f.only.as_deref() {
        Some("oss") => oss,
        Some("enterprise") => !oss,
        _ => true,
    }
}

/// Every rule of one plugin.
fn rules_of(plugin: &'static str, schema: &'static PluginSchema) -> Vec<Rule> {
    let mut out = Vec::new();
    let top = root(schema);
    out.push(Rule {
        plugin,
        path: vec![],
        kind: Kind::Unknown,
        field: top,
        oss: false,
    });
    for (i, _) in schema.entity_checks.iter().enumerate() {
        out.push(Rule {
            plugin,
            path: vec![],
            kind: Kind::Entity(i),
            field: top,
            oss: false,
        });
    }
    for (i, _) in schema.custom_checks.iter().enumerate() {
        out.push(Rule {
            plugin,
            path: vec![],
            kind: Kind::Custom(i),
            field: top,
            oss: false,
        });
    }
    for v in &schema.validators {
        out.push(Rule {
            plugin,
            path: vec![],
            kind: Kind::Validator(v.clone()),
            field: top,
            oss: false,
        });
    }
    for (k, f) in top.fields.iter().flatten() {
        walk(
            plugin,
            resolve(f),
            vec![Step::Key(k.clone())],
            f.only.as_deref() == Some("oss"),
            &mut out,
        );
    }
    out
}

fn walk(plugin: &'static str, f: &'static Field, path: Vec<Step>, oss: bool, out: &mut Vec<Rule>) {
    let oss = oss || f.only.as_deref() == Some("oss");
    let mut add = |kind| {
        out.push(Rule {
            plugin,
            path: path.clone(),
            kind,
            field: f,
            oss,
        })
    };
    if f.ty != Ty::Any {
        add(Kind::Type);
    }
    if f.required && f.default.is_none() && !f.auto {
        add(Kind::Required);
    }
    if f.one_of.is_some() {
        add(Kind::OneOf);
    }
    if f.between.is_some() {
        add(Kind::Between);
    }
    if f.gt.is_some() {
        add(Kind::Gt);
    }
    let min = match f.ty {
        Ty::String => f.len_min.unwrap_or(1),
        _ => f.len_min.unwrap_or(0),
    };
    if min > 0 && f.one_of.is_none() && matches!(f.ty, Ty::String | Ty::Array | Ty::Set) {
        add(Kind::LenMin);
    }
    if f.len_max.is_some() {
        add(Kind::LenMax);
    }
    if f.pattern.is_some() {
        add(Kind::Match);
    }
    for i in 0..f.match_none.len() {
        add(Kind::MatchNone(i));
    }
    if f.is_regex {
        add(Kind::IsRegex);
    }
    if f.format.is_some() {
        add(Kind::Format);
    }
    match f.ty {
        Ty::Record => {
            add(Kind::Unknown);
            for i in 0..f.entity_checks.len() {
                add(Kind::Entity(i));
            }
            for v in &f.validators {
                add(Kind::Validator(v.clone()));
            }
            for fs in [&f.fields, &f.shorthand_fields].into_iter().flatten() {
                for (k, sub) in fs {
                    let mut p = path.clone();
                    p.push(Step::Key(k.clone()));
                    walk(plugin, resolve(sub), p, oss, out);
                }
            }
        }
        Ty::Array | Ty::Set => {
            if let Some(el) = &f.elements {
                let mut p = path.clone();
                p.push(Step::Elem);
                walk(plugin, resolve(el), p, oss, out);
            }
        }
        Ty::Map => {
            if let Some(k) = &f.keys {
                let k = resolve(k);
                if k.len_min.unwrap_or(1) > 0 {
                    add(Kind::KeyLen);
                }
                if k.format.is_some() {
                    add(Kind::KeyFormat);
                }
                for i in 0..k.match_none.len() {
                    add(Kind::KeyMatchNone(i));
                }
            }
            if let Some(v) = &f.values {
                let mut p = path.clone();
                p.push(Step::MapVal);
                walk(plugin, resolve(v), p, oss, out);
            }
        }
        _ => {}
    }
}

/// Every rule of every described plugin.
fn all_rules() -> Vec<Rule> {
    let mut out = Vec::new();
    for file in [schemas::file(), schemas::enterprise_file()] {
        let file = file.expect("data parses");
        for (name, schema) in &file.plugins {
            let name: &'static str = name.as_str();
            if schemas::plugin(name).is_some_and(|s| std::ptr::eq(s, schema)) {
                out.extend(rules_of(name, schema));
            }
        }
    }
    out
}

// ---- values -------------------------------------------------------------

fn format_sample(name: &str) -> &'static str {
    match name {
        "host" | "route_host" => "example.com",
        "url" => "http://example.com/x",
        "header_name" => "X-Test",
        "ip_or_cidr" => "10.0.0.1",
        "path" => "/x",
        "asterisk_or_regex" => "*",
        "header_pair" => "X-Test:v",
        "header_rename" => "X-A:X-B",
        _ => "x",
    }
}

fn format_bad(name: &str) -> &'static str {
    match name {
        "host" | "route_host" => "bad host!",
        "url" => "not a url",
        "header_name" | "header_pair" => "bad header:v",
        "header_rename" => "X-A:bad header",
        "ip_or_cidr" => "300.1.1.1",
        "path" => "no-slash",
        "asterisk_or_regex" => "(unclosed",
        _ => "x",
    }
}

const STRINGS: &[&str] = &[
    "x",
    "x:y",
    "a@b.example",
    "1-2",
    "ABC",
    "/tmp/x.log",
    "X-Test",
    "abc123",
];

fn matches(pattern: &str, s: &str) -> bool {
    rgmerge::config::kong::pcre::data(pattern)
        .is_ok_and(|r| r.is_match(s.as_bytes()).unwrap_or(false))
}

/// A value the field takes (its default first).
fn sample(f: &Field, oss: bool) -> Value {
    let f = resolve_box(f);
    if let Some(d) = &f.default
        && !d.is_null()
    {
        return d.clone();
    }
    match f.ty {
        Ty::String => {
            if let Some(v) = f.one_of.as_ref().and_then(|a| a.first()) {
                return v.clone();
            }
            if let Some(n) = &f.format {
                return json!(format_sample(n));
            }
            let s = match &f.pattern {
                Some(p) => STRINGS
                    .iter()
                    .find(|s| matches(p, s))
                    .copied()
                    .unwrap_or("x"),
                None => "x",
            };
            let min = f.len_min.unwrap_or(1).max(s.len());
            json!(format!("{s}{}", "x".repeat(min - s.len())))
        }
        Ty::Integer | Ty::Number => {
            if let Some(v) = f.one_of.as_ref().and_then(|a| a.first()) {
                return v.clone();
            }
            if let Some([lo, hi]) = f.between {
                return json!(lo.or(hi).unwrap_or(1.0) as i64);
            }
            if let Some(gt) = f.gt {
                return json!(gt as i64 + 1);
            }
            json!(1)
        }
        Ty::Boolean => json!(false),
        Ty::Array | Ty::Set => {
            let n = f.len_min.unwrap_or(0);
            match &f.elements {
                Some(el) => Value::Array((0..n).map(|_| sample(el, oss)).collect()),
                None => json!([]),
            }
        }
        Ty::Map => json!({}),
        Ty::Record => {
            let mut o = Map::new();
            for (k, sub) in f.fields.iter().flatten() {
                let s = resolve_box(sub);
                if visible(sub, oss) && s.required && s.default.is_none() && !s.auto {
                    o.insert(k.clone(), sample(s, oss));
                }
            }
            let mut v = Value::Object(o);
            repair(f, &mut v, oss);
            v
        }
        Ty::Any => json!("x"),
    }
}

/// A value that Kong's entity checks count as set (not empty).
fn nonempty(f: &Field, oss: bool) -> Value {
    let f = resolve_box(f);
    match (f.ty, sample(f, oss)) {
        (Ty::Array | Ty::Set, Value::Array(a)) if a.is_empty() => match &f.elements {
            Some(el) => json!([sample(el, oss)]),
            None => json!(["x"]),
        },
        (Ty::Map, _) => {
            let v = f.values.as_ref().map_or(json!("x"), |v| sample(v, oss));
            json!({ "mk": v })
        }
        (Ty::Record, Value::Object(o)) if o.is_empty() => {
            let mut o = Map::new();
            if let Some((k, sub)) = f.fields.iter().flatten().find(|(_, s)| visible(s, oss)) {
                o.insert(k.clone(), nonempty(sub, oss));
            }
            Value::Object(o)
        }
        (_, v) => v,
    }
}

/// The field at a dotted path below a record field.
fn dotted<'a>(rec: &'a Field, path: &str) -> Option<&'a Field> {
    let mut f = rec;
    for p in path.split('.') {
        f = resolve_box(f.fields.as_ref()?.get(p)?);
    }
    Some(f)
}

fn set_dotted(v: &mut Value, path: &str, to: Value) {
    let parts: Vec<&str> = path.split('.').collect();
    let mut cur = v;
    for p in &parts[..parts.len() - 1] {
        let Some(o) = cur.as_object_mut() else { return };
        cur = o.entry(p.to_string()).or_insert_with(|| json!({}));
    }
    if let Some(o) = cur.as_object_mut() {
        o.insert(parts[parts.len() - 1].to_string(), to);
    }
}

fn remove_dotted(v: &mut Value, path: &str) {
    let parts: Vec<&str> = path.split('.').collect();
    let mut cur = v;
    for p in &parts[..parts.len() - 1] {
        match cur.as_object_mut().and_then(|o| o.get_mut(*p)) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(o) = cur.as_object_mut() {
        o.remove(parts[parts.len() - 1]);
    }
}

fn get_dotted<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(v, |cur, p| cur.as_object()?.get(p))
}

fn is_set(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// Makes a record satisfy its own entity checks (so that a change later
/// breaks only the rule it is for).
fn repair(rec: &Field, v: &mut Value, oss: bool) {
    for check in &rec.entity_checks {
        repair_check(rec, check, v, oss);
    }
}

fn repair_check(rec: &Field, check: &EntityCheck, v: &mut Value, oss: bool) {
    match check {
        EntityCheck::AtLeastOneOf(fs) | EntityCheck::OnlyOneOf(fs)
            if !fs.iter().any(|f| is_set(get_dotted(v, f))) =>
        {
            if let Some(f) = dotted(rec, &fs[0]) {
                set_dotted(v, &fs[0], nonempty(f, oss));
            }
        }
        EntityCheck::Conditional(c) => {
            let current = get_dotted(v, &c.if_field)
                .filter(|x| !x.is_null())
                .cloned()
                .or_else(|| dotted(rec, &c.if_field).and_then(|f| f.default.clone()));
            let Some(x) = current else { return };
            let on = c.if_one_of.contains(&x)
                || c.if_gt.is_some_and(|gt| x.as_f64().is_some_and(|n| n > gt));
            if !on {
                return;
            }
            if let Some(want) = &c.then_eq {
                set_dotted(v, &c.then_field, want.clone());
            } else if let Some(want) = &c.then_contains {
                set_dotted(v, &c.then_field, json!([want]));
            } else if c.then_required
                && let Some(f) = dotted(rec, &c.then_field)
            {
                set_dotted(v, &c.then_field, nonempty(f, oss));
            }
        }
        _ => {}
    }
}

fn repair_custom(rec: &Field, checks: &[CustomCheck], v: &mut Value, oss: bool) {
    for c in checks {
        if !c.any_set.is_empty()
            && !c.any_set.iter().any(|f| is_set(get_dotted(v, f)))
            && let Some(f) = dotted(rec, &c.any_set[0])
        {
            set_dotted(v, &c.any_set[0], nonempty(f, oss));
        }
        if !c.any_true.is_empty()
            && !c
                .any_true
                .iter()
                .any(|f| get_dotted(v, f) == Some(&json!(true)))
        {
            set_dotted(v, &c.any_true[0], json!(true));
        }
    }
}

/// The config a plugin's rules are tried on when no real one has the field.
fn base_config(schema: &'static PluginSchema, oss: bool) -> Value {
    let rec = root(schema);
    let mut v = sample(rec, oss);
    repair_custom(rec, &schema.custom_checks, &mut v, oss);
    repair(rec, &mut v, oss);
    v
}

/// Makes the path exist in `v` (each record on it with its required
/// fields), and returns the value there.
fn ensure<'a>(rec: &Field, v: &'a mut Value, path: &[Step], oss: bool) -> Option<&'a mut Value> {
    let mut f = resolve_box(rec);
    let mut cur = v;
    for step in path {
        match step {
            Step::Key(k) => {
                let sub = f
                    .fields
                    .as_ref()
                    .and_then(|fs| fs.get(k))
                    .or_else(|| f.shorthand_fields.as_ref().and_then(|fs| fs.get(k)))?;
                let sub = resolve_box(sub);
                let o = cur.as_object_mut()?;
                let slot = o.entry(k.clone()).or_insert_with(|| sample(sub, oss));
                if slot.is_null() || (sub.ty == Ty::Record && !slot.is_object()) {
                    *slot = sample(sub, oss);
                }
                cur = slot;
                f = sub;
            }
            Step::Elem => {
                let el = resolve_box(f.elements.as_ref()?);
                let a = cur.as_array_mut()?;
                if a.is_empty() {
                    a.push(sample(el, oss));
                }
                cur = &mut a[0];
                f = el;
            }
            Step::MapVal => {
                let val = resolve_box(f.values.as_ref()?);
                if cur.as_array().is_some_and(Vec::is_empty) {
                    *cur = json!({});
                }
                let o = cur.as_object_mut()?;
                cur = o.entry("mk").or_insert_with(|| sample(val, oss));
                f = val;
            }
        }
    }
    Some(cur)
}

/// A value of another JSON type than the field's.
fn wrong_type(f: &Field) -> Value {
    match f.ty {
        Ty::String => json!(42),
        Ty::Integer => json!(1.5),
        Ty::Number | Ty::Boolean | Ty::Array | Ty::Set | Ty::Map | Ty::Record => {
            json!("wrong-type")
        }
        Ty::Any => json!(null),
    }
}

/// The change for a rule, applied to `cfg`, and what the check must then
/// say: (path, a test on the message). `None` when the rule has no
/// generated case here.
type Expect = (String, Words);

/// A test on a problem's message.
type Words = Box<dyn Fn(&str) -> bool>;

fn mutate(rule: &Rule, schema: &'static PluginSchema, cfg: &mut Value) -> Option<Expect> {
    let rec = root(schema);
    let oss = rule.oss;
    let f = rule.field;
    let at = show(&rule.path);
    let starts =
        |p: &'static str| -> Box<dyn Fn(&str) -> bool> { Box::new(move |m| m.starts_with(p)) };
    let set = |cfg: &mut Value, v: Value| -> Option<()> {
        *ensure(rec, cfg, &rule.path, oss)? = v;
        Some(())
    };
    match &rule.kind {
        Kind::Unknown => {
            let r = ensure(rec, cfg, &rule.path, oss)?;
            if r.as_array().is_some_and(Vec::is_empty) {
                *r = json!({});
            }
            r.as_object_mut()?.insert("zz_mutant".into(), json!(1));
            let p = if at.is_empty() {
                "zz_mutant".to_string()
            } else {
                format!("{at}.zz_mutant")
            };
            Some((p, Box::new(|m| m == "unknown field")))
        }
        Kind::Required => {
            let (last, parent) = rule.path.split_last()?;
            let Step::Key(k) = last else { return None };
            ensure(rec, cfg, parent, oss)?.as_object_mut()?.remove(k);
            Some((at, Box::new(|m| m == "required field missing")))
        }
        Kind::Type => {
            set(cfg, wrong_type(f))?;
            Some((at, starts("expected a")))
        }
        Kind::OneOf => {
            let bad = if f.ty == Ty::String {
                json!("zz-not-one-of")
            } else {
                json!(987_654_321)
            };
            set(cfg, bad)?;
            Some((at, starts("expected one of: ")))
        }
        Kind::Between => {
            let [lo, hi] = f.between?;
            let bad = match (lo, hi) {
                (Some(lo), _) => lo - 1.0,
                (None, Some(hi)) => hi + 1.0,
                _ => return None,
            };
            let bad = if f.ty == Ty::Integer {
                json!(bad as i64)
            } else {
                json!(bad)
            };
            set(cfg, bad)?;
            Some((at, starts("value should be between ")))
        }
        Kind::Gt => {
            let gt = f.gt?;
            set(
                cfg,
                if f.ty == Ty::Integer {
                    json!(gt as i64)
                } else {
                    json!(gt)
                },
            )?;
            Some((at, starts("value must be greater than ")))
        }
        Kind::LenMin => {
            let bad = match f.ty {
                Ty::String => json!("x".repeat(f.len_min.unwrap_or(1) - 1)),
                _ => {
                    let el = f.elements.as_ref().map_or(json!("x"), |e| sample(e, oss));
                    Value::Array(vec![el; f.len_min? - 1])
                }
            };
            set(cfg, bad)?;
            Some((at, starts("length must be at least ")))
        }
        Kind::LenMax => {
            let n = f.len_max? + 1;
            let bad = match f.ty {
                Ty::String => {
                    let s = sample(f, oss);
                    let s = s.as_str().unwrap_or("x");
                    json!(format!(
                        "{s}{}",
                        "x".repeat(n.saturating_sub(s.chars().count()))
                    ))
                }
                _ => {
                    let el = f.elements.as_ref().map_or(json!("x"), |e| sample(e, oss));
                    Value::Array(vec![el; n])
                }
            };
            set(cfg, bad)?;
            Some((at, starts("length must be at most ")))
        }
        Kind::Match => {
            let p = f.pattern.as_deref()?;
            let bad = ["x x", "!", "zz", "x:", ":x", "@@", "a&b", " x"]
                .into_iter()
                .find(|s| !matches(p, s))?;
            set(cfg, json!(bad))?;
            let err = f.err.clone();
            Some((
                at,
                Box::new(move |m| {
                    err.as_deref()
                        .map_or(m.starts_with("invalid value: "), |e| m == e)
                }),
            ))
        }
        Kind::MatchNone(i) => {
            let m = &f.match_none[*i];
            let bad = MATCH_NONE_SAMPLES.iter().find(|s| matches(&m.pattern, s))?;
            set(cfg, json!(bad))?;
            let err = m.err.clone();
            Some((at, Box::new(move |msg| msg == err)))
        }
        Kind::IsRegex => {
            set(cfg, json!("(unclosed"))?;
            Some((at, starts("not a valid regex")))
        }
        Kind::Format => {
            let name = f.format.as_deref()?;
            let bad = format_bad(name);
            schemas::format(name, bad).err()?;
            set(cfg, json!(bad))?;
            Some((at, Box::new(|_| true)))
        }
        Kind::KeyLen | Kind::KeyFormat | Kind::KeyMatchNone(_) => {
            let keys = resolve_box(f.keys.as_ref()?);
            let (key, ok): (&str, Words) = match &rule.kind {
                Kind::KeyLen => ("", starts("length must be at least ")),
                Kind::KeyFormat => {
                    let name = keys.format.as_deref()?;
                    (format_bad(name), Box::new(|_| true))
                }
                Kind::KeyMatchNone(i) => {
                    let m = &keys.match_none[*i];
                    let key = MATCH_NONE_SAMPLES.iter().find(|s| matches(&m.pattern, s))?;
                    let err = m.err.clone();
                    (key, Box::new(move |msg| msg == err))
                }
                _ => return None,
            };
            let val = f.values.as_ref().map_or(json!("x"), |v| sample(v, oss));
            set(cfg, json!({ key: val }))?;
            let p = if at.is_empty() {
                key.to_string()
            } else {
                format!("{at}.{key}")
            };
            Some((p, ok))
        }
        Kind::Entity(i) => {
            let (checks, fields_at) = (&f.entity_checks, f);
            let r = ensure(rec, cfg, &rule.path, oss)?;
            let prefix = if at.is_empty() { "config." } else { "" };
            match &checks[*i] {
                EntityCheck::AtLeastOneOf(fs) => {
                    fs.iter().for_each(|x| remove_dotted(r, x));
                    Some((at, starts("at least one of these fields must be non-empty")))
                }
                EntityCheck::OnlyOneOf(fs) | EntityCheck::MutuallyExclusive(fs) => {
                    for x in fs {
                        set_dotted(r, x, nonempty(dotted(fields_at, x)?, oss));
                    }
                    Some((
                        at,
                        Box::new(|m| {
                            m.starts_with("exactly one of") || m.starts_with("only one or none")
                        }),
                    ))
                }
                EntityCheck::MutuallyRequired(fs) => {
                    set_dotted(r, &fs[0], nonempty(dotted(fields_at, &fs[0])?, oss));
                    fs[1..].iter().for_each(|x| remove_dotted(r, x));
                    Some((at, starts("all or none of these fields must be set")))
                }
                EntityCheck::Conditional(c) => {
                    let trigger = match (c.if_one_of.first(), c.if_gt) {
                        (Some(v), _) => v.clone(),
                        (None, Some(gt)) => json!(gt + 1.0),
                        _ => return None,
                    };
                    set_dotted(r, &c.if_field, trigger);
                    if let Some(want) = &c.then_eq {
                        let other = match want {
                            Value::Bool(b) => json!(!b),
                            _ => json!("zz-other"),
                        };
                        set_dotted(r, &c.then_field, other);
                    } else if c.then_contains.is_some() {
                        let el = dotted(fields_at, &c.then_field)
                            .and_then(|f| f.elements.as_deref())
                            .map_or(json!("x"), |e| sample(e, oss));
                        let el = if Some(&el) == c.then_contains.as_ref() {
                            json!("zz-other")
                        } else {
                            el
                        };
                        set_dotted(r, &c.then_field, json!([el]));
                    } else {
                        remove_dotted(r, &c.then_field);
                        if let Some(s) = &c.then_shorthand {
                            remove_dotted(r, s);
                        }
                    }
                    let want = format!(
                        "failed conditional validation given value of field '{prefix}{}'",
                        c.if_field
                    );
                    Some((at, Box::new(move |m| m == want)))
                }
            }
        }
        Kind::Custom(i) => {
            let c = &schema.custom_checks[*i];
            let r = ensure(rec, cfg, &rule.path, oss)?;
            if !c.any_set.is_empty() {
                c.any_set.iter().for_each(|x| remove_dotted(r, x));
            } else if !c.any_true.is_empty() {
                c.any_true
                    .iter()
                    .for_each(|x| set_dotted(r, x, json!(false)));
            } else {
                match (&c.if_set, &c.if_true) {
                    (Some(x), _) => set_dotted(r, x, nonempty(dotted(rec, x)?, oss)),
                    (_, Some(x)) => set_dotted(r, x, json!(true)),
                    _ => return None,
                }
                if let Some(x) = c.then_unset.first() {
                    set_dotted(r, x, nonempty(dotted(rec, x)?, oss));
                } else {
                    c.then_set.iter().for_each(|x| remove_dotted(r, x));
                }
            }
            let err = c.err.clone();
            Some((at, Box::new(move |m| m == err)))
        }
        Kind::Validator(_) => {
            // Both named validators hold the periods in order.
            let r = ensure(rec, cfg, &rule.path, oss)?.as_object_mut()?;
            r.insert("second".into(), json!(10));
            r.insert("minute".into(), json!(5));
            Some((
                at,
                Box::new(|m| m.contains("cannot be lower than the limit for second")),
            ))
        }
    }
}

/// Strings a `match_none` pattern of the data matches (a regex is not
/// inverted here: each pattern needs one of these).
const MATCH_NONE_SAMPLES: &[&str] = &[
    "https://proxy.example",
    "Host",
    "Content-Length",
    "Content-Type",
];

fn problems(schema: &'static PluginSchema, cfg: &Value, oss: bool) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(o) = cfg.as_object() {
        schemas::check_config(schema, o, false, oss, &mut out);
    }
    out
}

/// Tries a rule's case on a config: `Err` says why it was not refused.
fn try_rule(
    rule: &Rule,
    schema: &'static PluginSchema,
    base: &Value,
) -> Option<Result<(), String>> {
    let mut cfg = base.clone();
    // Put the path in place first, so the base has what the change keeps.
    if !rule.path.is_empty() {
        ensure(
            root(schema),
            &mut cfg,
            &rule.path[..rule.path.len() - 1],
            rule.oss,
        )?;
        if rule.kind != Kind::Required {
            ensure(root(schema), &mut cfg, &rule.path, rule.oss)?;
        }
    }
    let before: BTreeSet<Problem> = problems(schema, &cfg, rule.oss).into_iter().collect();
    let mut changed = cfg.clone();
    let (path, ok) = mutate(rule, schema, &mut changed)?;
    let after = problems(schema, &changed, rule.oss);
    if after
        .iter()
        .any(|(p, m)| *p == path && ok(m) && !before.contains(&(p.clone(), m.clone())))
    {
        Some(Ok(()))
    } else {
        Some(Err(format!(
            "{}: not refused at `{path}`\n  config {changed}\n  problems {after:?}\n  before {before:?}",
            rule.id()
        )))
    }
}

// ---- the configs of real files and cases ---------------------------------

fn real_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/real")
}

fn read_doc(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).ok()
    } else {
        serde_saphyr::from_str(&text).ok()
    }
}

fn plugins_in(v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(o) => {
            if let (Some(Value::String(name)), Some(cfg @ Value::Object(_))) =
                (o.get("name"), o.get("config"))
            {
                out.push((name.clone(), cfg.clone()));
            }
            o.values().for_each(|x| plugins_in(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| plugins_in(x, out)),
        _ => {}
    }
}

/// The config files the tests change: every real file (when present) and
/// every member of the project's cases.
fn config_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cases");
    for root in [real_root(), cases] {
        let Ok(dirs) = std::fs::read_dir(&root) else {
            continue;
        };
        for d in dirs.flatten() {
            let Ok(files) = std::fs::read_dir(d.path()) else {
                continue;
            };
            for f in files.flatten() {
                let p = f.path();
                let name = p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string();
                let data = p
                    .extension()
                    .is_some_and(|e| e == "yaml" || e == "yml" || e == "json");
                if data && !name.starts_with("expected") {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

/// The plugin configs of the real files and cases that the check finds
/// clean, by plugin name.
fn clean_real_configs() -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in config_files() {
        let Some(doc) = read_doc(&p) else { continue };
        let mut found = Vec::new();
        plugins_in(&doc, &mut found);
        for (name, cfg) in found {
            if let Some(schema) = schemas::plugin(&name)
                && problems(schema, &cfg, false).is_empty()
                && !out.get(&name).is_some_and(|v| v.contains(&cfg))
            {
                out.entry(name).or_default().push(cfg);
            }
        }
    }
    out
}

#[test]
fn every_rule_in_the_data_refuses_its_change() {
    let rules = all_rules();
    let real = clean_real_configs();
    let mut failures = Vec::new();
    let mut no_case = Vec::new();
    let (mut on_real, mut on_built) = (0, 0);
    for rule in &rules {
        let schema = schemas::plugin(rule.plugin).expect("described");
        let mut done = false;
        // The real and case configs of this plugin first.
        for cfg in real.get(rule.plugin).into_iter().flatten() {
            match try_rule(rule, schema, cfg) {
                Some(Ok(())) => {
                    on_real += 1;
                    done = true;
                    break;
                }
                Some(Err(e)) => failures.push(format!("(real config) {e}")),
                None => {}
            }
        }
        if !done {
            match try_rule(rule, schema, &base_config(schema, rule.oss)) {
                Some(Ok(())) => {
                    on_built += 1;
                    done = true;
                }
                Some(Err(e)) => failures.push(e),
                None => {}
            }
        }
        if !done && !failures.iter().any(|f| f.contains(&rule.id())) {
            no_case.push(rule.id());
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} changes were not refused:\n{}",
        failures.len(),
        rules.len(),
        failures.join("\n")
    );
    assert!(
        no_case.is_empty(),
        "rules with no case:\n{}",
        no_case.join("\n")
    );
    assert!(rules.len() > 3000, "{} rules", rules.len());
    // Later versions' fields of hand-read plugins are among them.
    assert!(rules.iter().any(|r| r.plugin == "acme"
        && show(&r.path) == "storage_config.redis.cloud_authentication.auth_provider"
        && r.kind == Kind::OneOf));
    // The real files and cases give configs to change when they are here.
    if real_root().is_dir() {
        assert!(on_real > 300, "{on_real} changes of real configs");
    }
    eprintln!(
        "{} rules: {on_real} refused on real or case configs, {on_built} on built ones",
        rules.len()
    );
}

// ---- whole real files, changed and built as members ----------------------

/// A place in a document: the walker's path (`services[0].plugins[1]`) and
/// the JSON pointer to it.
#[derive(Clone, Debug)]
struct At {
    path: String,
    ptr: String,
}

impl At {
    fn key(&self, k: &str) -> At {
        At {
            path: if self.path.is_empty() {
                k.to_string()
            } else {
                format!("{}.{k}", self.path)
            },
            ptr: format!("{}/{}", self.ptr, k.replace('~', "~0").replace('/', "~1")),
        }
    }
    fn index(&self, i: usize) -> At {
        At {
            path: format!("{}[{i}]", self.path),
            ptr: format!("{}/{i}", self.ptr),
        }
    }
}

/// Every entity of a collection `coll` (a list under that key, at any
/// depth; a consumer group's `consumers` and a plugin's `partials` are
/// references, not entities, and nothing in a plugin's or vault's `config`
/// is an entity).
fn entities(v: &Value, at: &At, coll: &str, out: &mut Vec<At>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if k == "config" {
                    continue;
                }
                let here = at.key(k);
                let shape = shape_of(&at.path);
                let refs = (k == "consumers" && shape.ends_with("consumer_groups[]"))
                    || (k == "partials" && shape.ends_with("plugins[]"));
                if k == coll
                    && !refs
                    && let Value::Array(items) = x
                {
                    for (i, item) in items.iter().enumerate() {
                        if item.is_object() {
                            out.push(here.index(i));
                        }
                    }
                }
                entities(x, &here, coll, out);
            }
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| entities(x, &at.index(i), coll, out)),
        _ => {}
    }
}

/// A path with its indices left out (`services[].routes[]`).
fn shape_of(path: &str) -> String {
    let mut out = String::new();
    let mut skip = false;
    for c in path.chars() {
        match c {
            '[' => {
                skip = true;
                out.push('[');
            }
            ']' => {
                skip = false;
                out.push(']');
            }
            _ if skip => {}
            c => out.push(c),
        }
    }
    out
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string()
}

/// The member errors of a document: (kind code, path, message).
fn member_errors(name: &str, doc: &Value) -> BTreeSet<(String, String, String)> {
    let interner = Interner::new();
    let bytes = serde_json::to_vec(doc).unwrap_or_default();
    let m = Member::build_for(
        MemberInfo::unnamed(name),
        &bytes,
        Format::Json,
        &interner,
        &KongTarget::default(),
    );
    m.errors
        .iter()
        .inspect(|e| assert_eq!(e.member, name, "the error names its member"))
        .map(|e| (e.kind.code().to_string(), e.path.clone(), e.message.clone()))
        .collect()
}

/// The real files, as documents; empty (and said) when they are absent.
fn real_docs() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(real_root()) else {
        eprintln!("SKIPPED: {} is missing", real_root().display());
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must have the real files"
        );
        return out;
    };
    let mut files: Vec<PathBuf> = dirs
        .flatten()
        .filter(|d| d.path().is_dir())
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .map(|f| f.path())
        .collect();
    files.sort();
    for p in files {
        if let Some(doc) = read_doc(&p).filter(Value::is_object) {
            out.push((stem(&p), doc));
        }
    }
    out
}

/// Each plugin of each real file, changed one config field at a time (a
/// wrong type; an unknown field), is refused by the member with its
/// member, its path and Kong's words.
#[test]
fn real_plugin_configs_changed_one_field_at_a_time_are_refused() {
    let mut refused = 0;
    let mut failures = Vec::new();
    // Each (plugin, field) once: the first real config that has it.
    let mut seen = BTreeSet::new();
    for (name, doc) in real_docs() {
        let before = member_errors(&name, &doc);
        let mut places = Vec::new();
        entities(
            &doc,
            &At {
                path: String::new(),
                ptr: String::new(),
            },
            "plugins",
            &mut places,
        );
        for at in places {
            let Some(plugin) = doc
                .pointer(&at.ptr)
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            let Some(schema) = schemas::plugin(plugin) else {
                continue;
            };
            let Some(Value::Object(cfg)) = doc.pointer(&format!("{}/config", at.ptr)) else {
                continue;
            };
            let mut changes: Vec<(String, Value, &str)> =
                vec![("zz_mutant".into(), json!(1), "unknown field")];
            for (k, v) in cfg {
                let Some(f) = schema.config.get(k).map(resolve) else {
                    continue;
                };
                if f.ty != Ty::Any
                    && !v.is_null()
                    && !v.as_str().is_some_and(|s| s.starts_with("{vault://"))
                {
                    changes.push((k.clone(), wrong_type(f), "expected a"));
                }
            }
            for (field, value, words) in changes {
                if !seen.insert((plugin.to_string(), field.clone())) {
                    continue;
                }
                let mut changed = doc.clone();
                if let Some(Value::Object(c)) = changed.pointer_mut(&format!("{}/config", at.ptr)) {
                    c.insert(field.clone(), value);
                }
                let path = format!("{}.config.{field}", at.path);
                let prefix = format!("plugin '{plugin}' config `{field}`: {words}");
                let after = member_errors(&name, &changed);
                let hit = after.iter().any(|(code, p, m)| {
                    code == "schema_error"
                        && *p == path
                        && m.starts_with(&prefix)
                        && !before.contains(&(code.clone(), p.clone(), m.clone()))
                });
                if hit {
                    refused += 1;
                } else {
                    failures.push(format!("{name}: {path} ({words}) not refused: {after:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    if real_root().is_dir() {
        assert!(refused > 50, "{refused} changes");
    }
}

/// Each entity field rule of `rules::FIELD_RULES` (Kong's entity schemas),
/// its failing value put into a real entity of its collection, is refused
/// at that entity's path with the rule's own words; a reference made to dangle is an
/// `unresolved_reference`; an entity given twice is a duplicate.
#[test]
fn real_entities_changed_one_field_at_a_time_are_refused() {
    let docs = real_docs();
    if docs.is_empty() {
        return;
    }
    let mut failures = Vec::new();
    let mut missing = Vec::new();
    let mut tried = 0;
    let befores: Vec<_> = docs
        .iter()
        .map(|(name, doc)| member_errors(name, doc))
        .collect();
    for rule in FIELD_RULES {
        let coll = rule.coll.name();
        let Ok(bad) = serde_json::from_str::<Value>(rule.fail) else {
            failures.push(format!(
                "{coll}.{}: fail value {} is not JSON",
                rule.field, rule.fail
            ));
            continue;
        };
        // The rule's own words for the failing value.
        let Err((_, words)) = rules::check(&rule.check, &bad) else {
            failures.push(format!(
                "{coll}.{}: {} passes its rule",
                rule.field, rule.fail
            ));
            continue;
        };
        let mut done = false;
        // Once per place an entity of the collection can be (top level,
        // nested under a service, a consumer, …): the rule holds at every
        // nesting depth.
        let mut shapes = BTreeSet::new();
        for ((name, doc), before) in docs.iter().zip(&befores) {
            let mut places = Vec::new();
            entities(
                doc,
                &At {
                    path: String::new(),
                    ptr: String::new(),
                },
                coll,
                &mut places,
            );
            for at in places {
                let shape = shape_of(&at.path);
                if shapes.contains(&shape) || before.iter().any(|(_, p, _)| p.starts_with(&at.path))
                {
                    continue; // a shape done, or an entity already refused
                }
                let mut changed = doc.clone();
                if let Some(Value::Object(e)) = changed.pointer_mut(&at.ptr) {
                    e.insert(rule.field.to_string(), bad.clone());
                }
                let want = format!("{}.{}", at.path, rule.field);
                let after = member_errors(name, &changed);
                shapes.insert(shape);
                if after.iter().any(|(c, p, m)| {
                    c == "schema_error" && p.starts_with(&want) && m.contains(&words)
                }) {
                    done = true;
                    tried += 1;
                } else {
                    failures.push(format!(
                        "{name}: {want} = {} ({}) not refused: {after:?}",
                        rule.fail, rule.kong
                    ));
                }
            }
        }
        if !done {
            missing.push(format!("{coll}.{} ({})", rule.field, rule.kong));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every row of the table is changed in some real file.
    eprintln!(
        "FIELD_RULES: {} rows, {tried} changes; rows with no real entity to change: {missing:?}",
        FIELD_RULES.len()
    );
    assert!(missing.is_empty(), "rows with no real entity: {missing:?}");

    // A dangling reference: a route's service, a plugin's service, route or
    // consumer, renamed to one nothing defines.
    let mut dangling = 0;
    for ((name, doc), before) in docs.iter().zip(&befores) {
        for (coll, field) in [
            ("routes", "service"),
            ("plugins", "service"),
            ("plugins", "route"),
            ("plugins", "consumer"),
        ] {
            let mut places = Vec::new();
            entities(
                doc,
                &At {
                    path: String::new(),
                    ptr: String::new(),
                },
                coll,
                &mut places,
            );
            for at in places {
                let ptr = format!("{}/{field}", at.ptr);
                let new = match doc.pointer(&ptr) {
                    Some(Value::String(_)) => json!("zz-missing"),
                    Some(Value::Object(o)) if o.contains_key("name") => {
                        json!({"name": "zz-missing"})
                    }
                    _ => continue,
                };
                let mut changed = doc.clone();
                if let Some(slot) = changed.pointer_mut(&ptr) {
                    *slot = new;
                }
                let after = member_errors(name, &changed);
                let want = format!("{}.{field}", at.path);
                if after.iter().any(|e| {
                    e.0 == "unresolved_reference" && e.1.starts_with(&want) && !before.contains(e)
                }) {
                    dangling += 1;
                } else {
                    failures.push(format!("{name}: {want} dangling not refused: {after:?}"));
                }
            }
        }
    }
    // A duplicate: the first named service of a file given twice.
    let mut duplicates = 0;
    for ((name, doc), before) in docs.iter().zip(&befores) {
        let Some(Value::Array(services)) = doc.get("services") else {
            continue;
        };
        let Some(first) = services.iter().find(|s| s.get("name").is_some()) else {
            continue;
        };
        let mut changed = doc.clone();
        if let Some(Value::Array(s)) = changed.get_mut("services") {
            s.push(first.clone());
        }
        let after = member_errors(name, &changed);
        if after
            .iter()
            .any(|e| e.0 == "duplicate_in_member" && !before.contains(e))
        {
            duplicates += 1;
        } else {
            failures.push(format!(
                "{name}: a service given twice is not refused: {after:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        dangling > 10 && duplicates > 10,
        "{dangling} dangling, {duplicates} duplicates"
    );
}

/// A change to an entity document, for the entity-rule table below.
enum Op {
    /// Put this value at the pointer (a foreign key made to dangle, a
    /// field of the wrong form).
    Set(&'static str, Value),
    /// Append a copy of the array element at the pointer to its array (an
    /// entity given twice).
    Dup(&'static str),
}

/// One rule of Kong's entity schemas (README: What rgmerge checks, the
/// issue-29 table): a clean document where the rule holds, a change that
/// breaks it, and what the member must then say — finding code, path and
/// words.
struct EntityRule {
    rule: &'static str,
    doc: Value,
    op: Op,
    code: &'static str,
    path: &'static str,
    words: &'static str,
}

/// A certificate, its key and a CA certificate that Kong loads (from the
/// project's own case), for documents whose references need them.
fn pems() -> (String, String) {
    let p = crate::common::fixtures()
        .join("cases/assoc-every-row-inside-one-member-is-clean/yellow.json");
    let doc: Value = serde_json::from_slice(&std::fs::read(p).expect("case file")).expect("json");
    let cert = doc["certificates"][0]["cert"].as_str().expect("cert");
    let key = doc["certificates"][0]["key"].as_str().expect("key");
    (cert.to_string(), key.to_string())
}

const C1: &str = "00000000-0000-4000-8000-00000000c001";
const CA1: &str = "00000000-0000-4000-8000-00000000ca01";
const MISSING: &str = "00000000-0000-4000-8000-0000000000ff";

/// Every foreign key and uniqueness rule of Kong 3.10's entity schemas
/// (`kong/db/schema/entities/*.lua`, the credentials' `daos.lua`), each at
/// the top level and, where the entity nests, nested.
fn entity_rules() -> Vec<EntityRule> {
    let (cert, key) = pems();
    let svc = || json!({"name": "svc", "host": "svc.internal", "protocol": "https"});
    let route = || json!({"name": "rt", "paths": ["/rt"]});
    let certs = || json!([{"id": C1, "cert": cert, "key": key}]);
    let cas = || json!([{"id": CA1, "cert": cert}]);
    let consumer = || json!({"username": "alice"});
    let doc = |v: Value| {
        let mut v = v;
        v["_format_version"] = json!("3.0");
        v
    };
    let fk = "unresolved_reference";
    let dup = "duplicate_in_member";
    let mut rows = vec![
        // Foreign keys (`type = "foreign"`), top level.
        EntityRule {
            rule: "routes.service → services",
            doc: doc(
                json!({"services": [svc()], "routes": [{"name": "rt", "paths": ["/rt"], "service": {"name": "svc"}}]}),
            ),
            op: Op::Set("/routes/0/service", json!({"name": "zz"})),
            code: fk,
            path: "routes[0].service",
            words: "names service 'zz', which is not in member",
        },
        EntityRule {
            rule: "services.client_certificate → certificates",
            doc: doc(
                json!({"certificates": certs(), "services": [{"name": "svc", "host": "svc.internal", "protocol": "https", "client_certificate": {"id": C1}}]}),
            ),
            op: Op::Set("/services/0/client_certificate", json!({"id": MISSING})),
            code: fk,
            path: "services[0].client_certificate",
            words: "names certificate '00000000-0000-4000-8000-0000000000ff'",
        },
        EntityRule {
            rule: "upstreams.client_certificate → certificates",
            doc: doc(
                json!({"certificates": certs(), "upstreams": [{"name": "up", "client_certificate": {"id": C1}}]}),
            ),
            op: Op::Set("/upstreams/0/client_certificate", json!({"id": MISSING})),
            code: fk,
            path: "upstreams[0].client_certificate",
            words: "names certificate '00000000-0000-4000-8000-0000000000ff'",
        },
        EntityRule {
            rule: "targets.upstream → upstreams",
            doc: doc(
                json!({"upstreams": [{"name": "up"}], "targets": [{"target": "a.internal:80", "upstream": {"name": "up"}}]}),
            ),
            op: Op::Set("/targets/0/upstream", json!({"name": "zz"})),
            code: fk,
            path: "targets[0].upstream",
            words: "names upstream 'zz'",
        },
        EntityRule {
            rule: "snis.certificate → certificates",
            doc: doc(
                json!({"certificates": certs(), "snis": [{"name": "a.example", "certificate": {"id": C1}}]}),
            ),
            op: Op::Set("/snis/0/certificate", json!({"id": MISSING})),
            code: fk,
            path: "snis[0].certificate",
            words: "names certificate '00000000-0000-4000-8000-0000000000ff'",
        },
        EntityRule {
            rule: "plugins.service → services",
            doc: doc(json!({"services": [svc()], "plugins": [{"name": "cors", "service": "svc"}]})),
            op: Op::Set("/plugins/0/service", json!("zz")),
            code: fk,
            path: "plugins[0].service",
            words: "names service 'zz'",
        },
        EntityRule {
            rule: "plugins.route → routes",
            doc: doc(json!({"routes": [route()], "plugins": [{"name": "cors", "route": "rt"}]})),
            op: Op::Set("/plugins/0/route", json!("zz")),
            code: fk,
            path: "plugins[0].route",
            words: "names route 'zz'",
        },
        EntityRule {
            rule: "plugins.consumer → consumers",
            doc: doc(
                json!({"consumers": [consumer()], "plugins": [{"name": "rate-limiting", "consumer": "alice", "config": {"minute": 5}}]}),
            ),
            op: Op::Set("/plugins/0/consumer", json!("zz")),
            code: fk,
            path: "plugins[0].consumer",
            words: "names consumer 'zz'",
        },
        EntityRule {
            rule: "plugins.consumer_group → consumer_groups",
            doc: doc(
                json!({"consumer_groups": [{"name": "gold"}], "plugins": [{"name": "rate-limiting", "consumer_group": "gold", "config": {"minute": 5}}]}),
            ),
            op: Op::Set("/plugins/0/consumer_group", json!("zz")),
            code: fk,
            path: "plugins[0].consumer_group",
            words: "names consumer group 'zz'",
        },
        EntityRule {
            rule: "keys.set → key_sets",
            doc: doc(
                json!({"key_sets": [{"name": "ks"}], "keys": [{"name": "k", "kid": "1", "jwk": "{\"kid\":\"1\",\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}", "set": {"name": "ks"}}]}),
            ),
            op: Op::Set("/keys/0/set", json!({"name": "zz"})),
            code: fk,
            path: "keys[0].set",
            words: "names key set 'zz'",
        },
        EntityRule {
            rule: "consumers.groups → consumer_groups",
            doc: doc(
                json!({"consumer_groups": [{"name": "gold"}], "consumers": [{"username": "alice", "groups": [{"name": "gold"}]}]}),
            ),
            op: Op::Set("/consumers/0/groups/0", json!({"name": "zz"})),
            code: fk,
            path: "consumers[0].groups[0]",
            words: "names consumer group 'zz'",
        },
        EntityRule {
            rule: "consumer_groups.consumers → consumers",
            doc: doc(
                json!({"consumers": [consumer()], "consumer_groups": [{"name": "gold", "consumers": [{"username": "alice"}]}]}),
            ),
            op: Op::Set("/consumer_groups/0/consumers/0", json!({"username": "zz"})),
            code: fk,
            path: "consumer_groups[0].consumers[0]",
            words: "names consumer 'zz'",
        },
        EntityRule {
            rule: "consumer_group_plugins.consumer_group → consumer_groups",
            doc: doc(
                json!({"consumer_groups": [{"name": "gold"}], "consumer_group_plugins": [{"name": "rate-limiting-advanced", "consumer_group": {"name": "gold"}, "config": {"limit": [10], "window_size": [60]}}]}),
            ),
            op: Op::Set(
                "/consumer_group_plugins/0/consumer_group",
                json!({"name": "zz"}),
            ),
            code: fk,
            path: "consumer_group_plugins[0].consumer_group",
            words: "names consumer group 'zz'",
        },
        EntityRule {
            rule: "filter_chains.route → routes",
            doc: doc(
                json!({"routes": [route()], "filter_chains": [{"name": "fc", "route": {"name": "rt"}, "filters": [{"name": "f"}]}]}),
            ),
            op: Op::Set("/filter_chains/0/route", json!({"name": "zz"})),
            code: fk,
            path: "filter_chains[0].route",
            words: "names route 'zz'",
        },
        EntityRule {
            rule: "filter_chains.service → services",
            doc: doc(
                json!({"services": [svc()], "filter_chains": [{"name": "fc", "service": {"name": "svc"}, "filters": [{"name": "f"}]}]}),
            ),
            op: Op::Set("/filter_chains/0/service", json!({"name": "zz"})),
            code: fk,
            path: "filter_chains[0].service",
            words: "names service 'zz'",
        },
        EntityRule {
            rule: "mtls_auth_credentials.ca_certificate → ca_certificates",
            doc: doc(
                json!({"ca_certificates": cas(), "consumers": [consumer()], "mtls_auth_credentials": [{"subject_name": "c", "consumer": {"username": "alice"}, "ca_certificate": {"id": CA1}}]}),
            ),
            op: Op::Set(
                "/mtls_auth_credentials/0/ca_certificate",
                json!({"id": MISSING}),
            ),
            code: fk,
            path: "mtls_auth_credentials[0].ca_certificate",
            words: "names CA certificate '00000000-0000-4000-8000-0000000000ff'",
        },
        // Foreign keys, nested: a plugin in a service naming a route, in a
        // consumer naming a service; a credential's CA in a consumer.
        EntityRule {
            rule: "plugins.route → routes (in a service)",
            doc: doc(
                json!({"services": [{"name": "svc", "host": "svc.internal", "routes": [route()], "plugins": [{"name": "cors", "route": "rt"}]}]}),
            ),
            op: Op::Set("/services/0/plugins/0/route", json!("zz")),
            code: fk,
            path: "services[0].plugins[0].route",
            words: "names route 'zz'",
        },
        EntityRule {
            rule: "plugins.service → services (in a consumer)",
            doc: doc(
                json!({"services": [svc()], "consumers": [{"username": "alice", "plugins": [{"name": "rate-limiting", "service": "svc", "config": {"minute": 5}}]}]}),
            ),
            op: Op::Set("/consumers/0/plugins/0/service", json!("zz")),
            code: fk,
            path: "consumers[0].plugins[0].service",
            words: "names service 'zz'",
        },
        EntityRule {
            rule: "mtls_auth_credentials.ca_certificate → ca_certificates (in a consumer)",
            doc: doc(
                json!({"ca_certificates": cas(), "consumers": [{"username": "alice", "mtls_auth_credentials": [{"subject_name": "c", "ca_certificate": {"id": CA1}}]}]}),
            ),
            op: Op::Set(
                "/consumers/0/mtls_auth_credentials/0/ca_certificate",
                json!({"id": MISSING}),
            ),
            code: fk,
            path: "consumers[0].mtls_auth_credentials[0].ca_certificate",
            words: "names CA certificate '00000000-0000-4000-8000-0000000000ff'",
        },
    ];
    // Credentials' consumer (top level; nested, the consumer is the parent).
    for (coll, cred) in [
        ("keyauth_credentials", json!({"key": "k-1"})),
        (
            "basicauth_credentials",
            json!({"username": "b-1", "password": "p"}),
        ),
        ("hmacauth_credentials", json!({"username": "h-1"})),
        ("jwt_secrets", json!({"key": "j-1"})),
        (
            "oauth2_credentials",
            json!({"name": "o", "client_id": "o-1"}),
        ),
        ("acls", json!({"group": "g"})),
        ("mtls_auth_credentials", json!({"subject_name": "m"})),
    ] {
        let mut c = cred.clone();
        c["consumer"] = json!({"username": "alice"});
        rows.push(EntityRule {
            rule: Box::leak(format!("{coll}.consumer → consumers").into_boxed_str()),
            doc: doc(json!({"consumers": [consumer()], coll: [c]})),
            op: Op::Set(
                Box::leak(format!("/{coll}/0/consumer").into_boxed_str()),
                json!({"username": "zz"}),
            ),
            code: fk,
            path: Box::leak(format!("{coll}[0].consumer").into_boxed_str()),
            words: "names consumer 'zz'",
        });
    }
    // Uniqueness (`unique = true`, `endpoint_key`, `cache_key`): the entity
    // given twice, top level and nested.
    let uniques: Vec<(&str, Value, &str, &str, &str)> = vec![
        (
            "services.name",
            json!({"services": [svc()]}),
            "/services/0",
            "services[1]",
            "service name 'svc' is already defined at services[0]",
        ),
        (
            "routes.name",
            json!({"routes": [route()]}),
            "/routes/0",
            "routes[1]",
            "route name 'rt' is already defined at routes[0]",
        ),
        (
            "routes.name (in a service)",
            json!({"services": [{"name": "svc", "host": "svc.internal", "routes": [route()]}]}),
            "/services/0/routes/0",
            "services[0].routes[1]",
            "route name 'rt' is already defined at services[0].routes[0]",
        ),
        (
            "upstreams.name",
            json!({"upstreams": [{"name": "up"}]}),
            "/upstreams/0",
            "upstreams[1]",
            "upstream name 'up' is already defined",
        ),
        (
            "targets (upstream, target) (in an upstream)",
            json!({"upstreams": [{"name": "up", "targets": [{"target": "a.internal:80"}]}]}),
            "/upstreams/0/targets/0",
            "upstreams[0].targets[1]",
            "target target '(up, a.internal:80)' is already defined",
        ),
        (
            "snis.name (in a certificate)",
            json!({"certificates": [{"id": C1, "cert": cert, "key": key, "snis": [{"name": "a.example"}]}]}),
            "/certificates/0/snis/0",
            "certificates[0].snis[1]",
            "SNI name 'a.example' is already defined",
        ),
        (
            "snis.name",
            json!({"certificates": certs(), "snis": [{"name": "a.example", "certificate": {"id": C1}}]}),
            "/snis/0",
            "snis[1]",
            "SNI name 'a.example' is already defined",
        ),
        (
            "ca_certificates.cert_digest",
            json!({"ca_certificates": [{"cert": cert}]}),
            "/ca_certificates/0",
            "ca_certificates[1].cert",
            "UNIQUE violation detected on cert_digest",
        ),
        (
            "consumers.username",
            json!({"consumers": [consumer()]}),
            "/consumers/0",
            "consumers[1]",
            "consumer username 'alice' is already defined",
        ),
        (
            "consumers.custom_id",
            json!({"consumers": [{"custom_id": "c-1"}]}),
            "/consumers/0",
            "consumers[1]",
            "consumer custom_id 'c-1' is already defined",
        ),
        (
            "consumer_groups.name",
            json!({"consumer_groups": [{"name": "gold"}]}),
            "/consumer_groups/0",
            "consumer_groups[1]",
            "consumer group name 'gold' is already defined",
        ),
        (
            "plugins.instance_name",
            json!({"plugins": [{"name": "cors", "instance_name": "c1"}]}),
            "/plugins/0",
            "plugins[1]",
            "plugin instance_name 'c1' is already defined",
        ),
        (
            "plugins.instance_name (in a route)",
            json!({"routes": [{"name": "rt", "paths": ["/rt"], "plugins": [{"name": "cors", "instance_name": "c1"}]}]}),
            "/routes/0/plugins/0",
            "routes[0].plugins[1]",
            "plugin instance_name 'c1' is already defined",
        ),
        (
            "keys.name",
            json!({"keys": [{"name": "k", "kid": "1", "jwk": "{\"kid\":\"1\",\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}"}]}),
            "/keys/0",
            "keys[1]",
            "key name 'k' is already defined",
        ),
        (
            "key_sets.name",
            json!({"key_sets": [{"name": "ks"}]}),
            "/key_sets/0",
            "key_sets[1]",
            "key set name 'ks' is already defined",
        ),
        (
            "vaults.prefix",
            json!({"vaults": [{"name": "env", "prefix": "my-env"}]}),
            "/vaults/0",
            "vaults[1]",
            "vault prefix 'my-env' is already defined",
        ),
        (
            "keyauth_credentials.key (in a consumer)",
            json!({"consumers": [{"username": "alice", "keyauth_credentials": [{"key": "k-1"}]}]}),
            "/consumers/0/keyauth_credentials/0",
            "consumers[0].keyauth_credentials[1]",
            "key-auth credential key 'k-1' is already defined",
        ),
        (
            "basicauth_credentials.username (in a consumer)",
            json!({"consumers": [{"username": "alice", "basicauth_credentials": [{"username": "b-1", "password": "p"}]}]}),
            "/consumers/0/basicauth_credentials/0",
            "consumers[0].basicauth_credentials[1]",
            "basic-auth credential username 'b-1' is already defined",
        ),
        (
            "hmacauth_credentials.username (in a consumer)",
            json!({"consumers": [{"username": "alice", "hmacauth_credentials": [{"username": "h-1"}]}]}),
            "/consumers/0/hmacauth_credentials/0",
            "consumers[0].hmacauth_credentials[1]",
            "HMAC-auth credential username 'h-1' is already defined",
        ),
        (
            "jwt_secrets.key (in a consumer)",
            json!({"consumers": [{"username": "alice", "jwt_secrets": [{"key": "j-1"}]}]}),
            "/consumers/0/jwt_secrets/0",
            "consumers[0].jwt_secrets[1]",
            "JWT secret key 'j-1' is already defined",
        ),
        (
            "oauth2_credentials.client_id (in a consumer)",
            json!({"consumers": [{"username": "alice", "oauth2_credentials": [{"name": "o", "client_id": "o-1"}]}]}),
            "/consumers/0/oauth2_credentials/0",
            "consumers[0].oauth2_credentials[1]",
            "OAuth2 credential client_id 'o-1' is already defined",
        ),
        (
            "acls (consumer, group) (in a consumer)",
            json!({"consumers": [{"username": "alice", "acls": [{"group": "g"}]}]}),
            "/consumers/0/acls/0",
            "consumers[0].acls[1].group",
            "uniqueness violation: group 'g' is already declared for this consumer",
        ),
        (
            "partials.name",
            json!({"partials": [{"name": "p", "type": "redis-ce", "config": {}}]}),
            "/partials/0",
            "partials[1]",
            "partial name 'p' is already defined",
        ),
        (
            "services.id",
            json!({"services": [{"id": C1, "name": "svc", "host": "svc.internal"}, {"name": "svc2", "host": "svc.internal"}]}),
            "/services/0",
            "services[2]",
            "service id '00000000-0000-4000-8000-00000000c001' is already defined",
        ),
        (
            "plugins (name, service, route, consumer) (in a service)",
            json!({"services": [{"name": "svc", "host": "svc.internal", "plugins": [{"name": "cors"}]}]}),
            "/services/0/plugins/0",
            "services[0].plugins[1]",
            "a second plugin cors (service=svc, route=, consumer=, consumer_group=) is already defined",
        ),
        (
            "filter_chains.name",
            json!({"filter_chains": [{"name": "fc", "filters": [{"name": "f"}]}]}),
            "/filter_chains/0",
            "filter_chains[1]",
            "filter chain name 'fc' is already defined",
        ),
    ];
    for (rule, d, ptr, path, words) in uniques {
        rows.push(EntityRule {
            rule: Box::leak(format!("unique {rule}").into_boxed_str()),
            doc: doc(d),
            op: Op::Dup(Box::leak(ptr.to_string().into_boxed_str())),
            code: dup,
            path: Box::leak(path.to_string().into_boxed_str()),
            words: Box::leak(words.to_string().into_boxed_str()),
        });
    }
    rows
}

/// Each foreign key and uniqueness rule of Kong's entity schemas: the
/// document where it holds is clean (Kong loads it), the change that breaks
/// it is refused with that rule's finding, path and words.
#[test]
fn entity_keys_and_references_changed_are_refused_with_their_words() {
    let mut failures = Vec::new();
    let rows = entity_rules();
    for r in &rows {
        let before = member_errors("m", &r.doc);
        if !before.is_empty() {
            failures.push(format!(
                "{}: the clean document is refused: {before:?}",
                r.rule
            ));
            continue;
        }
        let mut changed = r.doc.clone();
        match &r.op {
            Op::Set(ptr, v) => match changed.pointer_mut(ptr) {
                Some(slot) => *slot = v.clone(),
                None => {
                    failures.push(format!("{}: no {ptr} in the document", r.rule));
                    continue;
                }
            },
            Op::Dup(ptr) => {
                let (list, _) = ptr.rsplit_once('/').unwrap_or_default();
                let item = changed.pointer(ptr).cloned();
                match (item, changed.pointer_mut(list)) {
                    (Some(item), Some(Value::Array(a))) => a.push(item),
                    _ => {
                        failures.push(format!("{}: no {ptr} in the document", r.rule));
                        continue;
                    }
                }
            }
        }
        let after = member_errors("m", &changed);
        if !after
            .iter()
            .any(|(c, p, m)| c == r.code && p == r.path && m.contains(r.words))
        {
            failures.push(format!(
                "{}: not refused as {} at {} with '{}': {after:?}",
                r.rule, r.code, r.path, r.words
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(rows.len() >= 50, "{} rules", rows.len());
}
