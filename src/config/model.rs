//! The typed member model: what the rest of the engine needs to know about
//! each entity (its unique keys, its ID associations, its vault references),
//! with the entities' own JSON serialized once for the snapshot.

use std::ops::Range;

use super::value::get_field;
use serde_json::Value;

use super::schema::Coll;
pub use super::schema::KeyKind;
use crate::intern::Sym;
use crate::report::{MemberError, Note};

/// One unique key of one entity, as written.
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

/// A key as the model keeps it: interned, with the entity holding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntityKey {
    /// Index in [`Model::entities`].
    pub entity: u32,
    pub kind: KeyKind,
    pub sym: Sym,
}

/// An association as the model keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityRef {
    /// Index in [`Model::entities`] of the referencing entity.
    pub entity: u32,
    /// Path of the referencing field, e.g. `routes[2].service`.
    pub path: String,
    pub target: Coll,
    pub by: RefBy,
    pub value: Sym,
}

/// Where one entity sits, in 12 bytes: its path is spelled out
/// ([`EntityPaths::path`]) only when a finding names it. A million tiny
/// consumers would otherwise hold a million path strings.
#[derive(Clone, Copy, Debug)]
struct Place {
    coll: Coll,
    /// Index into the parent's `Coll::nested()`; `TOP` for a top-level
    /// entity; `NAMED` for a `_plugin_configs` entry.
    field: u8,
    /// The parent entity (nested only).
    parent: u32,
    /// Position in its list; for `NAMED`, the index of its name.
    index: u32,
}

const TOP: u8 = u8::MAX;
const NAMED: u8 = u8::MAX - 1;

/// Every entity of a member, in walk order (a parent before its children):
/// its collection and its place, from which its path is spelled.
#[derive(Clone, Debug, Default)]
pub struct EntityPaths {
    places: Vec<Place>,
    names: Vec<Box<str>>,
}

impl EntityPaths {
    pub fn len(&self) -> usize {
        self.places.len()
    }

    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    pub fn coll(&self, entity: u32) -> Coll {
        self.places[entity as usize].coll
    }

    /// A top-level entity, `coll[index]`.
    pub fn push_top(&mut self, coll: Coll, index: usize) -> u32 {
        self.push(Place {
            coll,
            field: TOP,
            parent: 0,
            index: index as u32,
        })
    }

    /// An entity nested in `parent`'s list `coll.nested()[field]`.
    pub fn push_nested(&mut self, parent: u32, field: usize, coll: Coll, index: usize) -> u32 {
        self.push(Place {
            coll,
            field: field as u8,
            parent,
            index: index as u32,
        })
    }

    /// An entry of a mapping (`_plugin_configs.NAME`).
    pub fn push_named(&mut self, coll: Coll, name: &str) -> u32 {
        self.names.push(name.into());
        self.push(Place {
            coll,
            field: NAMED,
            parent: 0,
            index: (self.names.len() - 1) as u32,
        })
    }

    fn push(&mut self, p: Place) -> u32 {
        self.places.push(p);
        (self.places.len() - 1) as u32
    }

    pub fn shrink_to_fit(&mut self) {
        self.places = fit(std::mem::take(&mut self.places));
        self.names = fit(std::mem::take(&mut self.names));
    }

    /// Every place as plain numbers, `(coll, field, parent, index)`, and the
    /// names of `_plugin_configs` entries: what a frozen member keeps
    /// (`member::frozen`).
    pub fn raw(&self) -> (impl Iterator<Item = (u8, u8, u32, u32)> + '_, &[Box<str>]) {
        let places = self
            .places
            .iter()
            .map(|p| (p.coll as u8, p.field, p.parent, p.index));
        (places, &self.names)
    }

    /// The inverse of [`raw`](EntityPaths::raw), checked so that spelling
    /// any path can never index out of bounds: `None` when a collection is
    /// unknown, a parent does not come before its child, or a name is missing.
    pub fn from_raw(
        raw: impl IntoIterator<Item = (u8, u8, u32, u32)>,
        names: Vec<Box<str>>,
    ) -> Option<EntityPaths> {
        let mut places: Vec<Place> = Vec::new();
        for (coll, field, parent, index) in raw {
            let coll = *Coll::ALL.get(coll as usize)?;
            let ok = match field {
                TOP => true,
                NAMED => (index as usize) < names.len(),
                _ => (parent as usize) < places.len(),
            };
            if !ok {
                return None;
            }
            places.push(Place {
                coll,
                field,
                parent,
                index,
            });
        }
        Some(EntityPaths { places, names })
    }

    /// `services[0].routes[1].plugins[0]`.
    pub fn path(&self, entity: u32) -> String {
        use std::fmt::Write;
        let mut chain = Vec::new();
        let mut at = entity;
        loop {
            let p = self.places[at as usize];
            chain.push(p);
            if p.field == TOP || p.field == NAMED {
                break;
            }
            at = p.parent;
        }
        let mut out = String::new();
        let mut parent: Option<Coll> = None;
        for p in chain.iter().rev() {
            match (p.field, parent) {
                (NAMED, _) => {
                    let _ = write!(out, "{}.{}", p.coll.name(), self.names[p.index as usize]);
                }
                (TOP, _) | (_, None) => {
                    let _ = write!(out, "{}[{}]", p.coll.name(), p.index);
                }
                (f, Some(pc)) => {
                    let field = pc.nested().get(f as usize).map_or("", |(n, _)| n);
                    let _ = write!(out, ".{field}[{}]", p.index);
                }
            }
            parent = Some(p.coll);
        }
        out
    }
}

/// `v` with no spare capacity, for what a built member keeps. The allocator
/// (mimalloc) answers a shrinking `realloc` that leaves at least half the
/// block in use with the same block, so `shrink_to_fit` after growth by
/// doubling can keep up to half of it spare, and resident when the block
/// was recycled: moved into an exact block instead. A buffer above
/// `COPY_UP_TO` is shrunk in place: its spare tail is fresh memory never
/// touched (not resident), and a move would double it for a moment.
pub fn fit<T>(mut v: Vec<T>) -> Vec<T> {
    const COPY_UP_TO: usize = 8 << 20;
    if v.capacity() == v.len() {
        return v;
    }
    if v.len() * std::mem::size_of::<T>() > COPY_UP_TO {
        v.shrink_to_fit();
        return v;
    }
    let mut exact = Vec::with_capacity(v.len());
    exact.append(&mut v);
    exact
}

/// A member's top-level entities serialized (compact JSON, comma-joined per
/// collection) into one buffer: a span and an entity count per collection.
#[derive(Debug, Default)]
pub struct Fragments {
    pub buf: Vec<u8>,
    pub spans: Vec<(Coll, Range<usize>, usize)>,
}

impl Fragments {
    /// Appends one collection's entities.
    pub fn push_all(&mut self, coll: Coll, items: &[Value]) {
        let start = self.buf.len();
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            // Serializing a `Value` cannot fail: keys are strings, numbers finite.
            let _ = serde_json::to_writer(&mut self.buf, item);
        }
        self.spans.push((coll, start..self.buf.len(), items.len()));
    }
}

/// A member config read and checked against the decK 3.0 schema.
#[derive(Debug, Default)]
pub struct Model {
    /// Every entity, top-level or nested, in walk order.
    pub entities: EntityPaths,
    /// Their unique keys, grouped by entity, in entity order.
    pub keys: Vec<EntityKey>,
    /// Their ID associations, in entity order.
    pub refs: Vec<EntityRef>,
    /// How a person would name each entity with associations (`route
    /// 'r2'`), by entity index, ascending.
    pub labels: Vec<(u32, String)>,
    /// Entities that are `konnect-application-auth` plugins.
    pub app_auth: Vec<u32>,
    pub vault_refs: Vec<VaultRef>,
    /// Schema errors (the member name is filled in later), at most
    /// `report::MAX_MEMBER_ERRORS` of them.
    pub errors: Vec<MemberError>,
    /// Schema errors found past that limit, only counted.
    pub more_errors: usize,
    /// The decK form of the top-level entities (and `_plugin_configs`): the
    /// snapshot's material, serialized as each entity was checked.
    pub fragments: Fragments,
    /// Kong's declarative form where it differs (`config::declarative`):
    /// the collections that change, and those it leaves out.
    pub kong: Option<(Fragments, Vec<Coll>)>,
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

impl Model {
    /// The label of an entity that has associations.
    pub fn label(&self, entity: u32) -> &str {
        match self.labels.binary_search_by_key(&entity, |(e, _)| *e) {
            Ok(i) => &self.labels[i].1,
            Err(_) => "",
        }
    }
}

/// What requests a route matches, normalized for comparing routes of
/// different members. Routes that match on an `expression`, `sources` or
/// `destinations` are not compared (`RouteMatch::read` gives `None`).
/// Serde: a frozen member keeps its routes (`member::frozen`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RouteMatch {
    pub path: String,
    pub label: String,
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
    pub fn read(obj: &serde_json::Map<String, Value>, path: &str) -> Option<RouteMatch> {
        let strings = |f: &str| -> Option<Vec<String>> {
            match get_field(obj, f) {
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
        if let Some(Value::Object(h)) = get_field(obj, "headers") {
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
        let label = match get_field(obj, "name").and_then(Value::as_str) {
            Some(n) => format!("route {}", crate::report::quote(n)),
            None => format!("route at {path}"),
        };
        Some(RouteMatch {
            path: path.to_string(),
            label,
            protocols,
            hosts,
            paths,
            methods,
            headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn fit_keeps_the_elements_in_an_exact_block() {
        let mut v: Vec<String> = Vec::with_capacity(100);
        v.extend((0..37).map(|i| format!("s{i}")));
        let want = v.clone();
        let got = fit(v);
        assert_eq!(got, want);
        assert_eq!(got.capacity(), got.len());
        let empty: Vec<u8> = fit(Vec::with_capacity(16));
        assert_eq!(empty.capacity(), 0);
    }
}
