//! A member config as entities: every entity of a decK (or Kong
//! declarative) document found wherever it sits, nested or at the top, with
//! its id, its parent and its foreign keys resolved; and the edits one
//! core-entities write makes to it, in place, where decK would put them
//! (the document is then stored as JSON: a YAML file's comments go).
//!
//! An entity written without an `id` gets one derived from the group and
//! its natural key (name, username, parent…), as Kong's declarative loader
//! does, so it keeps its id across reads. The first write through this API
//! writes the ids out, so they stay the same when names change.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::kinds::{self, EntityKind, KINDS, Stamps, by_coll};
use crate::config::Coll;

/// One step of a path into the document.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// Where one entity sits and what it is.
#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: &'static EntityKind,
    pub path: Vec<Step>,
    pub id: String,
    /// The entity it is nested under.
    pub parent: Option<usize>,
}

#[derive(Clone)]
pub struct Doc {
    pub root: Value,
    pub entries: Vec<Entry>,
    /// Makes the ids of entities written without one.
    ns: Uuid,
    /// Unix seconds, for entities written without timestamps: when the
    /// document was last written.
    stamp: u64,
}

/// Why an edit was refused: a status and Kong's words.
#[derive(Debug)]
pub struct EditError {
    pub status: u16,
    pub message: String,
    pub fields: Map<String, Value>,
}

impl EditError {
    pub fn new(status: u16, message: impl Into<String>) -> EditError {
        EditError {
            status,
            message: message.into(),
            fields: Map::new(),
        }
    }

    /// A 400 naming fields, in Kong's `schema violation` form.
    pub fn schema(fields: Map<String, Value>) -> EditError {
        let parts: Vec<String> = fields
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}: {}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_string)
                )
            })
            .collect();
        EditError {
            status: 400,
            message: format!("schema violation ({})", parts.join("; ")),
            fields,
        }
    }
}

/// The route fields an expression route doesn't have.
const TRADITIONAL: [&str; 8] = [
    "methods",
    "hosts",
    "paths",
    "headers",
    "regex_priority",
    "snis",
    "sources",
    "destinations",
];

fn get<'a>(root: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(root, |v, s| match s {
        Step::Key(k) => v.get(k),
        Step::Index(i) => v.get(*i),
    })
}

fn get_mut<'a>(root: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    path.iter().try_fold(root, |v, s| match s {
        Step::Key(k) => v.get_mut(k),
        Step::Index(i) => v.get_mut(*i),
    })
}

/// A value that names an entity: a string, or `{id}`/`{name}`/`{username}`.
fn named(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Object(o) => ["id", "name", "username"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_str)),
        _ => None,
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Doc {
    /// Indexes `root`. `ns` is the group's id.
    pub fn new(root: Value, ns: Uuid, stamp: u64) -> Doc {
        let mut d = Doc {
            root,
            entries: Vec::new(),
            ns,
            stamp,
        };
        d.index();
        d
    }

    fn index(&mut self) {
        let mut entries = Vec::new();
        for kind in KINDS {
            let name = kind.coll.name();
            if let Some(Value::Array(items)) = self.root.get(name) {
                for i in 0..items.len() {
                    let path = vec![Step::Key(name.into()), Step::Index(i)];
                    self.walk(kind, path, None, &mut entries);
                }
            }
        }
        self.entries = entries;
    }

    fn walk(
        &self,
        kind: &'static EntityKind,
        path: Vec<Step>,
        parent: Option<usize>,
        out: &mut Vec<Entry>,
    ) {
        let Some(Value::Object(item)) = get(&self.root, &path) else {
            return;
        };
        let parent_id = parent.map(|p| out[p].id.clone());
        let id = match item.get("id") {
            Some(Value::String(s)) => s.clone(),
            _ => self.derived_id(kind, item, parent_id.as_deref(), &path),
        };
        let me = out.len();
        out.push(Entry {
            kind,
            path: path.clone(),
            id,
            parent,
        });
        for (field, child) in kind.coll.nested() {
            let Some(ck) = by_coll(*child) else { continue };
            if let Some(Value::Array(items)) = item.get(*field) {
                for i in 0..items.len() {
                    let mut p = path.clone();
                    p.push(Step::Key((*field).into()));
                    p.push(Step::Index(i));
                    self.walk(ck, p, Some(me), out);
                }
            }
        }
    }

    /// The id of an entity written without one: from the group, the kind,
    /// the parent and the natural key; its place when it has none.
    fn derived_id(
        &self,
        kind: &EntityKind,
        item: &Map<String, Value>,
        parent: Option<&str>,
        path: &[Step],
    ) -> String {
        const NATURAL: [&str; 12] = [
            "name",
            "username",
            "custom_id",
            "instance_name",
            "target",
            "group",
            "key",
            "kid",
            "prefix",
            "uri",
            "type_path",
            "subject_name",
        ];
        let mut key = format!("{}|{}", kind.coll.name(), parent.unwrap_or(""));
        let mut any = false;
        for f in NATURAL {
            if let Some(v) = item.get(f).and_then(named) {
                key.push_str(&format!("|{f}={v}"));
                any = true;
            }
        }
        // The scope, and what tells apart entities sharing a natural key,
        // without being one: two unnamed routes of one service still need
        // their places.
        for f in [
            "service",
            "route",
            "consumer",
            "consumer_group",
            "ca_certificate",
            "set",
        ] {
            if let Some(v) = item.get(f).and_then(named) {
                key.push_str(&format!("|{f}={v}"));
            }
        }
        if let Some(m) = item.get("methods") {
            key.push_str(&format!("|methods={m}"));
        }
        if matches!(kind.coll, Coll::Certificates | Coll::CaCertificates)
            && let Some(c) = item.get("cert").and_then(Value::as_str)
        {
            key.push_str(&format!("|cert={}", c.trim()));
            any = true;
        }
        if !any {
            key.push_str(&format!("|at={path:?}"));
        }
        Uuid::new_v5(&self.ns, key.as_bytes()).to_string()
    }

    /// The same document, its entities without timestamps shown as of `stamp`.
    pub fn restamped(&self, stamp: u64) -> Doc {
        Doc {
            stamp,
            ..self.clone()
        }
    }

    pub fn item(&self, i: usize) -> Option<&Map<String, Value>> {
        get(&self.root, &self.entries[i].path).and_then(Value::as_object)
    }

    /// The entity of `kind` that `key` names: its id, or its endpoint key
    /// (the first of its keys: a service's name, a consumer's username), as
    /// Kong's Admin API reads a path segment.
    pub fn find(&self, kind: &EntityKind, key: &str) -> Option<usize> {
        let of_kind = || {
            self.entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.kind.coll == kind.coll)
        };
        of_kind()
            .find(|(_, e)| e.id == key)
            .map(|(i, _)| i)
            .or_else(|| {
                let endpoint = kind.keys.first()?;
                if Uuid::parse_str(key).is_ok() {
                    return None;
                }
                of_kind()
                    .find(|(i, _)| {
                        self.item(*i)
                            .is_some_and(|o| o.get(*endpoint).and_then(Value::as_str) == Some(key))
                    })
                    .map(|(i, _)| i)
            })
    }

    /// Another entity of `kind` (not `except`) whose unique `field` is `value`.
    fn taken(&self, kind: &EntityKind, field: &str, value: &str, except: Option<usize>) -> bool {
        self.entries.iter().enumerate().any(|(i, e)| {
            e.kind.coll == kind.coll
                && Some(i) != except
                && self
                    .item(i)
                    .and_then(|o| o.get(field))
                    .and_then(Value::as_str)
                    == Some(value)
        })
    }

    /// 409 when a unique key of `body` is another entity's.
    fn check_unique(
        &self,
        kind: &EntityKind,
        body: &Map<String, Value>,
        except: Option<usize>,
    ) -> Result<(), EditError> {
        for k in kind.keys {
            if let Some(v) = body.get(*k).and_then(Value::as_str)
                && self.taken(kind, k, v, except)
            {
                return Err(EditError::new(
                    409,
                    format!("UNIQUE violation detected on '{{{k}=\"{v}\"}}'"),
                ));
            }
        }
        Ok(())
    }

    /// The id of the entity of `coll` a reference names (by id or key), or
    /// the reference itself when nothing matches (the validator says so).
    fn resolve(&self, coll: Coll, reference: &str) -> String {
        by_coll(coll)
            .and_then(|k| self.find(k, reference))
            .map_or_else(|| reference.to_string(), |i| self.entries[i].id.clone())
    }

    /// The id the foreign key `fk` of entry `i` names, if any.
    pub fn foreign(&self, i: usize, fk: &str, target: Coll) -> Option<String> {
        let e = &self.entries[i];
        if let Some(p) = e.parent
            && self.entries[p].kind.coll == target
            && e.kind.foreign.iter().any(|(f, c)| *f == fk && *c == target)
        {
            return Some(self.entries[p].id.clone());
        }
        let v = self.item(i)?.get(fk)?;
        named(v).map(|r| self.resolve(target, r))
    }

    /// The entries of `kind`, under the entity `parent` when given (nested
    /// there, or naming it by a foreign key).
    pub fn list(&self, kind: &EntityKind, parent: Option<usize>) -> Vec<usize> {
        (0..self.entries.len())
            .filter(|i| self.entries[*i].kind.coll == kind.coll)
            .filter(|i| {
                let Some(p) = parent else { return true };
                let pe = &self.entries[p];
                kind.foreign.iter().any(|(fk, c)| {
                    *c == pe.kind.coll && self.foreign(*i, fk, *c).as_deref() == Some(&pe.id)
                })
            })
            .collect()
    }

    /// Entity `i` as Kong's Admin API answers it: every field of its schema
    /// that is set or has a default, foreign keys as `{id}`, timestamps in seconds.
    pub fn render(&self, i: usize) -> Value {
        let e = &self.entries[i];
        let kind = e.kind;
        let empty = Map::new();
        let item = self.item(i).unwrap_or(&empty);
        let mut out = Map::new();
        out.insert("id".into(), json!(e.id));
        let mut item = item.clone();
        if kind.coll == Coll::Services {
            expand_url(&mut item);
        }
        // An expression route has none of the traditional matching fields
        // (Kong's `RouteExpression`), and a priority instead.
        let expression =
            kind.coll == Coll::Routes && item.get("expression").is_some_and(|e| !e.is_null());
        for (f, default) in kind.fields {
            if expression && TRADITIONAL.contains(f) {
                continue;
            }
            if *f == "priority" && expression && item.get("priority").is_none_or(Value::is_null) {
                out.insert("priority".into(), json!(0));
                continue;
            }
            match item.get(*f) {
                Some(v) if !v.is_null() => {
                    out.insert((*f).into(), v.clone());
                }
                _ => {
                    if let Some(d) = default.and_then(|d| serde_json::from_str(d).ok()) {
                        out.insert((*f).into(), d);
                    }
                }
            }
        }
        for (fk, target) in kind.foreign {
            if let Some(id) = self.foreign(i, fk, *target) {
                out.insert((*fk).into(), json!({ "id": id }));
            }
        }
        if kind.coll == Coll::Certificates
            && let Some(sk) = by_coll(Coll::Snis)
        {
            let names: Vec<Value> = self
                .list(sk, Some(i))
                .into_iter()
                .filter_map(|j| self.item(j)?.get("name").cloned())
                .collect();
            if !names.is_empty() {
                out.insert("snis".into(), Value::Array(names));
            }
        }
        if kind.coll == Coll::Plugins
            && let (Some(name), Some(Value::Object(config))) = (
                item.get("name").and_then(Value::as_str),
                out.get_mut("config"),
            )
        {
            super::defaults::fill_plugin(name, config);
        } else if kind.coll == Coll::Plugins
            && !out.contains_key("config")
            && let Some(name) = item.get("name").and_then(Value::as_str)
        {
            let mut config = Map::new();
            super::defaults::fill_plugin(name, &mut config);
            out.insert("config".into(), Value::Object(config));
        }
        let stamp = |f: &str| item.get(f).and_then(Value::as_u64).unwrap_or(self.stamp);
        if kind.stamps != Stamps::None {
            out.insert("created_at".into(), json!(stamp("created_at")));
        }
        if kind.stamps == Stamps::Both {
            out.insert("updated_at".into(), json!(stamp("updated_at")));
        }
        Value::Object(out)
    }

    /// The decK form of a request body for entity of `kind`: unknown fields
    /// refused (the schema allows none), nulls dropped (unset), foreign keys
    /// as decK's plain references, the one naming `nest` dropped.
    fn to_item(
        &self,
        kind: &EntityKind,
        body: Map<String, Value>,
        nest: Option<usize>,
    ) -> Result<Map<String, Value>, EditError> {
        let mut bad = Map::new();
        let mut out = Map::new();
        for (k, v) in body {
            // A certificate's `snis`: the names of SNIs made with it.
            if kind.coll == Coll::Certificates && k == "snis" {
                match &v {
                    Value::Array(a) if a.iter().all(Value::is_string) => {
                        let snis: Vec<Value> = a.iter().map(|n| json!({ "name": n })).collect();
                        out.insert(k, Value::Array(snis));
                    }
                    Value::Null => {}
                    _ => {
                        bad.insert(k, json!("expected an array of strings"));
                    }
                }
                continue;
            }
            let known = k == "id"
                || k == "created_at"
                || k == "updated_at"
                || (kind.coll == Coll::Services && k == "url")
                || kind.fields.iter().any(|(f, _)| *f == k);
            let fk = kind.foreign.iter().find(|(f, _)| *f == k);
            if !known && fk.is_none() {
                bad.insert(k, json!("unknown field"));
                continue;
            }
            if v.is_null() || k == "created_at" || k == "updated_at" {
                continue;
            }
            if let Some((_, target)) = fk {
                let Some(r) = named(&v) else {
                    bad.insert(k, json!("expected a record with an id"));
                    continue;
                };
                let id = self.resolve(*target, r);
                if nest.is_some_and(|p| self.entries[p].kind.coll == *target) {
                    let parent = &self.entries[nest.unwrap_or_default()].id;
                    if &id != parent {
                        bad.insert(k, json!("does not match the entity in the path"));
                    }
                    continue;
                }
                out.insert(k, json!(id));
                continue;
            }
            out.insert(k, v);
        }
        if !bad.is_empty() {
            return Err(EditError::schema(bad));
        }
        Ok(out)
    }

    /// The parent the path names, as the foreign key it stands for.
    fn parent_key(&self, kind: &EntityKind, parent: Option<usize>, body: &mut Map<String, Value>) {
        if let Some(p) = parent {
            let pe = &self.entries[p];
            if let Some((fk, _)) = kind.foreign.iter().find(|(_, c)| *c == pe.kind.coll) {
                body.insert((*fk).into(), json!({ "id": pe.id }));
            }
        }
    }

    /// Where a new entity of `kind` goes: under `parent` (from the path)
    /// or, with exactly one foreign key naming an entity that nests this
    /// kind, under that one, as decK writes it. `None`: at the top.
    fn nest_for(
        &self,
        kind: &EntityKind,
        parent: Option<usize>,
        body: &Map<String, Value>,
    ) -> Option<usize> {
        let nests = |p: usize| {
            self.entries[p]
                .kind
                .coll
                .nested()
                .iter()
                .any(|(_, c)| *c == kind.coll)
        };
        if let Some(p) = parent {
            return Some(p).filter(|p| nests(*p));
        }
        let set: Vec<_> = kind
            .foreign
            .iter()
            .filter(|(f, _)| body.get(*f).is_some_and(|v| !v.is_null()))
            .collect();
        let [(fk, target)] = set.as_slice() else {
            return None;
        };
        let r = body.get(*fk).and_then(named)?;
        self.find(by_coll(*target)?, r).filter(|p| nests(*p))
    }

    /// Inserts a new entity; its id (made when absent). 409 when its id or a
    /// unique key is taken.
    pub fn insert(
        &mut self,
        kind: &'static EntityKind,
        parent: Option<usize>,
        mut body: Map<String, Value>,
    ) -> Result<String, EditError> {
        let id = match body.get("id") {
            Some(Value::String(s)) => {
                if Uuid::parse_str(s).is_err() {
                    let mut f = Map::new();
                    f.insert("id".into(), json!("expected a valid UUID"));
                    return Err(EditError::schema(f));
                }
                s.clone()
            }
            _ => Uuid::new_v4().to_string(),
        };
        if self.find(kind, &id).is_some() {
            return Err(EditError::new(
                409,
                format!("UNIQUE violation detected on '{{id=\"{id}\"}}'"),
            ));
        }
        self.check_unique(kind, &body, None)?;
        for g in kind.generated {
            if body.get(*g).is_none_or(Value::is_null) {
                body.insert((*g).into(), json!(Uuid::new_v4().simple().to_string()));
            }
        }
        body.insert("id".into(), json!(id));
        self.parent_key(kind, parent, &mut body);
        let nest = self.nest_for(kind, parent, &body);
        let mut item = self.to_item(kind, body, nest)?;
        let now = now_secs();
        if kind.stamps != Stamps::None {
            item.insert("created_at".into(), json!(now));
        }
        if kind.stamps == Stamps::Both {
            item.insert("updated_at".into(), json!(now));
        }
        self.materialize_ids();
        let array = match nest {
            Some(p) => {
                let pe = &self.entries[p];
                let field = pe
                    .kind
                    .coll
                    .nested()
                    .iter()
                    .find(|(_, c)| *c == kind.coll)
                    .map(|(f, _)| *f)
                    .ok_or_else(|| EditError::new(400, "this entity can't be nested there"))?;
                let path = pe.path.clone();
                let parent = get_mut(&mut self.root, &path)
                    .and_then(Value::as_object_mut)
                    .ok_or_else(|| EditError::new(500, "the parent entity vanished"))?;
                parent.entry(field).or_insert_with(|| json!([]))
            }
            None => self.top_array(kind.coll)?,
        };
        match array {
            Value::Array(a) => a.push(Value::Object(item)),
            _ => {
                return Err(EditError::new(
                    400,
                    format!("'{}' is not a list", kind.coll.name()),
                ));
            }
        }
        self.index();
        Ok(id)
    }

    fn top_array(&mut self, coll: Coll) -> Result<&mut Value, EditError> {
        let root = self
            .root
            .as_object_mut()
            .ok_or_else(|| EditError::new(400, "the member config is not a mapping"))?;
        Ok(root.entry(coll.name()).or_insert_with(|| json!([])))
    }

    /// Replaces entity `i` with `body` (Kong's PUT: the whole entity),
    /// keeping what is nested under it and when it was created.
    pub fn replace(
        &mut self,
        i: usize,
        parent: Option<usize>,
        mut body: Map<String, Value>,
    ) -> Result<String, EditError> {
        let e = self.entries[i].clone();
        body.insert("id".into(), json!(e.id));
        self.check_unique(e.kind, &body, Some(i))?;
        self.parent_key(e.kind, parent, &mut body);
        // A top-level entity stays at the top, naming its parent by its
        // foreign key; a nested one moves when the body names another parent.
        let nest = match e.parent {
            None => None,
            Some(_) => self.nest_for(e.kind, parent, &body),
        };
        if nest != e.parent {
            let old = self.item(i).cloned().unwrap_or_default();
            self.materialize_ids();
            self.remove_paths(vec![e.path.clone()]);
            self.index();
            let id = self.insert(e.kind, None, body)?;
            // What was nested under it, and when it was created, go with it.
            if let Some(j) = self.find(e.kind, &id) {
                let path = self.entries[j].path.clone();
                if let Some(Value::Object(moved)) = get_mut(&mut self.root, &path) {
                    for (field, _) in e.kind.coll.nested() {
                        if let Some(v) = old.get(*field) {
                            moved.insert((*field).into(), v.clone());
                        }
                    }
                    if let Some(c) = old.get("created_at") {
                        moved.insert("created_at".into(), c.clone());
                    }
                }
                self.index();
            }
            return Ok(id);
        }
        let mut item = self.to_item(e.kind, body, nest)?;
        let old = self.item(i).cloned().unwrap_or_default();
        for (field, _) in e.kind.coll.nested() {
            if let Some(v) = old.get(*field)
                && !item.contains_key(*field)
            {
                item.insert((*field).into(), v.clone());
            }
        }
        let now = now_secs();
        if e.kind.stamps != Stamps::None {
            let created = old.get("created_at").cloned().unwrap_or(json!(self.stamp));
            item.insert("created_at".into(), created);
        }
        if e.kind.stamps == Stamps::Both {
            item.insert("updated_at".into(), json!(now));
        }
        self.materialize_ids();
        let slot = get_mut(&mut self.root, &e.path)
            .ok_or_else(|| EditError::new(500, "the entity vanished"))?;
        *slot = Value::Object(item);
        self.index();
        Ok(e.id)
    }

    /// Deletes entity `i` with what Kong deletes with it (plugins,
    /// credentials, targets, SNIs, keys naming it). A service routes still
    /// name is refused, as Kong refuses it.
    pub fn remove(&mut self, i: usize) -> Result<(), EditError> {
        let e = self.entries[i].clone();
        let dependents: Vec<usize> = (0..self.entries.len())
            .filter(|j| {
                let d = &self.entries[*j];
                d.kind.foreign.iter().any(|(fk, c)| {
                    *c == e.kind.coll && self.foreign(*j, fk, *c).as_deref() == Some(&e.id)
                })
            })
            .collect();
        // Kong's `on_delete`: plugins, credentials, targets, keys and
        // GraphQL entities go with what they name; anything else naming it
        // keeps it (`routes` a service, a service its client certificate).
        if let Some(j) = dependents.iter().find(|j| {
            let d = &self.entries[**j];
            !d.kind.foreign.iter().any(|(fk, c)| {
                *c == e.kind.coll
                    && kinds::cascades(d.kind, fk)
                    && self.foreign(**j, fk, *c).as_deref() == Some(&e.id)
            })
        }) {
            return Err(EditError::new(
                400,
                format!(
                    "an existing '{}' entity references this '{}' entity",
                    self.entries[*j].kind.coll.name(),
                    e.kind.coll.name()
                ),
            ));
        }
        if let Some(by) = self.listed_by(i) {
            return Err(EditError::new(
                400,
                format!(
                    "an existing '{by}' entity references this '{}' entity",
                    e.kind.coll.name()
                ),
            ));
        }
        self.materialize_ids();
        let mut paths = vec![e.path.clone()];
        paths.extend(dependents.iter().map(|j| self.entries[*j].path.clone()));
        self.remove_consumer_memberships(&e);
        self.remove_paths(paths);
        self.index();
        Ok(())
    }

    /// The collection of an entity that lists entity `i` by id without a foreign
    /// key: a service's `ca_certificates`, a plugin's `partials`.
    fn listed_by(&self, i: usize) -> Option<&'static str> {
        let e = &self.entries[i];
        let (coll, field) = match e.kind.coll {
            Coll::CaCertificates => (Coll::Services, "ca_certificates"),
            Coll::Partials => (Coll::Plugins, "partials"),
            _ => return None,
        };
        let name = self
            .item(i)
            .and_then(|o| o.get("name"))
            .and_then(Value::as_str);
        let names = |v: &Value| match v {
            Value::String(s) => s == &e.id,
            Value::Object(o) => {
                o.get("id").and_then(Value::as_str) == Some(e.id.as_str())
                    || (name.is_some() && o.get("name").and_then(Value::as_str) == name)
            }
            _ => false,
        };
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, x)| x.kind.coll == coll)
            .any(|(i, _)| {
                self.item(i)
                    .and_then(|o| o.get(field))
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(names))
            })
            .then(|| coll.name())
    }

    /// Removes the values at `paths`, last index first so earlier removals
    /// don't shift later ones; a path inside another is removed with it.
    fn remove_paths(&mut self, mut paths: Vec<Vec<Step>>) {
        paths.sort();
        paths.dedup();
        let outer: Vec<Vec<Step>> = paths
            .iter()
            .filter(|p| !paths.iter().any(|q| q != *p && p.starts_with(q)))
            .cloned()
            .collect();
        for p in outer.iter().rev() {
            let Some((Step::Index(idx), parent)) = p.split_last() else {
                continue;
            };
            if let Some(Value::Array(a)) = get_mut(&mut self.root, parent)
                && *idx < a.len()
            {
                a.remove(*idx);
            }
        }
    }

    /// Writes every entity's id into the document, so ids made from names
    /// survive a rename and ids made from places survive a removal.
    fn materialize_ids(&mut self) {
        for e in &self.entries {
            if let Some(Value::Object(o)) = get_mut(&mut self.root, &e.path)
                && !o.contains_key("id")
            {
                o.insert("id".into(), json!(e.id));
            }
        }
    }

    // ---- consumer-group memberships ----

    /// Every membership as written, with where: (its path, consumer entry,
    /// group entry), from a consumer's `groups`, a group's `consumers` and
    /// `consumer_group_consumers`.
    fn membership_places(&self) -> Vec<(Vec<Step>, usize, usize)> {
        let (Some(ck), Some(gk)) = (by_coll(Coll::Consumers), by_coll(Coll::ConsumerGroups)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut listed =
            |path: Vec<Step>,
             list: Option<&Value>,
             each: &dyn Fn(&Value) -> Option<(usize, usize)>| {
                for (k, v) in list
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    if let Some((c, g)) = each(v) {
                        let mut at = path.clone();
                        at.push(Step::Index(k));
                        out.push((at, c, g));
                    }
                }
            };
        for (i, e) in self.entries.iter().enumerate() {
            let Some(item) = self.item(i) else { continue };
            let field = match e.kind.coll {
                Coll::Consumers => "groups",
                Coll::ConsumerGroups => "consumers",
                _ => continue,
            };
            let mut path = e.path.clone();
            path.push(Step::Key(field.into()));
            if e.kind.coll == Coll::Consumers {
                listed(path, item.get(field), &|v| {
                    Some((i, named(v).and_then(|r| self.find(gk, r))?))
                });
            } else {
                listed(path, item.get(field), &|v| {
                    Some((named(v).and_then(|r| self.find(ck, r))?, i))
                });
            }
        }
        let side = |m: &Value, f: &str, k: &EntityKind| {
            m.get(f).and_then(named).and_then(|r| self.find(k, r))
        };
        listed(
            vec![Step::Key("consumer_group_consumers".into())],
            self.root.get("consumer_group_consumers"),
            &|m| Some((side(m, "consumer", ck)?, side(m, "consumer_group", gk)?)),
        );
        out
    }

    /// (consumer entry, group entry) of every membership, wherever written.
    pub fn memberships(&self) -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = self
            .membership_places()
            .into_iter()
            .map(|(_, c, g)| (c, g))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Adds consumer `c` to group `g` (nothing when it is in already).
    pub fn add_membership(&mut self, c: usize, g: usize) -> Result<(), EditError> {
        if self.memberships().contains(&(c, g)) {
            return Ok(());
        }
        self.materialize_ids();
        let (cid, gid) = (self.entries[c].id.clone(), self.entries[g].id.clone());
        match self.top_array(Coll::ConsumerGroupConsumers)? {
            Value::Array(a) => a.push(json!({"consumer": cid, "consumer_group": gid})),
            _ => {
                return Err(EditError::new(
                    400,
                    "'consumer_group_consumers' is not a list",
                ));
            }
        }
        self.index();
        Ok(())
    }

    /// Removes the memberships `drop` names (consumer entry, group entry),
    /// wherever they are written.
    pub fn remove_memberships(&mut self, drop: impl Fn(usize, usize) -> bool) {
        self.materialize_ids();
        let paths = self
            .membership_places()
            .into_iter()
            .filter(|(_, c, g)| drop(*c, *g))
            .map(|(path, _, _)| path)
            .collect();
        self.remove_paths(paths);
        self.index();
    }

    fn remove_consumer_memberships(&mut self, e: &Entry) {
        if !matches!(e.kind.coll, Coll::Consumers | Coll::ConsumerGroups) {
            return;
        }
        let Some(me) = self.entries.iter().position(|x| x.path == e.path) else {
            return;
        };
        self.remove_memberships(|c, g| c == me || g == me);
    }
}

/// Kong's `url` shorthand, written out as the fields it stands for.
fn expand_url(item: &mut Map<String, Value>) {
    let Some(url) = item.get("url").and_then(Value::as_str).map(str::to_string) else {
        return;
    };
    let Ok(u) = crate::config::kong::formats::url(&url) else {
        return;
    };
    let (host, port) = match u.host_port.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
            Ok(p) => (h, Some(p)),
            Err(_) => (u.host_port, None),
        },
        _ => (u.host_port, None),
    };
    let port = port.unwrap_or(match u.scheme {
        "https" | "grpcs" | "tls" | "wss" => 443,
        _ => 80,
    });
    item.insert("protocol".into(), json!(u.scheme));
    item.insert("host".into(), json!(host));
    item.insert("port".into(), json!(port));
    if !u.path.is_empty() {
        item.insert("path".into(), json!(u.path));
    }
    item.remove("url");
}
