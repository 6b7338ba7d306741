//! Member configs as Kong entities, one at a time: what Konnect's
//! core-entities API reads and writes. A decK (or Kong declarative)
//! document indexed by entity ([`doc::Doc`]), the kinds of entity and their
//! fields as Kong's schemas declare them ([`kinds`]), plugin configs and
//! schemas in Kong's Admin API form ([`defaults`]), and one entity checked
//! alone by the member validator ([`validate_one`]).
//!
//! Knows nothing of HTTP, groups or storage: the server reads a group's
//! config, edits it here, and writes it back whole.

pub mod defaults;
pub mod doc;
pub mod kinds;

use serde_json::{Map, Value, json};

use crate::config::{Format, KongTarget};
use crate::member::{Member, MemberInfo};
use crate::report::{ErrorKind, MemberError};

/// A stored member config, JSON or YAML as its media type says, as a value.
pub fn parse_stored(bytes: &[u8], media_type: &str) -> Result<Value, String> {
    let format = if media_type.contains("json") {
        Format::Json
    } else {
        Format::Yaml
    };
    crate::config::parse(bytes, format).map_err(|e| e.message)
}

/// The collection an entity name of `schemas/{entity}/validate` stands for:
/// a decK collection name or a core-entities path segment.
pub fn collection_named(entity: &str) -> Option<&'static str> {
    crate::config::Coll::from_name(entity)
        .or_else(|| {
            kinds::KINDS
                .iter()
                .find(|k| k.top == entity)
                .map(|k| k.coll)
        })
        .map(|c| c.name())
}

/// The member errors of one entity of `collection`, checked alone by the
/// validator a whole-config write uses. References to other entities
/// can't resolve alone, so they are not errors here.
pub fn validate_one(
    collection: &str,
    body: Map<String, Value>,
    target: &KongTarget,
) -> Vec<MemberError> {
    let doc = json!({"_format_version": "3.0", collection: [Value::Object(body)]});
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    let info = MemberInfo {
        id: "validate".into(),
        name: "validate".into(),
        is_default: false,
    };
    let interner = crate::intern::Interner::new();
    let member = Member::build_for(info, &bytes, Format::Json, &interner, target);
    member
        .errors
        .into_iter()
        .filter(|e| e.kind != ErrorKind::UnresolvedReference)
        .collect()
}
