//! The typed member model: what the rest of the engine needs to know about
//! each entity (its unique keys, its ID associations, its vault references),
//! with the entity's own JSON kept whole for the snapshot.

use serde_json::Value;

use super::schema::Coll;
pub use super::schema::KeyKind;
use crate::report::{MemberError, Note};

/// One unique key of one entity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub kind: KeyKind,
    pub value: String,
}

/// Which keys of the target an association may name.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RefBy {
    /// decK's plain-string references: an id or the target's name.
    IdOrName,
    Id,
    Name,
}

/// An ID association (README: Finding codes, `unresolved_reference`) that must resolve inside the same member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ref {
    /// Path of the referencing field, e.g. `routes[2].service`.
    pub path: String,
    pub target: Coll,
    pub by: RefBy,
    pub value: String,
}

/// A `{vault://PREFIX/...}` reference found in a string field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultRef {
    pub coll: Coll,
    pub path: String,
    pub prefix: String,
    pub reference: String,
}

/// One entity, top-level or nested.
#[derive(Clone, Debug)]
pub struct Entity {
    pub coll: Coll,
    pub path: String,
    /// How a person would name it: `route 'r2'`.
    pub label: String,
    pub keys: Vec<Key>,
    pub refs: Vec<Ref>,
    /// For plugins: the plugin's `name`.
    pub plugin: Option<String>,
}

/// A member config read and checked against the decK 3.0 schema.
#[derive(Debug, Default)]
pub struct Model {
    pub entities: Vec<Entity>,
    pub vault_refs: Vec<VaultRef>,
    /// Schema errors (the member name is filled in later), at most
    /// `report::MAX_MEMBER_ERRORS` of them.
    pub errors: Vec<MemberError>,
    /// Schema errors found past that limit, only counted.
    pub more_errors: usize,
    /// Top-level entities, per collection, in file order: the snapshot's material.
    pub top: Vec<(Coll, Vec<Value>)>,
    /// `_plugin_configs` entries in file order.
    pub plugin_configs: Vec<(String, Value)>,
    /// ACL group names of this member's consumers, with the ACL's path.
    pub acl_groups: Vec<(String, String)>,
    /// What each route matches, for `overlapping_route` warnings.
    pub routes: Vec<RouteMatch>,
    /// What was not checked (the member name is filled in later).
    pub notes: Vec<Note>,
    /// Top-level collections holding something only decK reads (a plugin's
    /// `_config`, consumers' `groups`, …), as bits by `Coll` index: only
    /// those are rewritten for Kong's declarative form.
    pub deck_only: u64,
}

/// What requests a route matches, normalized for comparing routes of
/// different members. Routes that match on an `expression`, `sources` or
/// `destinations` are not compared (`RouteMatch::read` gives `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteMatch {
    pub path: String,
    pub label: String,
    /// The service it routes to (name or id), if known.
    pub service: Option<String>,
    /// Sorted, deduplicated; `http`+`https` when unset.
    pub protocols: Vec<String>,
    /// Lower-case; empty: any host.
    pub hosts: Vec<String>,
    /// Empty: any path. Regex paths start with `~`.
    pub paths: Vec<String>,
    /// Empty: any method.
    pub methods: Vec<String>,
    /// Lower-case header names, each with its values (lower-case).
    pub headers: Vec<(String, Vec<String>)>,
}

impl RouteMatch {
    pub fn read(
        obj: &serde_json::Map<String, Value>,
        path: &str,
        service: Option<String>,
    ) -> Option<RouteMatch> {
        let strings = |f: &str| -> Option<Vec<String>> {
            match obj.get(f) {
                None | Some(Value::Null) => Some(Vec::new()),
                Some(Value::Array(a)) => a.iter().map(|v| v.as_str().map(str::to_string)).collect(),
                Some(_) => None,
            }
        };
        for f in ["expression", "sources", "destinations"] {
            if super::kong::rules::set(obj, f) {
                return None;
            }
        }
        let mut protocols = strings("protocols")?;
        if protocols.is_empty() {
            protocols = vec!["http".into(), "https".into()];
        }
        protocols.sort();
        protocols.dedup();
        let hosts: Vec<String> = strings("hosts")?
            .into_iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let paths = strings("paths")?;
        let methods = strings("methods")?;
        let mut headers = Vec::new();
        if let Some(Value::Object(h)) = obj.get("headers") {
            for (k, v) in h {
                let values = match v {
                    Value::Array(a) => a
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_ascii_lowercase)
                        .collect(),
                    Value::String(s) => vec![s.to_ascii_lowercase()],
                    _ => Vec::new(),
                };
                headers.push((k.to_ascii_lowercase(), values));
            }
        }
        headers.sort();
        if hosts.is_empty() && paths.is_empty() && methods.is_empty() && headers.is_empty() {
            return None;
        }
        let label = match obj.get("name").and_then(Value::as_str) {
            Some(n) => format!("route {}", crate::report::quote(n)),
            None => format!("route at {path}"),
        };
        Some(RouteMatch {
            path: path.to_string(),
            label,
            service,
            protocols,
            hosts,
            paths,
            methods,
            headers,
        })
    }
}
