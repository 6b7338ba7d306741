//! The typed member model: what the rest of the engine needs to know about
//! each entity (its unique keys, its ID associations, its vault references),
//! with the entity's own JSON kept whole for the snapshot.

use serde_json::Value;

pub use super::schema::KeyKind;
use super::schema::Coll;
use crate::report::MemberError;

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

/// An ID association (SPEC §5.2) that must resolve inside the same member.
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
}
