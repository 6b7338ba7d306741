//! Walks a parsed document against the decK 3.0 schema and extracts the model.
//!
//! Every problem becomes a `schema_error` with a path; the walk never stops at
//! the first one, so a person sees everything to fix in one pass.

use super::value::get_field;
use ahash::AHashMap;
use serde_json::{Map, Value};

use super::Checks;
use super::kong::{self, KongTarget, PluginStatus, plugins, rules};
use super::model::{
    EntityKey, EntityRef, Fragments, Key, KeyKind, Model, Ref, RefBy, RouteMatch, VaultRef,
};
use super::schema::{Coll, METADATA_KEYS, Req, Ty, custom_entity_coll};
use super::stream::{Listed, Source};
use crate::intern::Interner;
use crate::report::{ErrorKind, MemberError, Note, quote};

/// Reads a whole member document for the given data planes. Never fails:
/// problems are in `Model::errors`.
pub fn read(doc: Value, target: &KongTarget, interner: &Interner, checks: Checks) -> Model {
    let mut w = Walker::new(target, interner, checks);
    let Value::Object(top) = doc else {
        w.error(
            "",
            "",
            format!(
                "a member config must be a mapping of top-level keys (`_format_version`, `services`, …), found {}",
                describe(&doc)
            ),
        );
        return w.finish(None);
    };
    check_format_version(&mut w, top.get("_format_version"));
    for coll in [Coll::Upstreams, Coll::KeySets] {
        if let Some(Value::Array(items)) = top.get(coll.name()) {
            items
                .iter()
                .for_each(|item| w.index_canonical_name(coll, item));
        }
    }
    if let Some(Value::Object(configs)) = top.get("_plugin_configs") {
        w.set_plugin_config_map(configs);
    }
    // The tree is at hand: Kong's form, if needed, is built from the
    // entities kept here (only the collections it may read) rather than
    // parsed again.
    let mut kept: Vec<(Coll, Vec<Value>)> = Vec::new();
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
            Some(coll) => match value {
                Value::Array(items) => {
                    w.begin(coll, !items.is_empty());
                    let mut objects = Vec::with_capacity(items.len());
                    for (i, item) in items.into_iter().enumerate() {
                        if w.item(coll, i, &item) {
                            objects.push(item);
                        }
                    }
                    w.end(coll);
                    if !objects.is_empty() && kong_reads(w.model.deck_only, coll) {
                        kept.push((coll, objects));
                    }
                }
                other => w.not_a_list(coll, &other),
            },
            None => w.unknown_key(&key),
        }
    }
    let kong = w.kong_needed().then_some(kept);
    w.finish(kong)
}

/// Reads a member document an entity at a time (`config::stream`: JSON, or
/// YAML in decK's subset): the same model as [`read`] of the parsed
/// document, without ever holding the document's tree. `None` when the
/// source gives up (invalid, another root, a duplicate key, outside the
/// subset): the caller then parses the whole document, which words any error.
pub fn read_streamed(
    src: &mut dyn Source,
    target: &KongTarget,
    interner: &Interner,
    checks: Checks,
    input_len: usize,
) -> Option<Model> {
    let entries = src.entries().to_vec();
    let find = |k: &str| entries.iter().find(|e| e.key == k);
    let mut w = Walker::new(target, interner, checks);
    // The decK form is about as long as the input (compact, but pretty input
    // is longer): reserved once, no doubling copies of a big member's bytes.
    // Pages never written are never resident.
    w.fragments.buf.reserve(input_len);
    let version = match find("_format_version") {
        Some(e) => Some(src.value(e)?),
        None => None,
    };
    check_format_version(&mut w, version.as_ref());
    for coll in [Coll::Upstreams, Coll::KeySets] {
        if let Some(e) = find(coll.name()) {
            src.items(e, &mut |item| w.index_canonical_name(coll, &item))?;
        }
    }
    let mut plugin_configs = match find("_plugin_configs") {
        Some(e) => Some(src.value(e)?),
        None => None,
    };
    if let Some(Value::Object(configs)) = &plugin_configs {
        w.set_plugin_config_map(configs);
    }
    for e in &entries {
        let key = e.key.as_str();
        if key == "_format_version" {
            continue;
        }
        if METADATA_KEYS.contains(&key) {
            let value = src.value(e)?;
            w.check_metadata(key, &value);
            continue;
        }
        match Coll::from_name(key) {
            Some(Coll::PluginConfigs) => w.plugin_configs(plugin_configs.take()?),
            Some(coll) => {
                // `begin` is told whether the list has entries: at its first.
                let mut i = 0;
                let listed = src.items(e, &mut |item| {
                    if i == 0 {
                        w.begin(coll, true);
                    }
                    w.item(coll, i, &item);
                    i += 1;
                })?;
                match listed {
                    Listed::Items => {
                        if i == 0 {
                            w.begin(coll, false);
                        }
                        w.end(coll);
                    }
                    Listed::Not(value) => w.not_a_list(coll, &value),
                }
            }
            None => {
                // Checked for syntax like every other value.
                src.value(e)?;
                w.unknown_key(key);
            }
        }
    }
    let kong = if w.kong_needed() {
        // Kong's form needs the collections it rewrites, and those naming
        // consumers and groups, as trees: read again, one at a time.
        let marked = w.model.deck_only;
        let mut kept = Vec::new();
        for e in &entries {
            let Some(coll) = Coll::from_name(&e.key).filter(|c| kong_reads(marked, *c)) else {
                continue;
            };
            if coll == Coll::PluginConfigs {
                continue;
            }
            let mut objects = Vec::new();
            src.items(e, &mut |item| {
                if item.is_object() {
                    objects.push(item);
                }
            })?;
            if !objects.is_empty() {
                kept.push((coll, objects));
            }
        }
        Some(kept)
    } else {
        None
    };
    Some(w.finish(kong))
}

/// Whether `declarative::kong_form` reads a top-level collection: those it
/// rewrites (marked in `deck_only`), and those naming consumers and groups
/// or receiving entities from others.
fn kong_reads(deck_only: u64, coll: Coll) -> bool {
    deck_only & (1 << (coll as u64)) != 0
        || matches!(
            coll,
            Coll::Consumers
                | Coll::ConsumerGroups
                | Coll::ConsumerGroupConsumers
                | Coll::DegraphqlRoutes
                | Coll::GraphqlCostDecorations
        )
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
    /// Its index in `Model::entities`.
    entity: u32,
    /// The parent's name (or id when it has none), as references name it.
    ident: &'a str,
    /// The parent itself, so a nested foreign key can be compared with it.
    obj: &'a Map<String, Value>,
}

/// Where an entity being walked sits.
enum At<'a> {
    Top(usize),
    Nested(&'a Parent<'a>, usize, usize),
}

struct Walker<'i> {
    model: Model,
    target: KongTarget,
    interner: &'i Interner,
    /// Plugin names whose config is not modelled, already noted.
    noted: ahash::AHashSet<String>,
    /// The top-level collection being walked.
    top: Option<Coll>,
    /// `_plugin_configs`, by name: a plugin's `_config` fills its config.
    plugin_config_map: AHashMap<String, Map<String, Value>>,
    /// `_plugin_configs` entries in file order.
    plugin_configs: Vec<(String, Value)>,
    /// Upstream and key-set ids mapped to their names, so `(upstream, target)`
    /// and `(set, kid)` keys compare equal whether written by id or by name.
    canonical: AHashMap<(Coll, String), String>,
    /// The decK form, written as each top-level entity is checked.
    fragments: Fragments,
    /// The collection being written: where it starts, how many so far.
    open: (usize, usize),
    /// `Checks::Trusted`: the checks that only find errors are skipped.
    trusted: bool,
    /// CA certificates by their PEM's base64 text, with their path: Kong's
    /// `cert_digest` (the certificate's SHA-256) is unique.
    ca_digests: AHashMap<String, String>,
    /// ACLs without an `id`, by (consumer as written, group), with their
    /// path: Kong derives their ids from that cache key, so two collide.
    acl_keys: AHashMap<(String, String), String>,
}

impl<'i> Walker<'i> {
    fn new(target: &KongTarget, interner: &'i Interner, checks: Checks) -> Walker<'i> {
        Walker {
            model: Model::default(),
            target: target.clone(),
            interner,
            noted: Default::default(),
            top: None,
            plugin_config_map: AHashMap::new(),
            plugin_configs: Vec::new(),
            canonical: AHashMap::new(),
            fragments: Fragments::default(),
            open: (0, 0),
            trusted: checks == Checks::Trusted,
            ca_digests: AHashMap::new(),
            acl_keys: AHashMap::new(),
        }
    }

    fn error(&mut self, entity: &str, path: &str, message: String) {
        self.error_of(ErrorKind::SchemaError, entity, path, message);
    }

    fn error_of(&mut self, kind: ErrorKind, entity: &str, path: &str, message: String) {
        if self.model.errors.len() >= crate::report::MAX_MEMBER_ERRORS {
            self.model.more_errors += 1;
            return;
        }
        self.model
            .errors
            .push(MemberError::new(kind, entity, path, message));
    }

    fn index_canonical_name(&mut self, coll: Coll, item: &Value) {
        if let (Some(Value::String(id)), Some(Value::String(name))) =
            (item.get("id"), item.get("name"))
        {
            self.canonical.insert((coll, id.clone()), name.clone());
        }
    }

    fn set_plugin_config_map(&mut self, configs: &Map<String, Value>) {
        // Plugins may name them (`_config`) before the file defines them.
        self.plugin_config_map = configs
            .iter()
            .filter_map(|(k, v)| v.as_object().map(|o| (k.clone(), o.clone())))
            .collect();
    }

    fn unknown_key(&mut self, key: &str) {
        let short = rules::clip_key(key);
        self.error(
            "",
            &short,
            format!(
                "unknown top-level key {}: neither decK 3.0 nor Kong's declarative format has it{}",
                quote(key),
                suggestion(key)
            ),
        )
    }

    /// Whether Kong's form may differ from decK's: only then is it built.
    fn kong_needed(&self) -> bool {
        !self.plugin_configs.is_empty() || self.model.deck_only != 0
    }

    /// The model, once every top-level key is walked; `kept` holds the
    /// top-level entities Kong's form needs (see `kong_needed`).
    fn finish(mut self, kept: Option<Vec<(Coll, Vec<Value>)>>) -> Model {
        if self.target.is_oss() {
            // Kong Gateway OSS ships the `env` vault only.
            let refs: Vec<(Coll, String, String)> = self
                .model
                .vault_refs
                .iter()
                .filter(|v| {
                    rules::VAULT_BACKENDS_EE.contains(&v.prefix.as_str())
                        && !rules::VAULT_BACKENDS_OSS.contains(&v.prefix.as_str())
                })
                .map(|v| (v.coll, v.path.clone(), v.prefix.clone()))
                .collect();
            for (coll, path, prefix) in refs {
                self.error(
                    coll.name(),
                    &path,
                    format!(
                        "`{{vault://{prefix}/…}}` needs Kong Gateway Enterprise (the `{prefix}` vault); the target data planes run Kong Gateway OSS, which ships `env` only"
                    ),
                );
            }
        }
        if !self.plugin_configs.is_empty() {
            let f = &mut self.fragments;
            let start = f.buf.len();
            for (i, (name, cfg)) in self.plugin_configs.iter().enumerate() {
                if i > 0 {
                    f.buf.push(b',');
                }
                let _ = serde_json::to_writer(&mut f.buf, name);
                f.buf.push(b':');
                let _ = serde_json::to_writer(&mut f.buf, cfg);
            }
            f.spans.push((
                Coll::PluginConfigs,
                start..f.buf.len(),
                self.plugin_configs.len(),
            ));
        }
        self.model.kong = kept
            .and_then(|top| {
                super::declarative::kong_form(&top, &self.plugin_configs, self.model.deck_only)
            })
            .map(|k| {
                let mut f = Fragments::default();
                for (coll, items) in &k.changed {
                    f.push_all(*coll, items);
                }
                (f, k.dropped)
            });
        self.fragments.buf = super::model::fit(std::mem::take(&mut self.fragments.buf));
        self.model.fragments = self.fragments;
        self.model.entities.shrink_to_fit();
        self.model.keys.shrink_to_fit();
        self.model
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
            "_workspace" | "_comment" => value.is_string(),
            "_ignore" => value.is_array(),
            _ => value.is_object(),
        };
        if !ok && !value.is_null() {
            let want = match key {
                "_transform" => "a boolean",
                "_workspace" | "_comment" => "a string",
                "_ignore" => "a list",
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
            let entity = self.model.entities.push_named(coll, &name);
            self.model.keys.push(EntityKey {
                entity,
                kind: KeyKind::Name,
                sym: self.interner.intern(&name),
            });
            self.plugin_configs.push((name, config));
        }
    }

    /// A top-level collection that is not a list.
    fn not_a_list(&mut self, coll: Coll, value: &Value) {
        if value.is_null() {
            return;
        }
        self.error(
            coll.name(),
            coll.name(),
            format!(
                "`{}` must be a list of {} entries, found {}",
                coll.name(),
                coll.noun(),
                describe(value)
            ),
        );
    }

    /// Starts a top-level collection (a list; `any`: it has entries).
    fn begin(&mut self, coll: Coll, any: bool) {
        if self.target.is_oss() && coll.enterprise_only() && any {
            self.error(
                coll.name(),
                coll.name(),
                format!(
                    "`{}` needs Kong Gateway Enterprise ({}s are an Enterprise feature); the target data planes run Kong Gateway OSS",
                    coll.name(),
                    coll.noun()
                ),
            );
        }
        self.top = Some(coll);
        if coll == Coll::CustomEntities {
            self.deck_only(coll);
        }
        self.open = (self.fragments.buf.len(), 0);
    }

    /// Checks entry `i` of a top-level collection and writes it to the
    /// decK form; false (and an error) when it is not a mapping.
    fn item(&mut self, coll: Coll, i: usize, item: &Value) -> bool {
        let path = format!("{}[{i}]", coll.name());
        let Value::Object(obj) = item else {
            self.error(
                coll.name(),
                &path,
                format!(
                    "a {} must be a mapping, found {}",
                    coll.noun(),
                    describe(item)
                ),
            );
            return false;
        };
        self.entity(coll, obj, &path, At::Top(i));
        if self.open.1 > 0 {
            self.fragments.buf.push(b',');
        }
        // Serializing a `Value` cannot fail: keys are strings, numbers finite.
        let _ = serde_json::to_writer(&mut self.fragments.buf, item);
        self.open.1 += 1;
        true
    }

    fn end(&mut self, coll: Coll) {
        let (start, count) = self.open;
        if count > 0 {
            self.fragments
                .spans
                .push((coll, start..self.fragments.buf.len(), count));
        }
    }

    fn entity(&mut self, coll: Coll, obj: &Map<String, Value>, path: &str, at: At<'_>) {
        let parent = match at {
            At::Top(_) => None,
            At::Nested(p, _, _) => Some(p),
        };
        // Each of these only finds errors; a trusted config has none.
        if !self.trusted {
            self.check_types(coll, obj, path);
            self.check_required(coll, obj, path);
            self.check_extras(coll, obj, path);
        }
        let deck_key = match coll {
            Coll::Plugins => "_config",
            Coll::Consumers => "groups",
            Coll::ConsumerGroups => "consumers",
            _ => "",
        };
        if !deck_key.is_empty() && obj.contains_key(deck_key) {
            self.deck_only(coll);
        }
        if !self.trusted {
            self.kong_rules(coll, obj, path, parent);
        }

        let mut keys = Vec::new();
        if let Some(id) = get_field(obj, "id").filter(|v| !v.is_null()) {
            match id.as_str() {
                Some(s) if uuid::Uuid::try_parse(s).is_ok() => keys.push(Key {
                    kind: KeyKind::Id,
                    value: s.to_string(),
                }),
                Some(s) => self.error(
                    coll.name(),
                    &format!("{path}.id"),
                    format!("{} `id` {} is not a valid UUID", coll.noun(), quote(s)),
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
            if let Some(Value::String(s)) = get_field(obj, field)
                && (self.trusted
                    || good_name(s)
                    || self.check_name(coll, &format!("{path}.{field}"), field, s))
            {
                keys.push(Key {
                    kind,
                    value: s.clone(),
                });
            }
        }

        let mut refs = Vec::new();
        self.collect_refs(coll, obj, path, parent.is_some(), &mut refs);
        match coll {
            Coll::Plugins => self.plugin(obj, path, parent.map(|p| p.coll), &mut refs),
            Coll::CustomEntities => self.custom_entity(obj, path, &mut refs),
            Coll::Acls => {
                if let Some(Value::String(g)) = get_field(obj, "group") {
                    self.model.acl_groups.push((g.clone(), path.to_string()));
                }
            }
            // What the overlap warnings read; not its service, which they
            // never compared (a string a route kept for nothing).
            Coll::Routes => {
                if let Some(m) = RouteMatch::read(obj, path) {
                    self.model.routes.push(m);
                }
            }
            _ => {}
        }

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
                if let (Some(up), Some(Value::String(t))) = (upstream, get_field(obj, "target")) {
                    let up = self.canonical(Coll::Upstreams, &up);
                    keys.push(Key {
                        kind: KeyKind::UpstreamTarget,
                        value: format!("({up}, {t})"),
                    });
                }
            }
            Coll::Keys => {
                if let Some(Value::String(kid)) = get_field(obj, "kid") {
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
                if let Some(Value::String(name)) = get_field(obj, "name") {
                    let scope = |f: &str| -> String {
                        refs.iter()
                            .find(|r| {
                                r.path
                                    .strip_suffix(f)
                                    .is_some_and(|head| head.ends_with('.'))
                            })
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
                    // Kong loads two plugins of one scope when one has its
                    // own `id` (the later one wins), so such a copy is not
                    // a scope key.
                    let own_id = get_field(obj, "id").is_some_and(Value::is_string);
                    if parent.is_none() && s.iter().all(|x| x.is_empty()) {
                        keys.push(Key {
                            kind: KeyKind::GlobalPlugin,
                            value: name.clone(),
                        });
                    } else if !own_id {
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
        let app_auth = coll == Coll::Plugins
            && get_field(obj, "name").and_then(Value::as_str) == Some("konnect-application-auth");
        let entity = match at {
            At::Top(i) => self.model.entities.push_top(coll, i),
            At::Nested(p, field, i) => self.model.entities.push_nested(p.entity, field, coll, i),
        };
        for k in keys {
            self.model.keys.push(EntityKey {
                entity,
                kind: k.kind,
                sym: self.interner.intern(&k.value),
            });
        }
        if !refs.is_empty() {
            let label = match &ident {
                Some(i) => format!("{} {}", coll.noun(), quote(i)),
                None => format!("{} at {path}", coll.noun()),
            };
            self.model.labels.push((entity, label));
            for r in refs {
                self.model.refs.push(EntityRef {
                    entity,
                    path: r.path,
                    target: r.target,
                    by: r.by,
                    value: self.interner.intern(&r.value),
                });
            }
        }
        if app_auth {
            self.model.app_auth.push(entity);
        }

        // An unnamed parent is told apart by its path: two unnamed routes each
        // with a nested `key-auth` are two scopes, not a duplicate.
        let me = ident.unwrap_or_else(|| path.to_string());
        let me_parent = Parent {
            coll,
            entity,
            ident: &me,
            obj,
        };
        for (fi, &(field, child)) in coll.nested().iter().enumerate() {
            let Some(v) = get_field(obj, field) else {
                continue;
            };
            match v {
                Value::Null => {}
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let cpath = format!("{path}.{field}[{i}]");
                        match item {
                            Value::Object(o) => {
                                self.entity(child, o, &cpath, At::Nested(&me_parent, fi, i))
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

    /// Marks the top-level collection being walked as holding decK-only keys.
    fn deck_only(&mut self, coll: Coll) {
        if let Some(top) = self.top.or(Some(coll)) {
            self.model.deck_only |= 1 << (top as u64);
        }
    }

    /// Kong's `_comment` (a string) and `_ignore` (a list), allowed on every entity.
    fn check_extras(&mut self, coll: Coll, obj: &Map<String, Value>, path: &str) {
        for (f, ok, want) in [
            (
                "_comment",
                get_field(obj, "_comment").is_none_or(Value::is_string),
                "a string",
            ),
            (
                "_ignore",
                get_field(obj, "_ignore").is_none_or(Value::is_array),
                "a list",
            ),
        ] {
            if !ok {
                let v = &obj[f];
                self.error(
                    coll.name(),
                    &format!("{path}.{f}"),
                    format!("`{f}` must be {want}, found {}", describe(v)),
                );
            }
        }
    }

    /// Kong Gateway's own rules for this entity (`kong::rules`), and the
    /// foreign keys Kong requires or forbids.
    fn kong_rules(
        &mut self,
        coll: Coll,
        obj: &Map<String, Value>,
        path: &str,
        parent: Option<&Parent<'_>>,
    ) {
        let mut problems = Vec::new();
        // Route fields that failed, for the router's entity check below.
        let mut route_failed = false;
        for rule in rules::field_rules(coll) {
            let Some(v) = get_field(obj, rule.field) else {
                continue;
            };
            problems.clear();
            rules::check_all(&rule.check, v, &mut problems);
            route_failed |= coll == Coll::Routes
                && !problems.is_empty()
                && kong::atc::ENTITY_CHECK_FIELDS.contains(&rule.field);
            for (i, why) in problems.drain(..) {
                let at = match i {
                    Some(i) => format!("{path}.{}[{i}]", rule.field),
                    None => format!("{path}.{}", rule.field),
                };
                let shown = match i {
                    Some(i) => &v[i],
                    None => v,
                };
                let shown = match shown {
                    Value::String(s) => quote(s),
                    other => describe(other),
                };
                self.error(
                    coll.name(),
                    &at,
                    format!("{} `{}` {shown}: {why}", coll.noun(), rule.field),
                );
            }
        }
        let oss = self.target.is_oss();
        let mut found: Vec<(String, String)> = Vec::new();
        {
            let mut sink = |field: &str, why: String| found.push((field.to_string(), why));
            match coll {
                Coll::Routes => rules::check_route(obj, oss, &mut sink),
                Coll::Services => rules::check_service(obj, oss, &mut sink),
                Coll::Upstreams => rules::check_upstream(obj, &mut sink),
                Coll::Certificates => rules::check_certificate(obj, &mut sink),
                Coll::CaCertificates => rules::check_ca_certificate(obj, &mut sink),
                Coll::Keys => rules::check_key(obj, &mut sink),
                Coll::Vaults => rules::check_vault(obj, oss, &mut sink),
                Coll::JwtSecrets => rules::check_jwt_secret(obj, &mut sink),
                _ => {}
            }
        }
        // Kong's `validate_route` (traditional_compatible) runs only when
        // none of its fields failed: PCRE2's verdict on a regex comes first.
        if coll == Coll::Routes
            && !route_failed
            && !found.iter().any(|(f, _)| {
                let name = f.split(['[', '.']).next().unwrap_or(f);
                kong::atc::ENTITY_CHECK_FIELDS.contains(&name)
            })
            && let Some(refused) = kong::atc::check_route(obj)
        {
            found.push(refused);
        }
        for (field, why) in found {
            let (at, message) = if field.is_empty() {
                (path.to_string(), format!("{}: {why}", coll.noun()))
            } else {
                (
                    format!("{path}.{field}"),
                    format!("{} `{field}`: {why}", coll.noun()),
                )
            };
            self.error(coll.name(), &at, message);
        }

        if coll == Coll::CaCertificates
            && let Some(Value::String(pem)) = get_field(obj, "cert")
        {
            self.unique_ca_digest(pem, path);
        }
        if coll == Coll::Acls {
            self.unique_acl(obj, path, parent);
        }
        // decK refuses a plugin nested under a consumer, route or service
        // that names a parent of that kind itself, even the same one
        // (go-database-reconciler's `checkForNestedForeignKeys`).
        let deck_nested = parent.and_then(|p| match (coll, p.coll) {
            (Coll::Plugins, Coll::Consumers) => Some("consumer"),
            (Coll::Plugins, Coll::Routes) => Some("route"),
            (Coll::Plugins, Coll::Services) => Some("service"),
            _ => None,
        });
        if let Some(kind) = deck_nested
            && let Some(v) = get_field(obj, kind).filter(|v| !v.is_null())
        {
            let named = match v {
                Value::String(s) => s.clone(),
                Value::Object(o) => ["id", "name", "username"]
                    .iter()
                    .find_map(|k| o.get(*k).and_then(Value::as_str))
                    .unwrap_or_default()
                    .to_string(),
                other => describe(other),
            };
            let plugin = get_field(obj, "name").and_then(Value::as_str).unwrap_or("");
            self.error(
                coll.name(),
                &format!("{path}.{kind}"),
                format!(
                    "nesting {kind} ({}) under {kind}-scoped plugin ({}) is not allowed (decK): remove `{kind}` from the nested plugin",
                    clip(&named),
                    clip(plugin)
                ),
            );
        } else if let Some(p) = parent
            && let Some(fk) = coll.parent_key(p.coll)
            && let Some(v) = get_field(obj, fk).filter(|v| !v.is_null())
            && !names_parent(v, p.obj)
        {
            let what = match v {
                Value::String(s) => quote(s),
                other => describe(other),
            };
            self.error(
                coll.name(),
                &format!("{path}.{fk}"),
                format!(
                    "a {} nested in a {} belongs to it, but its `{fk}` names {what}, not that {}: remove the field, or move the {} to the top level",
                    coll.noun(),
                    p.coll.noun(),
                    p.coll.noun(),
                    coll.noun()
                ),
            );
        }
        // Top-level entities whose parent is required.
        if parent.is_none() {
            let fk = match coll {
                c if c.is_credential() => Some("consumer"),
                Coll::Targets => Some("upstream"),
                Coll::Snis => Some("certificate"),
                Coll::DegraphqlRoutes => Some("service"),
                _ => None,
            };
            if let Some(fk) = fk
                && get_field(obj, fk).is_none_or(Value::is_null)
            {
                self.error(
                    coll.name(),
                    &format!("{path}.{fk}"),
                    format!(
                        "a top-level {} needs `{fk}` (required field missing), or nest it in its {}",
                        coll.noun(),
                        fk.replace('_', " ")
                    ),
                );
            }
        }
        if oss && coll == Coll::Consumers && get_field(obj, "groups").is_some_and(|g| !g.is_null())
        {
            self.error(
                coll.name(),
                &format!("{path}.groups"),
                "consumer `groups` need Kong Gateway Enterprise (consumer groups are an Enterprise feature); the target data planes run Kong Gateway OSS".into(),
            );
        }
    }

    /// Two CA certificates with one certificate break Kong's unique
    /// `cert_digest`. The same DER is the same digest, so the PEM's base64
    /// text (whitespace aside) stands for it.
    fn unique_ca_digest(&mut self, pem: &str, path: &str) {
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
            .collect();
        if body.is_empty() {
            return;
        }
        match self.ca_digests.get(&body) {
            Some(first) => {
                let why = format!(
                    "UNIQUE violation detected on cert_digest: this CA certificate is the one at {first}; Kong keeps one CA certificate per certificate"
                );
                self.error_of(
                    ErrorKind::DuplicateInMember,
                    Coll::CaCertificates.name(),
                    &format!("{path}.cert"),
                    format!("CA certificate `cert`: {why}"),
                );
            }
            None => {
                self.ca_digests.insert(body, path.to_string());
            }
        }
    }

    /// Kong's declarative loader gives an ACL without an `id` one derived
    /// from its cache key (consumer, group): the same group twice on one
    /// consumer is then one id declared twice. The consumer counts as
    /// written (a nested ACL's parent, or the `consumer` value), as Kong's
    /// key does.
    fn unique_acl(&mut self, obj: &Map<String, Value>, path: &str, parent: Option<&Parent<'_>>) {
        if get_field(obj, "id").is_some_and(|v| !v.is_null()) {
            return;
        }
        let Some(Value::String(group)) = get_field(obj, "group") else {
            return;
        };
        let consumer = match (parent, get_field(obj, "consumer")) {
            (Some(p), _) => format!("nested:{}", p.ident),
            (None, Some(Value::String(c))) => format!("top:{c}"),
            (None, Some(Value::Object(o))) => match o.get("id").or_else(|| o.get("username")) {
                Some(Value::String(c)) => format!("top:{c}"),
                _ => return,
            },
            _ => return,
        };
        match self.acl_keys.get(&(consumer.clone(), group.clone())) {
            Some(first) => {
                let why = format!(
                    "uniqueness violation: group {} is already declared for this consumer at {first} (Kong derives both ids from the consumer and the group)",
                    quote(group)
                );
                self.error_of(
                    ErrorKind::DuplicateInMember,
                    Coll::Acls.name(),
                    &format!("{path}.group"),
                    format!("ACL `group`: {why}"),
                );
            }
            None => {
                self.acl_keys
                    .insert((consumer, group.clone()), path.to_string());
            }
        }
    }

    /// A plugin: its name must be one the data planes run, its scopes and
    /// protocols ones it allows, its config what its schema says, and its
    /// partials defined in this member.
    fn plugin(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        parent: Option<Coll>,
        refs: &mut Vec<Ref>,
    ) {
        let coll = Coll::Plugins;
        let Some(Value::String(name)) = get_field(obj, "name") else {
            return;
        };
        let plugin = match self.target.plugin_status(name) {
            PluginStatus::Bundled(p) => Some(p),
            PluginStatus::Custom => None,
            PluginStatus::EnterpriseOnly(_) => {
                self.error(
                    coll.name(),
                    &format!("{path}.name"),
                    format!(
                        "plugin {} needs Kong Gateway Enterprise; the target data planes run Kong Gateway OSS",
                        quote(name)
                    ),
                );
                return;
            }
            PluginStatus::NotEnabled(_) => {
                self.error(
                    coll.name(),
                    &format!("{path}.name"),
                    format!(
                        "plugin {} is bundled with Kong but not enabled on the target data planes (their plugin set leaves out `bundled`)",
                        quote(name)
                    ),
                );
                return;
            }
            PluginStatus::Unknown => {
                self.error(
                    coll.name(),
                    &format!("{path}.name"),
                    format!(
                        "plugin {} is not enabled on the target data planes: it is not one Kong Gateway {} ({}) bundles; a custom plugin must be listed in the plugin set (`--plugins bundled,{}`)",
                        quote(name),
                        kong::KONG_VERSION,
                        self.target.edition.name(),
                        rules::clip_key(name)
                    ),
                );
                return;
            }
        };
        let scoped = |f: &str| {
            get_field(obj, f).is_some_and(|v| !v.is_null())
                || parent.and_then(|p| Coll::Plugins.parent_key(p)) == Some(f)
        };
        if self.target.is_oss() && scoped("consumer_group") {
            self.error(
                coll.name(),
                &format!("{path}.consumer_group"),
                "plugins scoped to a consumer group need Kong Gateway Enterprise; the target data planes run Kong Gateway OSS".into(),
            );
        }
        if let Some(p) = plugin {
            if !self.target.is_oss()
                && scoped("consumer_group")
                && kong::schemas::allows_consumer_group(name) == Some(false)
            {
                self.error(
                    coll.name(),
                    &format!("{path}.consumer_group"),
                    format!(
                        "plugin {} cannot be scoped to a consumer group: its schema does not allow it (Kong's `typedefs.no_consumer_group`)",
                        quote(name)
                    ),
                );
            }
            for (forbidden, f) in [
                (p.no_consumer, "consumer"),
                (p.no_route, "route"),
                (p.no_service, "service"),
            ] {
                if forbidden && scoped(f) {
                    let why = if p.no_route && p.no_service {
                        "it only runs globally".to_string()
                    } else if f == "consumer" && !p.no_route {
                        "it runs before a consumer is known (or identifies the consumer itself)"
                            .to_string()
                    } else {
                        // service-protection: services only.
                        "it only runs globally or on a service".to_string()
                    };
                    self.error(
                        coll.name(),
                        &format!("{path}.{f}"),
                        format!("plugin {} cannot be scoped to a {f}: {why}", quote(name)),
                    );
                }
            }
            if let Some(Value::Array(ps)) = get_field(obj, "protocols") {
                let allowed = p.protocols.allowed();
                for (i, v) in ps.iter().enumerate() {
                    if let Some(s) = v.as_str()
                        && plugins::ALL_PROTOCOLS.contains(&s)
                        && !allowed.contains(&s)
                    {
                        self.error(
                            coll.name(),
                            &format!("{path}.protocols[{i}]"),
                            format!(
                                "plugin {} does not run on `{s}`: expected one of: {}",
                                quote(name),
                                allowed.join(", ")
                            ),
                        );
                    }
                }
            }
            // decK's `_config`: the named `_plugin_configs` entry fills the
            // keys the plugin's own config does not set (as in the Kong form).
            let base = obj
                .get("_config")
                .and_then(Value::as_str)
                .and_then(|n| self.plugin_config_map.get(n))
                .cloned();
            let unresolved_base = obj.contains_key("_config") && base.is_none();
            match (kong::schemas::plugin(name), get_field(obj, "config")) {
                (None, _) => self.note_unmodelled(name, path),
                (_, Some(other)) if !other.is_object() && !other.is_null() => {}
                (Some(schema), own) => {
                    if kong::schemas::is_converted(name) {
                        self.note_converted(name, path);
                    }
                    let at = format!("{path}.config");
                    let empty = Map::new();
                    let own = match own {
                        Some(Value::Object(o)) => o,
                        _ => &empty,
                    };
                    let merged;
                    let (cfg, partial) = match base {
                        Some(mut cfg) => {
                            for (k, v) in own {
                                cfg.insert(k.clone(), v.clone());
                            }
                            merged = cfg;
                            (&merged, false)
                        }
                        None => (own, unresolved_base),
                    };
                    self.data_config(name, schema, cfg, &at, partial);
                }
            }
        } else {
            self.note_unmodelled(name, path);
        }
        match get_field(obj, "partials") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{path}.partials[{i}]");
                    let r = match item {
                        Value::Object(o) => match (o.get("id"), o.get("name")) {
                            (Some(Value::String(id)), _) => Some((RefBy::Id, id.clone())),
                            (_, Some(Value::String(n))) => Some((RefBy::Name, n.clone())),
                            _ => None,
                        },
                        _ => None,
                    };
                    match r {
                        Some((by, value)) if !value.is_empty() => refs.push(Ref {
                            path: at,
                            target: Coll::Partials,
                            by,
                            value,
                        }),
                        _ => self.error(
                            coll.name(),
                            &at,
                            "a plugin's partial must give the `id` or `name` of a partial defined in this config".into(),
                        ),
                    }
                }
            }
            Some(other) => {
                let why = format!("`partials` must be a list, found {}", describe(other));
                self.error(coll.name(), &format!("{path}.partials"), why);
            }
        }
    }

    fn note_unmodelled(&mut self, name: &str, path: &str) {
        if self.noted.insert(name.to_string()) {
            self.model.notes.push(Note {
                kind: "plugin_config_not_modelled".into(),
                member: String::new(),
                path: format!("{path}.config"),
                message: format!(
                    "the config of plugin {} is not checked by rgmerge (its schema is not modelled): Kong checks it when it loads the snapshot",
                    quote(name)
                ),
            });
        }
    }

    /// A plugin described from Kong's published schema: what it leaves
    /// unchecked is said once per member.
    fn note_converted(&mut self, name: &str, path: &str) {
        if !self.noted.insert(name.to_string()) {
            return;
        }
        let schema = kong::schemas::plugin(name);
        let version = schema
            .and_then(|s| s.published_version.as_deref())
            .unwrap_or(kong::KONG_VERSION);
        let mut message = format!(
            "the config of plugin {} is checked against Kong's published {version} schema (field names, types, enums, ranges, lengths, required fields), not against Kong's other rules (patterns, formats, entity checks, custom validators): Kong checks those when it loads the snapshot",
            quote(name),
        );
        let open = schema.map_or(&[][..], |s| s.unchecked.as_slice());
        if !open.is_empty() {
            message.push_str("; left open by that schema: ");
            message.push_str(&open.join("; "));
        }
        self.model.notes.push(Note {
            kind: "plugin_config_partly_checked".into(),
            member: String::new(),
            path: format!("{path}.config"),
            message,
        });
    }

    /// A plugin's config against its description in `plugin_schemas.json`,
    /// each problem in Kong's words beside its path.
    fn data_config(
        &mut self,
        name: &str,
        schema: &'static kong::schemas::PluginSchema,
        cfg: &Map<String, Value>,
        at: &str,
        partial: bool,
    ) {
        let mut problems = Vec::new();
        let oss = self.target.is_oss();
        kong::schemas::check_config(schema, cfg, partial, oss, &mut problems);
        for (field, why) in problems {
            let (p, message) = if field.is_empty() {
                (
                    at.to_string(),
                    format!("plugin {} config: {why}", quote(name)),
                )
            } else {
                (
                    format!("{at}.{field}"),
                    format!("plugin {} config `{field}`: {why}", quote(name)),
                )
            };
            self.error(Coll::Plugins.name(), &p, message);
        }
    }

    /// decK's `custom_entities`: a known type, the fields it requires, and
    /// its `service` reference (by id or name, inside this member).
    fn custom_entity(&mut self, obj: &Map<String, Value>, path: &str, refs: &mut Vec<Ref>) {
        let coll = Coll::CustomEntities;
        let Some(Value::String(ty)) = get_field(obj, "type") else {
            return;
        };
        let Some(as_coll) = custom_entity_coll(ty) else {
            self.error(
                coll.name(),
                &format!("{path}.type"),
                format!(
                    "custom entity type {} is not one decK and Kong know: expected `degraphql_routes` or `graphql_ratelimiting_cost_decorations`",
                    quote(ty)
                ),
            );
            return;
        };
        let Some(Value::Object(fields)) = get_field(obj, "fields") else {
            return;
        };
        let at = format!("{path}.fields");
        self.check_types(as_coll, fields, &at);
        self.check_required(as_coll, fields, &at);
        if fields.get("service").is_none_or(Value::is_null) {
            if as_coll == Coll::DegraphqlRoutes {
                self.error(
                    coll.name(),
                    &format!("{at}.service"),
                    format!(
                        "a {} needs `service` (required field missing)",
                        as_coll.noun()
                    ),
                );
            }
        } else {
            self.one_ref(
                coll,
                &fields["service"],
                format!("{at}.service"),
                Coll::Services,
                refs,
            );
        }
    }
    /// Names and keys: non-empty, no control characters (README: Finding codes, `duplicate_name`).
    /// Whether a name passes; the caller spells its path only when it
    /// does not ([`good_name`] first).
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
                    "{} `{field}` {} contains a control character",
                    coll.noun(),
                    quote(s)
                ),
            );
            false
        } else {
            true
        }
    }

    fn check_types(&mut self, coll: Coll, obj: &Map<String, Value>, path: &str) {
        for &(field, ty) in coll.fields() {
            let Some(v) = get_field(obj, field) else {
                continue;
            };
            if !has_type(v, ty) {
                self.error(
                    coll.name(),
                    &format!("{path}.{field}"),
                    format!(
                        "{} field `{field}`: {}, found {}{}",
                        coll.noun(),
                        ty.kong(),
                        describe(v),
                        yaml11_hint(v, ty)
                    ),
                );
            }
        }
    }

    fn check_required(&mut self, coll: Coll, obj: &Map<String, Value>, path: &str) {
        let present = |f: &str| match get_field(obj, f) {
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

    /// The ID associations of README: Finding codes, `unresolved_reference` written on this entity.
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
            Coll::Services | Coll::Upstreams => &[("client_certificate", Coll::Certificates)],
            Coll::ConsumerGroupConsumers => &[
                ("consumer", Coll::Consumers),
                ("consumer_group", Coll::ConsumerGroups),
            ],
            Coll::FilterChains => &[("service", Coll::Services), ("route", Coll::Routes)],
            Coll::ConsumerGroupPlugins => &[("consumer_group", Coll::ConsumerGroups)],
            // mtls-auth's `ca_certificate` (a foreign key Kong resolves).
            Coll::MtlsAuthCredentials if nested => &[("ca_certificate", Coll::CaCertificates)],
            Coll::MtlsAuthCredentials => &[
                ("consumer", Coll::Consumers),
                ("ca_certificate", Coll::CaCertificates),
            ],
            c if c.is_credential() && !nested => &[("consumer", Coll::Consumers)],
            _ => &[],
        };
        for &(field, target) in fields {
            if let Some(v) = get_field(obj, field) {
                self.one_ref(coll, v, format!("{path}.{field}"), target, out);
            }
        }
        if coll == Coll::Plugins
            && let Some(Value::String(name)) = get_field(obj, "_config")
        {
            // decK's `_config`: a `_plugin_configs` entry of this member.
            out.push(Ref {
                path: format!("{path}._config"),
                target: Coll::PluginConfigs,
                by: RefBy::Name,
                value: name.clone(),
            });
        }
        // A service's `ca_certificates` are not followed: Kong keeps them as
        // a list of UUIDs and does not resolve them when it loads a config.
        let lists: &[(&str, Coll)] = match coll {
            Coll::Consumers => &[("groups", Coll::ConsumerGroups)],
            Coll::ConsumerGroups => &[("consumers", Coll::Consumers)],
            _ => &[],
        };
        for &(field, target) in lists {
            match get_field(obj, field) {
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
            // Not a UUID: the rule table reports it (Kong checks the format,
            // not the reference).
            Value::String(s)
                if target == Coll::CaCertificates && uuid::Uuid::try_parse(s).is_err() =>
            {
                return;
            }
            Value::String(s) if target == Coll::CaCertificates => (RefBy::Id, s.clone()),
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

/// A name [`Walker::check_name`] takes: not empty, no control character.
/// Checked before its path is spelled, which only a finding needs.
fn good_name(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(char::is_control)
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
            // Most strings hold no `{`: one byte search rules them out
            // (a substring search builds its searcher per string).
            if memchr::memchr(b'{', s.as_bytes()).is_none() {
                return;
            }
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

/// Whether a nested entity's foreign key (`"id"`, `{id}`, `{name}`,
/// `{username}`) names its parent.
fn names_parent(v: &Value, parent: &Map<String, Value>) -> bool {
    let own = |f: &str| parent.get(f).and_then(Value::as_str);
    let matches = |s: &str| ["id", "name", "username"].iter().any(|f| own(f) == Some(s));
    match v {
        Value::String(s) => matches(s),
        Value::Object(o) => o
            .iter()
            .all(|(k, x)| x.as_str().is_some_and(|s| own(k) == Some(s))),
        _ => false,
    }
}

/// A required config field Kong fills with a default when it is missing.
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
        get_field(obj, f)
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
