//! Plugin config schemas as data: one description per plugin, in the shape
//! of Kong's own `schema.lua` (types, `required`, `default`, `one_of`,
//! `between`, `gt`, `len_min`/`len_max`, `match`, `match_none`, `is_regex`,
//! arrays, maps, nested records, entity checks), naming the Kong version it
//! follows. A plugin is added by data alone. Two files of one format:
//!
//! - `plugin_schemas.json`: the OSS plugins, read by hand from each
//!   `schema.lua` of Kong/kong (every rule, Enterprise-only fields marked
//!   `only`);
//! - `plugin_schemas_enterprise.json`: every other bundled plugin (Kong
//!   Gateway Enterprise's, and the LLM plugins), converted by
//!   `scripts/convert_plugin_schemas.py` from Kong's published JSON schemas
//!   (Kong/developer.konghq.com): names, types, enums, ranges, lengths,
//!   required fields; what those are silent on is listed in the file
//!   (`silent`) and per plugin (`unchecked`), and noted in the report.
//!
//! [`check_config`] judges a config the way Kong's `Schema:validate` does,
//! with Kong's own words (`length must be at least 1`, `value should be
//! between 100 and 599`, `expected a string`, …), so people can search them.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::formats;
use crate::config::walk::describe;

const DATA: &str = include_str!("plugin_schemas.json");
const DATA_ENTERPRISE: &str = include_str!("plugin_schemas_enterprise.json");

/// The whole data file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaFile {
    /// The Kong Gateway version the descriptions follow.
    pub kong_version: String,
    pub source: String,
    /// By plugin name, hashed: looked up for every plugin of every write.
    pub plugins: HashMap<String, PluginSchema>,
    /// Typedefs several plugins share, named by `$ref`.
    #[serde(default)]
    pub shared: BTreeMap<String, Field>,
    /// What the source does not say, for every plugin of the file (a
    /// converted file: Kong checks it, rgmerge does not).
    #[serde(default)]
    pub silent: Vec<String>,
    /// Bundled plugins the source has no schema for (they stay noted as
    /// not modelled).
    #[serde(default)]
    pub not_published: Vec<String>,
    /// Fields later Kong versions add to the hand-read plugins (taken on an
    /// Enterprise target: a Konnect control plane takes them).
    #[serde(default)]
    pub later_fields: Vec<LaterField>,
    /// String `one_of` values later Kong versions add to them, likewise.
    #[serde(default)]
    pub later_one_of: Vec<LaterOneOf>,
    /// Every bundled plugin's scopes and protocols, as Kong publishes them
    /// (the hand-read plugins' too).
    #[serde(default)]
    pub published_scopes: HashMap<String, Published>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Published {
    /// Of `consumer`, `route`, `service`, `consumer_group`: those it allows.
    pub scopes: Vec<String>,
    pub protocols: Vec<String>,
}

/// Whether Kong's published schema lets the plugin be scoped to a consumer
/// group (`None`: no published schema).
pub fn allows_consumer_group(name: &str) -> Option<bool> {
    let p = enterprise_file()?.published_scopes.get(name)?;
    Some(p.scopes.iter().any(|s| s == "consumer_group"))
}

/// A field a later version adds to a record of a hand-read plugin: the
/// record's path below `config` (`[]` for a list's elements).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaterField {
    pub plugin: String,
    pub path: Vec<String>,
    pub name: String,
    pub field: Field,
}

/// `one_of` values a later version adds to a string field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaterOneOf {
    pub plugin: String,
    pub path: Vec<String>,
    pub values: Vec<Value>,
}

/// One plugin's `config` record and the checks across its fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSchema {
    pub config: BTreeMap<String, Field>,
    #[serde(default)]
    pub entity_checks: Vec<EntityCheck>,
    /// Kong's `custom_validator`s that data can say.
    #[serde(default)]
    pub custom_checks: Vec<CustomCheck>,
    /// Kong's `custom_validator`s that are code, by name ([`VALIDATORS`]).
    #[serde(default)]
    pub validators: Vec<String>,
    /// What Kong checks that this description leaves to Kong (for the report).
    #[serde(default)]
    pub unchecked: Vec<String>,
    /// The protocols the plugin runs on, where the source says (converted
    /// files; `plugins::BUNDLED` must agree).
    pub protocols: Option<Vec<String>>,
    /// The scopes it may have (`consumer`, `route`, `service`,
    /// `consumer_group`), where the source says.
    pub scopes: Option<Vec<String>>,
    /// The Kong version of the published schema when it is not the data's
    /// own (a plugin Kong published no 3.10 schema for).
    #[serde(default)]
    pub published_version: Option<String>,
}

#[derive(Copy, Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Ty {
    #[default]
    Any,
    String,
    Integer,
    Number,
    Boolean,
    Array,
    Set,
    Map,
    Record,
}

/// One field, as Kong's schema declares it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// A typedef from `shared`; the other keys are then ignored.
    #[serde(rename = "$ref")]
    pub reference: Option<String>,
    #[serde(rename = "type", default)]
    pub ty: Ty,
    #[serde(default)]
    pub required: bool,
    /// Kong fills it in when the field is absent, so a required field with
    /// a default is never missing.
    pub default: Option<Value>,
    /// Kong generates it when absent (`auto = true`): never missing either.
    #[serde(default)]
    pub auto: bool,
    pub one_of: Option<Vec<Value>>,
    /// More values `one_of` takes on an Enterprise target.
    pub enterprise_one_of: Option<Vec<Value>>,
    pub not_one_of: Option<Vec<Value>>,
    /// Inclusive bounds; `null` for an open side (Kong prints it `inf`).
    pub between: Option<[Option<f64>; 2]>,
    pub gt: Option<f64>,
    /// Strings default to 1, as in Kong (`validate_field`: empty strings
    /// are refused unless the schema says `len_min = 0`).
    pub len_min: Option<usize>,
    pub len_max: Option<usize>,
    /// A regex accepting what Kong's Lua pattern accepts.
    #[serde(rename = "match")]
    pub pattern: Option<String>,
    /// The message when `match` fails (Kong's `err`), else `invalid value: …`.
    pub err: Option<String>,
    #[serde(default)]
    pub match_none: Vec<MatchNone>,
    #[serde(default)]
    pub is_regex: bool,
    /// A `{vault://…}` reference is resolved at run time: not checked.
    #[serde(default)]
    pub referenceable: bool,
    /// A named format (a `typedefs` validator): see [`format`].
    pub format: Option<String>,
    pub elements: Option<Box<Field>>,
    pub keys: Option<Box<Field>>,
    pub values: Option<Box<Field>>,
    pub fields: Option<BTreeMap<String, Field>>,
    /// Deprecated names a record still takes (Kong's `shorthand_fields`).
    pub shorthand_fields: Option<BTreeMap<String, Field>>,
    /// A record's own entity checks, paths relative to it.
    #[serde(default)]
    pub entity_checks: Vec<EntityCheck>,
    /// A record's named custom validators ([`VALIDATORS`]).
    #[serde(default)]
    pub validators: Vec<String>,
    /// Why the description differs in form from Kong's (documentation only).
    pub why: Option<String>,
    /// `enterprise` or `oss`: the field exists in that edition only (the
    /// other refuses it as unknown). Enterprise fields come from Kong's
    /// published 3.10 plugin schemas.
    pub only: Option<String>,
    /// The later Kong version that added the field (converted data: a
    /// Konnect control plane takes it; documentation only).
    pub since: Option<String>,
    /// `one_of` values later versions added, by version (documentation only).
    pub since_one_of: Option<BTreeMap<String, Vec<Value>>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchNone {
    pub pattern: String,
    pub err: String,
    /// Why the regex reads as it does (documentation only).
    pub why: Option<String>,
}

/// Kong's entity checks, with field paths relative to `config`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum EntityCheck {
    AtLeastOneOf(Vec<String>),
    OnlyOneOf(Vec<String>),
    MutuallyExclusive(Vec<String>),
    MutuallyRequired(Vec<String>),
    Conditional(Box<Conditional>),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conditional {
    pub if_field: String,
    /// The condition: the field is one of these values…
    #[serde(default)]
    pub if_one_of: Vec<Value>,
    /// …or a number greater than this.
    pub if_gt: Option<f64>,
    pub then_field: String,
    #[serde(default)]
    pub then_required: bool,
    pub then_eq: Option<Value>,
    /// The then-field is a list holding this value.
    pub then_contains: Option<Value>,
    /// A shorthand (old) name Kong moves into the then-field before checking.
    pub then_shorthand: Option<String>,
    pub then_err: Option<String>,
}

/// A custom validator written as data: when `if_set` is a non-empty string
/// (or `if_true` is `true`), every `then_unset` field must be empty and
/// every `then_set` field non-empty; else `err`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomCheck {
    /// At least one of these booleans must be `true` (absent is `false`).
    #[serde(default)]
    pub any_true: Vec<String>,
    /// At least one of these must be set (an entity check that must also
    /// count a shorthand field).
    #[serde(default)]
    pub any_set: Vec<String>,
    pub if_set: Option<String>,
    pub if_true: Option<String>,
    #[serde(default)]
    pub then_unset: Vec<String>,
    #[serde(default)]
    pub then_set: Vec<String>,
    pub err: String,
}

/// The parsed hand-read data file (a unit test keeps it parsing; at run
/// time a broken file only means no plugin is modelled here). Parsed once.
pub fn file() -> Option<&'static SchemaFile> {
    static FILE: OnceLock<Option<SchemaFile>> = OnceLock::new();
    FILE.get_or_init(|| serde_json::from_str(DATA).ok())
        .as_ref()
}

/// The parsed converted data file (Kong's published schemas), parsed once.
pub fn enterprise_file() -> Option<&'static SchemaFile> {
    static FILE: OnceLock<Option<SchemaFile>> = OnceLock::new();
    FILE.get_or_init(|| serde_json::from_str(DATA_ENTERPRISE).ok())
        .as_ref()
}

/// The described schema of a plugin: hand-read first, else converted.
pub fn plugin(name: &str) -> Option<&'static PluginSchema> {
    file()
        .and_then(|f| f.plugins.get(name))
        .or_else(|| enterprise_file()?.plugins.get(name))
}

/// The additions of later versions to the hand-read plugins, by the address
/// of what they extend: a record's field map (fields) or a field (values).
/// Built once; a path that does not lead anywhere is skipped (a unit test
/// keeps every one leading somewhere).
struct Later {
    fields: HashMap<usize, BTreeMap<&'static str, &'static Field>>,
    one_of: HashMap<usize, Vec<Value>>,
    unplaced: Vec<String>,
}

fn later() -> &'static Later {
    static LATER: OnceLock<Later> = OnceLock::new();
    LATER.get_or_init(|| {
        let mut l = Later {
            fields: HashMap::new(),
            one_of: HashMap::new(),
            unplaced: Vec::new(),
        };
        let (Some(hand), Some(ee)) = (file(), enterprise_file()) else {
            return l;
        };
        let at = |plugin: &str, path: &[String]| -> Option<&'static Field> {
            let config = &hand.plugins.get(plugin)?.config;
            let (first, rest) = path.split_first()?;
            let mut f = resolve_in(&hand.shared, config.get(first)?);
            for step in rest {
                let next = match step.as_str() {
                    "[]" => f.elements.as_deref().or(f.values.as_deref())?,
                    name => f.fields.as_ref()?.get(name)?,
                };
                f = resolve_in(&hand.shared, next);
            }
            Some(f)
        };
        for a in &ee.later_fields {
            let fields = if a.path.is_empty() {
                hand.plugins.get(&a.plugin).map(|p| &p.config)
            } else {
                at(&a.plugin, &a.path).and_then(|f| f.fields.as_ref())
            };
            match fields {
                Some(fields) => {
                    l.fields
                        .entry(fields as *const _ as usize)
                        .or_default()
                        .insert(a.name.as_str(), &a.field);
                }
                None => l
                    .unplaced
                    .push(format!("{} {:?} {}", a.plugin, a.path, a.name)),
            }
        }
        for a in &ee.later_one_of {
            match at(&a.plugin, &a.path) {
                Some(f) => l
                    .one_of
                    .entry(f as *const Field as usize)
                    .or_default()
                    .extend(a.values.iter().cloned()),
                None => l.unplaced.push(format!("{} {:?} one_of", a.plugin, a.path)),
            }
        }
        l
    })
}

fn resolve_in(shared: &'static BTreeMap<String, Field>, f: &'static Field) -> &'static Field {
    match &f.reference {
        Some(name) => shared.get(name).unwrap_or(f),
        None => f,
    }
}

/// Whether a plugin's description is converted from Kong's published
/// schemas (names, types, enums, ranges: not every rule Kong checks).
pub fn is_converted(name: &str) -> bool {
    file().is_none_or(|f| !f.plugins.contains_key(name))
        && enterprise_file().is_some_and(|f| f.plugins.contains_key(name))
}

/// Whether a config's regex compiles as Kong's PCRE2 compiles it; the
/// error is `ngx.re`'s. (See [`super::pcre`].)
pub fn compile(pattern: &str) -> Result<(), String> {
    super::pcre::check(pattern)
}

/// A problem: the path below `config` (`storage_config.redis.port`,
/// `allow[0]`; empty for the whole config) and Kong's words for it.
pub type Problem = (String, String);

/// Checks a plugin's config against its description. `partial`: fields may
/// come from elsewhere (decK's `_config`), so none is required.
pub fn check_config(
    schema: &'static PluginSchema,
    cfg: &Map<String, Value>,
    partial: bool,
    oss: bool,
    out: &mut Vec<Problem>,
) {
    let Some(file) = file() else {
        return;
    };
    let cx = Cx {
        shared: &file.shared,
        partial,
        edition: if oss { "oss" } else { "enterprise" },
    };
    cx.record(&schema.config, None, cfg, "", out);
    if partial {
        return;
    }
    for check in &schema.entity_checks {
        entity_check(check, &schema.config, &file.shared, cfg, "", out);
    }
    for v in &schema.validators {
        for why in validator(v, cfg) {
            out.push((String::new(), why));
        }
    }
    for c in &schema.custom_checks {
        if !c.any_set.is_empty() {
            if !c.any_set.iter().any(|f| set(lookup(cfg, f))) {
                out.push((String::new(), c.err.clone()));
            }
            continue;
        }
        if !c.any_true.is_empty() {
            if !c
                .any_true
                .iter()
                .any(|f| lookup(cfg, f) == Some(&Value::Bool(true)))
            {
                out.push((String::new(), c.err.clone()));
            }
            continue;
        }
        let on = match (&c.if_set, &c.if_true) {
            (Some(f), _) => present(lookup(cfg, f)),
            (_, Some(f)) => lookup(cfg, f) == Some(&Value::Bool(true)),
            _ => false,
        };
        if on
            && (c.then_unset.iter().any(|f| present(lookup(cfg, f)))
                || c.then_set.iter().any(|f| !present(lookup(cfg, f))))
        {
            out.push((String::new(), c.err.clone()));
        }
    }
}

/// Kong's `is_present` in custom validators: a non-empty string.
fn present(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::String(s)) if !s.is_empty())
}

/// Kong's sense of "set" in entity checks: not null, and not an empty
/// string, list or map.
fn set(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

fn lookup<'a>(cfg: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut v = cfg.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

/// Kong's `quoted_list`: names as the entity sees them (`config.…` for the
/// plugin's own checks, bare inside a nested record).
fn quoted(fields: &[String], at: &str) -> String {
    let prefix = if at.is_empty() { "config." } else { "" };
    fields
        .iter()
        .map(|f| format!("'{prefix}{f}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The default of the field at a dotted path below a record.
fn default_at<'a>(
    fields: &'a BTreeMap<String, Field>,
    shared: &'a BTreeMap<String, Field>,
    path: &str,
) -> Option<&'a Value> {
    let mut fields = fields;
    let mut parts = path.split('.').peekable();
    while let Some(p) = parts.next() {
        let mut f = fields.get(p)?;
        if let Some(r) = &f.reference {
            f = shared.get(r)?;
        }
        if parts.peek().is_none() {
            return f.default.as_ref();
        }
        fields = f.fields.as_ref()?;
    }
    None
}

/// One of Kong's entity checks on a record (`at`: its path below `config`,
/// empty for the config itself).
fn entity_check(
    check: &EntityCheck,
    fields: &BTreeMap<String, Field>,
    shared: &BTreeMap<String, Field>,
    cfg: &Map<String, Value>,
    at: &str,
    out: &mut Vec<Problem>,
) {
    let count = |fs: &[String]| fs.iter().filter(|f| set(lookup(cfg, f))).count();
    match check {
        EntityCheck::AtLeastOneOf(fs) if count(fs) == 0 => out.push((
            at.to_string(),
            format!(
                "at least one of these fields must be non-empty: {}",
                quoted(fs, at)
            ),
        )),
        EntityCheck::OnlyOneOf(fs) if count(fs) != 1 => out.push((
            at.to_string(),
            format!(
                "exactly one of these fields must be non-empty: {}",
                quoted(fs, at)
            ),
        )),
        EntityCheck::MutuallyExclusive(fs) if count(fs) > 1 => out.push((
            at.to_string(),
            format!(
                "only one or none of these fields must be set: {}",
                quoted(fs, at)
            ),
        )),
        EntityCheck::MutuallyRequired(fs) if count(fs) != 0 && count(fs) != fs.len() => out.push((
            at.to_string(),
            format!(
                "all or none of these fields must be set: {}",
                quoted(fs, at)
            ),
        )),
        EntityCheck::Conditional(c) => {
            // Kong fills defaults in before its entity checks run.
            let Some(v) = lookup(cfg, &c.if_field)
                .filter(|v| !v.is_null())
                .or_else(|| default_at(fields, shared, &c.if_field))
            else {
                return;
            };
            let on = c.if_one_of.contains(v)
                || c.if_gt.is_some_and(|gt| v.as_f64().is_some_and(|n| n > gt));
            if !on {
                return;
            }
            let then = lookup(cfg, &c.then_field)
                .filter(|v| !v.is_null())
                .or_else(|| {
                    c.then_shorthand
                        .as_deref()
                        .and_then(|f| lookup(cfg, f))
                        .filter(|v| !v.is_null())
                })
                .or_else(|| default_at(fields, shared, &c.then_field));
            let why = if c.then_required && then.is_none() {
                Some("required field missing".to_string())
            } else if let Some(want) = &c.then_eq
                && then.unwrap_or(&Value::Null) != want
            {
                Some(format!("value must be {want}"))
            } else if let Some(want) = &c.then_contains
                && !then
                    .and_then(Value::as_array)
                    .is_some_and(|items| items.contains(want))
            {
                Some(format!(
                    "expected to contain: {}",
                    list(std::slice::from_ref(want))
                ))
            } else {
                None
            };
            if let Some(why) = why {
                let prefix = if at.is_empty() { "config." } else { "" };
                out.push((join(at, &c.then_field), c.then_err.clone().unwrap_or(why)));
                out.push((
                    at.to_string(),
                    format!(
                        "failed conditional validation given value of field '{prefix}{}'",
                        c.if_field
                    ),
                ));
            }
        }
        _ => {}
    }
}

struct Cx<'a> {
    shared: &'a BTreeMap<String, Field>,
    partial: bool,
    /// The target's edition, as `Field::only` names it.
    edition: &'static str,
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

/// A short, printable form of a value for `invalid value: …`.
fn shown(s: &str) -> String {
    let mut t: String = s.chars().take(80).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    t
}

impl Cx<'static> {
    fn resolve(&self, f: &'static Field) -> &'static Field {
        match &f.reference {
            Some(name) => self.shared.get(name).unwrap_or(f),
            None => f,
        }
    }

    /// A record's fields: unknown keys refused, required ones present.
    fn record(
        &self,
        fields: &'static BTreeMap<String, Field>,
        shorthands: Option<&'static BTreeMap<String, Field>>,
        obj: &Map<String, Value>,
        at: &str,
        out: &mut Vec<Problem>,
    ) {
        let here = |f: &&Field| f.only.as_deref().is_none_or(|e| e == self.edition);
        let later = match self.edition {
            "enterprise" => later().fields.get(&(fields as *const _ as usize)),
            _ => None,
        };
        for (k, v) in obj {
            let field = fields
                .get(k)
                .or_else(|| shorthands.and_then(|s| s.get(k)))
                .filter(here)
                .or_else(|| later.and_then(|l| l.get(k.as_str()).copied()));
            match field {
                Some(f) => self.value(self.resolve(f), v, &join(at, k), out),
                None => out.push((join(at, &clip(k)), "unknown field".into())),
            }
        }
        if self.partial {
            return;
        }
        for (k, f) in fields.iter().filter(|(_, f)| here(f)) {
            let f = self.resolve(f);
            if f.required && f.default.is_none() && !f.auto && obj.get(k).is_none_or(Value::is_null)
            {
                out.push((join(at, k), "required field missing".into()));
            }
        }
    }

    fn value(&self, f: &'static Field, v: &Value, at: &str, out: &mut Vec<Problem>) {
        if v.is_null() {
            return;
        }
        let mut err = |why: String| out.push((at.to_string(), why));
        match f.ty {
            Ty::Any => {}
            Ty::String => {
                let Some(s) = v.as_str() else {
                    return err(format!("expected a string, found {}", describe(v)));
                };
                if f.referenceable && formats::is_vault_ref(s) {
                    return;
                }
                if let Some(why) = self.string(f, s) {
                    err(why);
                }
            }
            Ty::Integer | Ty::Number => {
                let n = match v.as_f64() {
                    Some(n) if f.ty == Ty::Number || n.fract() == 0.0 => n,
                    _ if f.ty == Ty::Integer => {
                        return err(format!("expected an integer, found {}", describe(v)));
                    }
                    _ => return err(format!("expected a number, found {}", describe(v))),
                };
                if let Some(all) = &f.one_of
                    && !all.iter().any(|a| a.as_f64() == Some(n))
                {
                    return err(format!("expected one of: {}", list(all)));
                }
                if let Some([lo, hi]) = f.between
                    && (lo.is_some_and(|lo| n < lo) || hi.is_some_and(|hi| n > hi))
                {
                    let side = |b: Option<f64>, inf: &str| b.map_or(inf.into(), |b| b.to_string());
                    return err(format!(
                        "value should be between {} and {}",
                        side(lo, "-inf"),
                        side(hi, "inf")
                    ));
                }
                if let Some(gt) = f.gt
                    && n <= gt
                {
                    err(format!("value must be greater than {gt}"));
                }
            }
            Ty::Boolean => {
                if !v.is_boolean() {
                    err(format!("expected a boolean, found {}", describe(v)));
                }
            }
            Ty::Array | Ty::Set => {
                // An empty mapping is an empty Lua table: Kong takes it as a list.
                let items: &[Value] = match v {
                    Value::Array(a) => a,
                    Value::Object(o) if o.is_empty() => &[],
                    _ => {
                        let want = if f.ty == Ty::Set { "a set" } else { "an array" };
                        return err(format!("expected {want}, found {}", describe(v)));
                    }
                };
                if let Some(min) = f.len_min
                    && items.len() < min
                {
                    return err(format!("length must be at least {min}"));
                }
                if let Some(max) = f.len_max
                    && items.len() > max
                {
                    return err(format!("length must be at most {max}"));
                }
                if let Some(el) = &f.elements {
                    let el = self.resolve(el);
                    for (i, item) in items.iter().enumerate() {
                        self.value(el, item, &format!("{at}[{i}]"), out);
                    }
                }
            }
            Ty::Map => {
                let empty = Map::new();
                let obj = match v {
                    Value::Object(o) => o,
                    Value::Array(a) if a.is_empty() => &empty,
                    _ => return err(format!("expected a map, found {}", describe(v))),
                };
                for (k, item) in obj {
                    let kat = join(at, &clip(k));
                    if let Some(kf) = &f.keys
                        && let Some(why) = self.string(self.resolve(kf), k)
                    {
                        out.push((kat.clone(), why));
                    }
                    if let Some(vf) = &f.values {
                        self.value(self.resolve(vf), item, &kat, out);
                    }
                }
            }
            Ty::Record => {
                let empty = Map::new();
                let obj = match v {
                    Value::Object(o) => o,
                    Value::Array(a) if a.is_empty() => &empty,
                    _ => return err(format!("expected a record, found {}", describe(v))),
                };
                static NONE: BTreeMap<String, Field> = BTreeMap::new();
                let fields = f.fields.as_ref().unwrap_or(&NONE);
                self.record(fields, f.shorthand_fields.as_ref(), obj, at, out);
                if !self.partial {
                    for check in &f.entity_checks {
                        entity_check(check, fields, self.shared, obj, at, out);
                    }
                    for v in &f.validators {
                        for why in validator(v, obj) {
                            out.push((at.to_string(), why));
                        }
                    }
                }
            }
        }
    }

    /// A string's own rules, in Kong's order; `None` when it passes.
    fn string(&self, f: &Field, s: &str) -> Option<String> {
        let len = s.chars().count();
        let min = f.len_min.unwrap_or(1);
        if len < min {
            return Some(format!("length must be at least {min}"));
        }
        if let Some(max) = f.len_max
            && len > max
        {
            return Some(format!("length must be at most {max}"));
        }
        if let Some(all) = &f.one_of {
            let (extra, newer): (&[Value], &[Value]) = match self.edition {
                "enterprise" => (
                    f.enterprise_one_of.as_deref().unwrap_or_default(),
                    later()
                        .one_of
                        .get(&(f as *const Field as usize))
                        .map_or(&[], Vec::as_slice),
                ),
                _ => (&[], &[]),
            };
            if !all
                .iter()
                .chain(extra)
                .chain(newer)
                .any(|a| a.as_str() == Some(s))
            {
                let all: Vec<Value> = all.iter().chain(extra).chain(newer).cloned().collect();
                return Some(format!("expected one of: {}", list(&all)));
            }
        }
        if let Some(all) = &f.not_one_of
            && all.iter().any(|a| a.as_str() == Some(s))
        {
            return Some(format!("must not be one of: {}", list(all)));
        }
        if let Some(p) = &f.pattern
            && !super::pcre::data(p).is_ok_and(|r| r.is_match(s.as_bytes()).unwrap_or(true))
        {
            return Some(
                f.err
                    .clone()
                    .unwrap_or_else(|| format!("invalid value: {}", shown(s))),
            );
        }
        for m in &f.match_none {
            if super::pcre::data(&m.pattern)
                .is_ok_and(|r| r.is_match(s.as_bytes()).unwrap_or(false))
            {
                return Some(m.err.clone());
            }
        }
        if f.is_regex
            && let Err(e) = compile(s)
        {
            return Some(format!("not a valid regex: {} ({e})", shown(s)));
        }
        match f.format.as_deref() {
            Some(name) => format(name, s).err(),
            None => None,
        }
    }
}

/// Kong's `one_of` list as its message prints it.
fn list(all: &[Value]) -> String {
    all.iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn clip(k: &str) -> String {
    super::rules::clip_key(k)
}

/// The named formats (Kong's `typedefs` custom validators). An unknown name
/// checks nothing; a unit test keeps every name in the data known.
pub fn format(name: &str, s: &str) -> Result<(), String> {
    match name {
        "host" => formats::host(s),
        "route_host" => formats::route_host(s),
        "url" => formats::url(s).map(|_| ()),
        "header_name" => formats::header_name(s).map_err(|_| format!("bad header name '{s}'")),
        "ip_or_cidr" => formats::ip_or_cidr(s),
        "path" => formats::service_path(s),
        // cors `origins`: `*` or a regex Kong's PCRE compiles.
        "asterisk_or_regex" if s == "*" || compile(s).is_ok() => Ok(()),
        "asterisk_or_regex" => Err(format!("'{s}' is not a valid regex")),
        // request-transformer: `name[:value]`, the name a header name.
        "header_pair" => header_pair(s, false),
        "header_rename" => header_pair(s, true),
        _ => Ok(()),
    }
}

/// The named custom validators [`validator`] knows.
pub const VALIDATORS: &[&str] = &["rate_limiting", "response_ratelimiting_periods"];

const PERIODS: [&str; 6] = ["second", "minute", "hour", "day", "month", "year"];

/// Kong's `validate_periods_order`: a longer period may not have a lower
/// limit. `the`: how the plugin's message starts (`The`/`the`).
fn periods_ascending(cfg: &Map<String, Value>, the: &str) -> Option<String> {
    let limit = |p: &str| cfg.get(p).and_then(Value::as_f64);
    for (i, lower) in PERIODS.iter().enumerate() {
        let Some(v1) = limit(lower) else { continue };
        for upper in &PERIODS[i + 1..] {
            if let Some(v2) = limit(upper)
                && v2 < v1
            {
                return Some(format!(
                    "{the} limit for {upper}({v2:.1}) cannot be lower than the limit for {lower}({v1:.1})"
                ));
            }
        }
    }
    None
}

/// A named custom validator of Kong's (code in Kong, so code here): the
/// problems it finds in a record.
fn validator(name: &str, cfg: &Map<String, Value>) -> Vec<String> {
    match name {
        // rate-limiting: periods in order; `sync_rate` for `redis` only.
        "rate_limiting" => {
            if let Some(why) = periods_ascending(cfg, "The") {
                return vec![why];
            }
            let policy = cfg.get("policy").and_then(Value::as_str).unwrap_or("local");
            let sync_rate = cfg.get("sync_rate").and_then(Value::as_f64).unwrap_or(-1.0);
            if policy != "redis" && sync_rate != -1.0 {
                vec!["sync_rate can only be used with the redis policy".into()]
            } else if policy == "redis" && sync_rate != -1.0 && sync_rate < 0.02 {
                vec!["sync_rate must be greater than 0.02, or -1 to disable".into()]
            } else {
                Vec::new()
            }
        }
        "response_ratelimiting_periods" => periods_ascending(cfg, "the").into_iter().collect(),
        _ => Vec::new(),
    }
}

/// The formats [`format`] knows.
pub const FORMATS: &[&str] = &[
    "host",
    "route_host",
    "url",
    "header_name",
    "ip_or_cidr",
    "path",
    "asterisk_or_regex",
    "header_pair",
    "header_rename",
];

/// request-transformer's `validate_headers`: the text before the first `:`
/// (and, for `rename`, the text after the colons) is a header name.
fn header_pair(s: &str, both: bool) -> Result<(), String> {
    let (name, value) = match s.find(':') {
        Some(i) => (&s[..i], s[i..].trim_start_matches(':')),
        None => (s, ""),
    };
    for part in std::iter::once(name).chain(both.then_some(value)) {
        if formats::header_name(part).is_err() {
            return Err(format!("'{part}' is not a valid header"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(name: &str, cfg: Value) -> Vec<Problem> {
        let mut out = Vec::new();
        let schema = plugin(name).expect("described");
        check_config(
            schema,
            cfg.as_object().expect("object"),
            false,
            true,
            &mut out,
        );
        out
    }

    fn walk<'a>(f: &'a Field, seen: &mut Vec<&'a str>) {
        if let Some(n) = &f.format {
            seen.push(n);
        }
        for sub in [&f.elements, &f.keys, &f.values].into_iter().flatten() {
            walk(sub, seen);
        }
        for fs in [&f.fields, &f.shorthand_fields].into_iter().flatten() {
            fs.values().for_each(|f| walk(f, seen));
        }
        if let Some(p) = &f.pattern {
            assert!(super::super::pcre::data(p).is_ok(), "{p}");
        }
        for v in &f.validators {
            assert!(VALIDATORS.contains(&v.as_str()), "validator {v}");
        }
    }

    #[test]
    fn the_data_parses_names_its_version_and_knows_its_formats() {
        let file = file().expect("plugin_schemas.json parses");
        assert_eq!(file.kong_version, super::super::KONG_VERSION);
        let mut seen = Vec::new();
        for p in file.plugins.values() {
            p.config.values().for_each(|f| walk(f, &mut seen));
        }
        file.shared.values().for_each(|f| walk(f, &mut seen));
        for f in seen {
            assert!(FORMATS.contains(&f), "unknown format {f}");
        }
        for (name, p) in &file.plugins {
            for v in &p.validators {
                assert!(VALIDATORS.contains(&v.as_str()), "{name}: validator {v}");
            }
            assert!(
                super::super::plugins::bundled(name).is_some(),
                "{name} is not bundled"
            );
            for f in p.config.values() {
                if let Some(r) = &f.reference {
                    assert!(file.shared.contains_key(r), "{name}: $ref {r}");
                }
            }
        }
    }

    #[test]
    fn every_bundled_plugin_is_described_once_but_the_unpublished() {
        let hand = file().expect("hand-read data");
        let ee = enterprise_file().expect("plugin_schemas_enterprise.json parses");
        assert_eq!(ee.kong_version, super::super::KONG_VERSION);
        assert!(
            ee.source.contains("Kong/developer.konghq.com"),
            "provenance"
        );
        assert!(ee.source.contains("MIT") && ee.source.contains("commit"));
        // application-registration has no 3.10 schema: its 3.9 one is used.
        assert!(ee.not_published.is_empty(), "{:?}", ee.not_published);
        let app_reg = &ee.plugins["application-registration"];
        assert_eq!(app_reg.published_version.as_deref(), Some("3.9"));
        assert!(app_reg.config["display_name"].required);
        for p in super::super::plugins::BUNDLED {
            let (h, e) = (
                hand.plugins.contains_key(p.name),
                ee.plugins.contains_key(p.name),
            );
            assert!(!(h && e), "{} is described twice", p.name);
            // Every OSS plugin is read by hand but the LLM ones (Kong's
            // large shared LLM schema): those come from the published one.
            let llm = p.name.starts_with("ai-proxy") || p.name.ends_with("-transformer");
            if !p.enterprise && !llm {
                assert!(h, "{} is not read by hand", p.name);
            }
            let published = !ee.not_published.iter().any(|n| n == p.name);
            assert_eq!(h || e, published, "{}", p.name);
            assert_eq!(is_converted(p.name), e, "{}", p.name);
        }
        for name in ee.plugins.keys() {
            assert!(super::super::plugins::bundled(name).is_some(), "{name}");
        }
        // The converted file is plain data: no typedefs, no code.
        assert!(ee.shared.is_empty());
        fn plain(f: &Field, at: &str) {
            assert!(f.reference.is_none() && f.validators.is_empty(), "{at}");
            assert!(f.pattern.is_none() && f.format.is_none(), "{at}");
            for sub in [&f.elements, &f.keys, &f.values].into_iter().flatten() {
                plain(sub, at);
            }
            for fs in [&f.fields, &f.shorthand_fields].into_iter().flatten() {
                fs.iter().for_each(|(k, f)| plain(f, &format!("{at}.{k}")));
            }
        }
        for (name, p) in &ee.plugins {
            assert!(
                p.validators.is_empty() && p.custom_checks.is_empty(),
                "{name}"
            );
            p.config
                .iter()
                .for_each(|(k, f)| plain(f, &format!("{name}.{k}")));
        }
    }

    #[test]
    fn later_versions_additions_to_hand_read_plugins_are_placed_and_enterprise_only() {
        assert_eq!(later().unplaced, Vec::<String>::new());
        let ee = enterprise_file().expect("parses");
        assert!(ee.later_fields.len() > 10 && !ee.later_one_of.is_empty());
        // A 3.13 field of basic-auth: taken on Enterprise, unknown on OSS.
        let cfg = json!({"brute_force_protection": {}});
        assert_eq!(ee_problems("basic-auth", cfg.clone()), []);
        assert_eq!(
            problems("basic-auth", cfg),
            [("brute_force_protection".into(), "unknown field".into())]
        );
        // Through the shared redis typedef, and a later enum value.
        let rl = json!({"second": 1, "policy": "redis", "redis": {"host": "r", "cloud_authentication": {}}});
        assert_eq!(ee_problems("rate-limiting", rl), []);
        assert_eq!(
            ee_problems("hmac-auth", json!({"algorithms": ["hmac-sha224"]})),
            []
        );
        assert_eq!(
            problems("hmac-auth", json!({"algorithms": ["hmac-sha224"]})).len(),
            1
        );
        // Still typed: a later field's own rules hold.
        let p = ee_problems("session", json!({"bind": "ip"}));
        assert_eq!(p.len(), 1, "{p:?}");
    }

    fn ee_problems(name: &str, cfg: Value) -> Vec<Problem> {
        let mut out = Vec::new();
        let schema = plugin(name).expect("described");
        check_config(
            schema,
            cfg.as_object().expect("object"),
            false,
            false,
            &mut out,
        );
        out
    }

    #[test]
    fn enterprise_plugins_are_checked_from_the_published_schemas() {
        // rate-limiting-advanced: required fields, enums, unknown fields.
        let ok = json!({"limit": [10], "window_size": [60], "strategy": "local"});
        assert_eq!(ee_problems("rate-limiting-advanced", ok), []);
        let p = ee_problems("rate-limiting-advanced", json!({"limit": [10]}));
        assert_eq!(p, [("window_size".into(), "required field missing".into())]);
        let p = ee_problems(
            "rate-limiting-advanced",
            json!({"limit": ["ten"], "window_size": [60], "strategy": "disk", "nope": 1}),
        );
        assert_eq!(
            p,
            [
                (
                    "limit[0]".into(),
                    "expected a number, found a string (\"ten\")".into()
                ),
                (
                    "strategy".into(),
                    "expected one of: cluster, local, redis".into()
                ),
                ("nope".into(), "unknown field".into()),
            ]
        );
        // Ranges, nested records, and Enterprise's Redis shorthand names.
        let p = ee_problems(
            "rate-limiting-advanced",
            json!({"limit": [1], "window_size": [1], "redis": {"port": 70000, "timeout": 5}}),
        );
        assert_eq!(
            p,
            [(
                "redis.port".into(),
                "value should be between 0 and 65535".into()
            )]
        );
        // An open-ended range (`minimum` alone) and a length.
        let p = ee_problems("xml-threat-protection", json!({"bla_threshold": 1}));
        assert_eq!(p[0].1, "value should be between 1024 and inf");
        let p = ee_problems("upstream-timeout", json!({"read_timeout": "5"}));
        assert_eq!(p[0].1, "expected an integer, found a string (\"5\")");
        // A config of no fields refuses every key.
        let p = ee_problems("app-dynamics", json!({"x": 1}));
        assert_eq!(p, [("x".into(), "unknown field".into())]);
        // The empty string: refused as Kong refuses it by default, but by
        // passwords and fields whose default is "" (Kong's `len_min = 0`).
        assert_eq!(
            ee_problems("upstream-oauth", json!({"oauth": {"token_endpoint": ""}})),
            [(
                "oauth.token_endpoint".into(),
                "length must be at least 1".into()
            )]
        );
        let redis = json!({"limit": [1], "window_size": [1], "redis": {"password": ""}});
        assert_eq!(ee_problems("rate-limiting-advanced", redis), []);
    }

    #[test]
    fn regexes_pcre_takes_compile_and_broken_ones_do_not() {
        for ok in [
            r"/api/v\d+/users/(?<id>[^/]+)$",
            r"/orders/(?P<id>\d+)",
            r"\/escaped\/slashes",
            r"/files/[\w\-.]+",
            r"(?i)/CaseLess",
            r"/look(?=ahead)",
            r"/(?!internal)[a-z]+",
            r"/(a)\1",
            r"/atomic(?>ab|a)c",
        ] {
            assert!(compile(ok).is_ok(), "{ok}");
        }
        for bad in [r"/(unclosed", r"/[a-", r"*star", r"x{2,1}"] {
            assert!(compile(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kong_words_for_each_rule() {
        let p = problems("tcp-log", json!({"host": "logs.example.com"}));
        assert_eq!(p, [("port".into(), "required field missing".into())]);
        let p = problems(
            "redirect",
            json!({"location": "https://x.example", "status_code": 600}),
        );
        assert_eq!(
            p,
            [(
                "status_code".into(),
                "value should be between 100 and 599".into()
            )]
        );
        let p = problems("request-transformer", json!({"add": ["a:b"], "nope": 1}));
        assert_eq!(p.len(), 2, "{p:?}");
        let p = problems(
            "proxy-cache",
            json!({"strategy": "memory", "response_code": [], "cache_ttl": -60}),
        );
        assert_eq!(
            p,
            [
                ("response_code".into(), "length must be at least 1".into()),
                ("cache_ttl".into(), "value must be greater than 0".into())
            ]
        );
        let p = problems("hmac-auth", json!({"algorithms": ["hmac-md5"]}));
        assert_eq!(p[0].0, "algorithms[0]");
        let p = problems(
            "http-log",
            json!({"http_endpoint": "http://x.example", "content_type": "text/plain"}),
        );
        assert_eq!(
            p[0].1,
            "expected one of: application/json, application/json; charset=utf-8"
        );
        let p = problems(
            "acme",
            json!({"account_email": "a@b.example", "storage": "disk"}),
        );
        assert_eq!(
            p,
            [(
                "storage".into(),
                "expected one of: kong, shm, redis, consul, vault".into()
            )]
        );
        let p = problems("request-termination", json!({"message": "x", "body": "y"}));
        assert_eq!(p[0].1, "message cannot be used with content_type or body");
        let p = problems("bot-detection", json!({"deny": ["(unclosed"]}));
        assert!(p[0].1.starts_with("not a valid regex: (unclosed"), "{p:?}");
        let p = problems("file-log", json!({"path": "/tmp/a&b.log"}));
        assert_eq!(p[0].1, "not a valid filename");
        assert!(problems("file-log", json!({"path": "/tmp/ok.log"})).is_empty());
        let p = problems("udp-log", json!({"host": "", "port": 9}));
        assert_eq!(p[0].1, "length must be at least 1");
    }
}
