//! Walks a parsed document against the decK 3.0 schema and extracts the model.
//!
//! Every problem becomes a `schema_error` with a path; the walk never stops at
//! the first one, so a person sees everything to fix in one pass.

use ahash::AHashMap;
use serde_json::{Map, Value};

use super::model::{Entity, Key, KeyKind, Model, Ref, RefBy, VaultRef};
use super::schema::{Coll, METADATA_KEYS, Req, Ty};
use crate::report::{ErrorKind, MemberError};

/// Reads a whole member document. Never fails: problems are in `Model::errors`.
pub fn read(doc: Value) -> Model {
    let mut w = Walker::default();
    let Value::Object(top) = doc else {
        w.error(
            "",
            "",
            format!(
                "a member config must be a mapping of top-level keys (`_format_version`, `services`, …), found {}",
                describe(&doc)
            ),
        );
        return w.model;
    };
    check_format_version(&mut w, top.get("_format_version"));
    w.index_canonical_names(&top);
    for (key, value) in top {
        if key == "_format_version" {
            continue;
        }
        if METADATA_KEYS.contains(&key.as_str()) {
            w.check_metadata(&key, &value);
            continue;
        }
        match Coll::from_name(&key) {
            Some(Coll::PluginConfigs) => w.plugin_configs(value),
            Some(coll) => w.top_collection(coll, value),
            None => w.error(
                &key,
                &key,
                format!(
                    "unknown top-level key `{key}`: neither decK 3.0 nor Kong's declarative format has it{}",
                    suggestion(&key)
                ),
            ),
        }
    }
    w.model
}

fn suggestion(key: &str) -> String {
    let close = Coll::ALL
        .iter()
        .map(|c| c.name())
        .chain(METADATA_KEYS)
        .find(|k| {
            k.trim_end_matches('s') == key.trim_end_matches('s')
                || k.replace('_', "") == key.replace(['_', '-'], "")
        });
    match close {
        Some(k) => format!(" (did you mean `{k}`?)"),
        None => String::new(),
    }
}

fn check_format_version(w: &mut Walker, v: Option<&Value>) {
    let fix = "set `_format_version: \"3.0\"` at the top of the file";
    match v {
        None => w.error("", "_format_version", format!("missing `_format_version`: {fix}")),
        Some(Value::String(s)) if s == "3.0" => {}
        // YAML reads an unquoted `3.0` as a number; decK means the same thing.
        Some(Value::Number(n)) if n.as_f64() == Some(3.0) => {}
        Some(Value::String(s)) if s.starts_with("1.") || s.starts_with("2.") => w.error(
            "",
            "_format_version",
            format!(
                "`_format_version` is \"{s}\", the pre-3.0 decK format: convert the file with `deck file convert --from kong-gateway-2.x --to kong-gateway-3.x`, then set \"3.0\""
            ),
        ),
        Some(other) => w.error(
            "",
            "_format_version",
            format!("`_format_version` must be \"3.0\", found {}", describe(other)),
        ),
    }
}

/// The entity a nested one sits under.
struct Parent<'a> {
    coll: Coll,
    /// The parent's name (or id when it has none), as references name it.
    ident: &'a str,
}

#[derive(Default)]
struct Walker {
    model: Model,
    /// Upstream and key-set ids mapped to their names, so `(upstream, target)`
    /// and `(set, kid)` keys compare equal whether written by id or by name.
    canonical: AHashMap<(Coll, String), String>,
}

impl Walker {
    fn error(&mut self, entity: &str, path: &str, message: String) {
        if self.model.errors.len() >= crate::report::MAX_MEMBER_ERRORS {
            self.model.more_errors += 1;
            return;
        }
        self.model.errors.push(MemberError::new(
            ErrorKind::SchemaError,
            entity,
            path,
            message,
        ));
    }

    fn index_canonical_names(&mut self, top: &Map<String, Value>) {
        for coll in [Coll::Upstreams, Coll::KeySets] {
            let Some(Value::Array(items)) = top.get(coll.name()) else {
                continue;
            };
            for item in items {
                if let (Some(Value::String(id)), Some(Value::String(name))) =
                    (item.get("id"), item.get("name"))
                {
                    self.canonical.insert((coll, id.clone()), name.clone());
                }
            }
        }
    }

    fn canonical(&self, coll: Coll, ident: &str) -> String {
        self.canonical
            .get(&(coll, ident.to_string()))
            .cloned()
            .unwrap_or_else(|| ident.to_string())
    }

    fn check_metadata(&mut self, key: &str, value: &Value) {
        let ok = match key {
            "_transform" => value.is_boolean(),
            "_workspace" => value.is_string(),
            _ => value.is_object(),
        };
        if !ok && !value.is_null() {
            let want = match key {
                "_transform" => "a boolean",
                "_workspace" => "a string",
                _ => "a mapping",
            };
            self.error(
                key,
                key,
                format!("`{key}` must be {want}, found {}", describe(value)),
            );
        }
    }

    fn plugin_configs(&mut self, value: Value) {
        let coll = Coll::PluginConfigs;
        let map = match value {
            Value::Object(m) => m,
            Value::Null => return,
            other => {
                self.error(
                    coll.name(),
                    coll.name(),
                    format!(
                        "`_plugin_configs` must be a mapping of name to plugin config, found {}",
                        describe(&other)
                    ),
                );
                return;
            }
        };
        for (name, config) in map {
            let path = format!("_plugin_configs.{name}");
            if !config.is_object() {
                self.error(
                    coll.name(),
                    &path,
                    format!(
                        "plugin config `{name}` must be a mapping, found {}",
                        describe(&config)
                    ),
                );
                continue;
            }
            self.check_name(coll, &path, "name", &name);
            // Plugins take these configs by reference (`_config`), so their
            // vault references must resolve like a plugin's own.
            scan_value(
                coll,
                &config,
                &path,
                &mut Vec::new(),
                &mut self.model.vault_refs,
            );
            self.model.entities.push(Entity {
                coll,
                path,
                label: format!("plugin config '{name}'"),
                keys: vec![Key {
                    kind: KeyKind::Name,
                    value: name.clone(),
                }],
                refs: Vec::new(),
                plugin: None,
            });
            self.model.plugin_configs.push((name, config));
        }
    }

    fn top_collection(&mut self, coll: Coll, value: Value) {
        let items = match value {
            Value::Array(items) => items,
            Value::Null => return,
            other => {
                self.error(
                    coll.name(),
                    coll.name(),
                    format!(
                        "`{}` must be a list of {} entries, found {}",
                        coll.name(),
                        coll.noun(),
                        describe(&other)
                    ),
                );
                return;
            }
        };
        let mut kept = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let path = format!("{}[{i}]", coll.name());
            match &item {
                Value::Object(obj) => self.entity(coll, obj, &path, None),
                other => {
                    self.error(
                        coll.name(),
                        &path,
                        format!(
                            "a {} must be a mapping, found {}",
                            coll.noun(),
                            describe(other)
                        ),
                    );
                    continue;
                }
            }
            kept.push(item);
        }
        if !kept.is_empty() {
            self.model.top.push((coll, kept));
        }
    }

    fn entity(
        &mut self,
        coll: Coll,
        obj: &Map<String, Value>,
        path: &str,
        parent: Option<Parent<'_>>,
    ) {
        self.check_types(coll, obj, path);
        self.check_required(coll, obj, path);

        let mut keys = Vec::new();
        if let Some(id) = obj.get("id").filter(|v| !v.is_null()) {
            match id.as_str() {
                Some(s) if uuid::Uuid::try_parse(s).is_ok() => keys.push(Key {
                    kind: KeyKind::Id,
                    value: s.to_string(),
                }),
                Some(s) => self.error(
                    coll.name(),
                    &format!("{path}.id"),
                    format!("{} `id` \"{}\" is not a valid UUID", coll.noun(), clip(s)),
                ),
                None => self.error(
                    coll.name(),
                    &format!("{path}.id"),
                    format!(
                        "{} `id` must be a UUID string, found {}",
                        coll.noun(),
                        describe(id)
                    ),
                ),
            }
        }
        for &(field, kind) in coll.name_keys() {
            if let Some(Value::String(s)) = obj.get(field)
                && self.check_name(coll, &format!("{path}.{field}"), field, s)
            {
                keys.push(Key {
                    kind,
                    value: s.clone(),
                });
            }
        }

        let mut refs = Vec::new();
        self.collect_refs(coll, obj, path, parent.is_some(), &mut refs);

        let ident = ident_of(coll, obj);
        match coll {
            Coll::Targets => {
                let upstream = match &parent {
                    Some(p) => Some(p.ident.to_string()),
                    None => refs
                        .iter()
                        .find(|r| r.target == Coll::Upstreams)
                        .map(|r| r.value.clone()),
                };
                if let (Some(up), Some(Value::String(t))) = (upstream, obj.get("target")) {
                    let up = self.canonical(Coll::Upstreams, &up);
                    keys.push(Key {
                        kind: KeyKind::UpstreamTarget,
                        value: format!("({up}, {t})"),
                    });
                }
            }
            Coll::Keys => {
                if let Some(Value::String(kid)) = obj.get("kid") {
                    let set = refs
                        .iter()
                        .find(|r| r.target == Coll::KeySets)
                        .map(|r| self.canonical(Coll::KeySets, &r.value))
                        .unwrap_or_default();
                    keys.push(Key {
                        kind: KeyKind::SetKid,
                        value: format!("({set}, {kid})"),
                    });
                }
            }
            Coll::Plugins => {
                if let Some(Value::String(name)) = obj.get("name") {
                    let scope = |f: &str| -> String {
                        refs.iter()
                            .find(|r| r.path.ends_with(&format!(".{f}")))
                            .map(|r| r.value.clone())
                            .unwrap_or_default()
                    };
                    let mut s = [
                        scope("service"),
                        scope("route"),
                        scope("consumer"),
                        scope("consumer_group"),
                    ];
                    if let Some(p) = &parent {
                        let slot = match p.coll {
                            Coll::Services => 0,
                            Coll::Routes => 1,
                            Coll::Consumers => 2,
                            _ => 3,
                        };
                        s[slot] = p.ident.to_string();
                    }
                    if parent.is_none() && s.iter().all(|x| x.is_empty()) {
                        keys.push(Key {
                            kind: KeyKind::GlobalPlugin,
                            value: name.clone(),
                        });
                    } else {
                        keys.push(Key {
                            kind: KeyKind::PluginScope,
                            value: format!(
                                "{name} (service={}, route={}, consumer={}, consumer_group={})",
                                s[0], s[1], s[2], s[3]
                            ),
                        });
                    }
                }
            }
            _ => {}
        }

        self.scan_vault_refs(coll, obj, path);
        let plugin = if coll == Coll::Plugins {
            obj.get("name").and_then(Value::as_str).map(str::to_string)
        } else {
            None
        };
        let label = match &ident {
            Some(i) => format!("{} '{}'", coll.noun(), i),
            None => format!("{} at {path}", coll.noun()),
        };
        self.model.entities.push(Entity {
            coll,
            path: path.to_string(),
            label,
            keys,
            refs,
            plugin,
        });

        // An unnamed parent is told apart by its path: two unnamed routes each
        // with a nested `key-auth` are two scopes, not a duplicate.
        let me = ident.unwrap_or_else(|| path.to_string());
        for &(field, child) in coll.nested() {
            let Some(v) = obj.get(field) else { continue };
            match v {
                Value::Null => {}
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let cpath = format!("{path}.{field}[{i}]");
                        match item {
                            Value::Object(o) => {
                                self.entity(child, o, &cpath, Some(Parent { coll, ident: &me }))
                            }
                            other => self.error(
                                child.name(),
                                &cpath,
                                format!(
                                    "a {} must be a mapping, found {}",
                                    child.noun(),
                                    describe(other)
                                ),
                            ),
                        }
                    }
                }
                other => self.error(
                    coll.name(),
                    &format!("{path}.{field}"),
                    format!(
                        "`{field}` must be a list of {} entries, found {}",
                        child.noun(),
                        describe(other)
                    ),
                ),
            }
        }
    }

    /// Names and keys: non-empty, no control characters (SPEC §5.1).
    fn check_name(&mut self, coll: Coll, path: &str, field: &str, s: &str) -> bool {
        if s.is_empty() {
            self.error(
                coll.name(),
                path,
                format!("{} `{field}` must not be empty", coll.noun()),
            );
            false
        } else if s.chars().any(char::is_control) {
            self.error(
                coll.name(),
                path,
                format!(
                    "{} `{field}` \"{}\" contains a control character",
                    coll.noun(),
                    s.escape_debug()
                ),
            );
            false
        } else {
            true
        }
    }

    fn check_types(&mut self, coll: Coll, obj: &Map<String, Value>, path: &str) {
        for &(field, ty) in coll.fields() {
            let Some(v) = obj.get(field) else { continue };
            if !has_type(v, ty) {
                self.error(
                    coll.name(),
                    &format!("{path}.{field}"),
                    format!(
                        "{} field `{field}` must be {}, found {}{}",
                        coll.noun(),
                        ty.describe(),
                        describe(v),
                        yaml11_hint(v, ty)
                    ),
                );
            }
        }
    }

    fn check_required(&mut self, coll: Coll, obj: &Map<String, Value>, path: &str) {
        let present = |f: &str| match obj.get(f) {
            None | Some(Value::Null) => false,
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => !o.is_empty(),
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        };
        for req in coll.required() {
            match req {
                Req::One(f) if !present(f) => self.error(
                    coll.name(),
                    &format!("{path}.{f}"),
                    format!("{} needs `{f}`", coll.noun()),
                ),
                Req::Any(fs) if !fs.iter().any(|f| present(f)) => {
                    let list = fs
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let why = match coll {
                        Coll::Routes => " (Kong needs at least one attribute to match requests on)",
                        _ => "",
                    };
                    self.error(
                        coll.name(),
                        path,
                        format!("{} needs one of {list}{why}", coll.noun()),
                    )
                }
                _ => {}
            }
        }
    }

    /// The ID associations of SPEC §5.2 written on this entity.
    fn collect_refs(
        &mut self,
        coll: Coll,
        obj: &Map<String, Value>,
        path: &str,
        nested: bool,
        out: &mut Vec<Ref>,
    ) {
        let fields: &[(&str, Coll)] = match coll {
            Coll::Routes if !nested => &[("service", Coll::Services)],
            Coll::Targets if !nested => &[("upstream", Coll::Upstreams)],
            Coll::Snis if !nested => &[("certificate", Coll::Certificates)],
            Coll::Plugins => &[
                ("service", Coll::Services),
                ("route", Coll::Routes),
                ("consumer", Coll::Consumers),
                ("consumer_group", Coll::ConsumerGroups),
            ],
            Coll::Keys => &[("set", Coll::KeySets)],
            Coll::DegraphqlRoutes | Coll::GraphqlCostDecorations => &[("service", Coll::Services)],
            Coll::Services => &[("client_certificate", Coll::Certificates)],
            Coll::ConsumerGroupConsumers => &[
                ("consumer", Coll::Consumers),
                ("consumer_group", Coll::ConsumerGroups),
            ],
            c if c.is_credential() && !nested => &[("consumer", Coll::Consumers)],
            _ => &[],
        };
        for &(field, target) in fields {
            if let Some(v) = obj.get(field) {
                self.one_ref(coll, v, format!("{path}.{field}"), target, out);
            }
        }
        let lists: &[(&str, Coll)] = match coll {
            Coll::Services => &[("ca_certificates", Coll::CaCertificates)],
            Coll::Consumers => &[("groups", Coll::ConsumerGroups)],
            Coll::ConsumerGroups => &[("consumers", Coll::Consumers)],
            _ => &[],
        };
        for &(field, target) in lists {
            match obj.get(field) {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) => {
                    for (i, v) in items.iter().enumerate() {
                        self.one_ref(coll, v, format!("{path}.{field}[{i}]"), target, out);
                    }
                }
                Some(other) => self.error(
                    coll.name(),
                    &format!("{path}.{field}"),
                    format!("`{field}` must be a list, found {}", describe(other)),
                ),
            }
        }
    }

    /// A reference is a plain string (id or name) or a mapping `{id|name|username}`.
    fn one_ref(&mut self, coll: Coll, v: &Value, path: String, target: Coll, out: &mut Vec<Ref>) {
        let name_field = if target == Coll::Consumers {
            "username"
        } else {
            "name"
        };
        let (by, value) = match v {
            Value::Null => return,
            Value::String(s) => (RefBy::IdOrName, s.clone()),
            Value::Object(o) => {
                match (o.get("id"), o.get(name_field)) {
                    (Some(Value::String(id)), _) => (RefBy::Id, id.clone()),
                    (_, Some(Value::String(n))) => (RefBy::Name, n.clone()),
                    _ => {
                        self.error(coll.name(), &path, format!("a reference to a {} must give its `id` or `{name_field}` as a string", target.noun()));
                        return;
                    }
                }
            }
            other => {
                self.error(coll.name(), &path, format!("a reference to a {} must be a string or a mapping with `id` or `{name_field}`, found {}", target.noun(), describe(other)));
                return;
            }
        };
        if value.is_empty() {
            self.error(
                coll.name(),
                &path,
                format!("a reference to a {} must not be empty", target.noun()),
            );
            return;
        }
        out.push(Ref {
            path,
            target,
            by,
            value,
        });
    }

    /// Finds `{vault://PREFIX/…}` in every string of the entity's own fields.
    fn scan_vault_refs(&mut self, coll: Coll, obj: &Map<String, Value>, path: &str) {
        let nested = coll.nested();
        let mut at = Vec::new();
        for (k, v) in obj {
            if nested.iter().any(|(f, _)| f == k) {
                continue;
            }
            at.push(Seg::Key(k));
            scan_value(coll, v, path, &mut at, &mut self.model.vault_refs);
            at.pop();
        }
    }
}

/// One step of a path below an entity: `.key` or `[index]`.
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Finds vault references in `v`, which sits at `base` followed by `at`. A
/// path is spelled out only for a string that holds a reference: formatting
/// one for every value visited took a fifth of building a member.
fn scan_value<'a>(
    coll: Coll,
    v: &'a Value,
    base: &str,
    at: &mut Vec<Seg<'a>>,
    out: &mut Vec<VaultRef>,
) {
    match v {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(i) = rest.find("{vault://") {
                let after = &rest[i + "{vault://".len()..];
                let end = after.find('}').unwrap_or(after.len());
                let body = &after[..end];
                let prefix = body.split('/').next().unwrap_or("");
                out.push(VaultRef {
                    coll,
                    path: spell(base, at),
                    prefix: prefix.to_string(),
                    reference: format!("{{vault://{body}}}"),
                });
                rest = &after[end..];
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(Seg::Index(i));
                scan_value(coll, item, base, at, out);
                at.pop();
            }
        }
        Value::Object(o) => {
            for (k, item) in o {
                at.push(Seg::Key(k));
                scan_value(coll, item, base, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// `services[0].plugins[1].config.redis.password` from its parts.
fn spell(base: &str, at: &[Seg<'_>]) -> String {
    use std::fmt::Write;
    let mut path = base.to_string();
    for seg in at {
        match seg {
            Seg::Key(k) => {
                path.push('.');
                path.push_str(k);
            }
            Seg::Index(i) => {
                let _ = write!(path, "[{i}]");
            }
        }
    }
    path
}

/// The name a reference to this entity would use: its name-like key, else its id.
fn ident_of(coll: Coll, obj: &Map<String, Value>) -> Option<String> {
    let fields: &[&str] = match coll {
        Coll::Consumers => &["username", "custom_id", "id"],
        Coll::Targets => &["target", "id"],
        Coll::Acls => &["group", "id"],
        Coll::KeyauthCredentials | Coll::JwtSecrets => &["id", "key"],
        Coll::BasicauthCredentials | Coll::HmacauthCredentials => &["username", "id"],
        Coll::Oauth2Credentials => &["client_id", "name", "id"],
        Coll::Vaults => &["prefix", "id"],
        Coll::Keys => &["name", "kid", "id"],
        Coll::DegraphqlRoutes => &["uri", "id"],
        Coll::Plugins => &["instance_name", "name", "id"],
        _ => &["name", "id"],
    };
    fields.iter().find_map(|f| {
        obj.get(*f)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    })
}

/// YAML 1.1 spelled booleans `yes`/`no`/`on`/`off`; YAML 1.2 (and decK) reads them as text.
fn yaml11_hint(v: &Value, ty: Ty) -> &'static str {
    let yaml11 = ["yes", "no", "on", "off", "y", "n"];
    match v {
        Value::String(s) if ty == Ty::Bool && yaml11.contains(&s.to_ascii_lowercase().as_str()) => {
            "; YAML 1.2 reads it as text, so write `true` or `false`"
        }
        _ => "",
    }
}

fn has_type(v: &Value, ty: Ty) -> bool {
    match (ty, v) {
        (_, Value::Null) => true,
        (Ty::Str, Value::String(_)) => true,
        (Ty::Int, Value::Number(n)) => n.is_i64() || n.is_u64(),
        (Ty::Num, Value::Number(_)) => true,
        (Ty::Bool, Value::Bool(_)) => true,
        (Ty::Obj, Value::Object(_)) => true,
        (Ty::List, Value::Array(_)) => true,
        (Ty::StrList, Value::Array(items)) => items.iter().all(Value::is_string),
        _ => false,
    }
}

/// "a string (\"80\")", "a list of 3 items", …: what a value is, shortly.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) => format!("a string (\"{}\")", clip(s)),
        Value::Array(a) if a.iter().all(Value::is_string) || a.is_empty() => {
            format!("a list of {} item(s)", a.len())
        }
        Value::Array(a) => format!("a list of {} item(s), not all strings", a.len()),
        Value::Object(_) => "a mapping".into(),
    }
}

fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out.escape_debug().to_string()
}
