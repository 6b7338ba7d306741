//! The decK 3.0 member-config model: parsing (JSON and YAML), schema checks,
//! and the extraction of keys, ID associations and vault references.
//!
//! Knows nothing about groups, composites, HTTP or storage.

pub mod declarative;
pub mod kong;
pub mod model;
pub mod parse;
pub mod schema;
mod stream;
pub mod value;
mod walk;

pub use kong::{Edition, KONG_VERSION, KongTarget, PluginSet};
pub use model::{
    EntityKey, EntityPaths, EntityRef, Fragments, Key, Model, Ref, RefBy, RouteMatch, VaultRef,
};
pub use parse::{Format, ParseFailure, parse};
pub use schema::custom_entity_coll;
pub use schema::{BUILTIN_VAULTS, Coll, KeyKind};
pub use walk::describe;

use crate::intern::Interner;
use crate::report::{ErrorKind, MemberError};

/// Parses and checks one member config for the default data planes (Kong
/// Gateway Enterprise, bundled plugins). Never fails: a document that does
/// not parse gives a `Model` whose only finding is the `parse_error`.
pub fn read_member(bytes: &[u8], format: Format) -> Model {
    read_member_for(bytes, format, &KongTarget::default())
}

/// [`read_member`] for the given data planes (edition and plugin set).
pub fn read_member_for(bytes: &[u8], format: Format, target: &KongTarget) -> Model {
    read_member_in(bytes, format, target, &Interner::new())
}

/// [`read_member_for`], interning keys and references into `interner`.
///
/// JSON, and YAML in decK's block subset, are read an entity at a time
/// (`stream`): the document's tree is never built, only one batch of
/// entities (JSON) or one entity (YAML) at a time. Whatever those readers do
/// not accept goes through [`parse`] and the whole tree.
pub fn read_member_in(
    bytes: &[u8],
    format: Format,
    target: &KongTarget,
    interner: &Interner,
) -> Model {
    read_member_checked(bytes, format, target, interner, Checks::All)
}

/// How much of a member's validation a read runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checks {
    All,
    /// For bytes this build already found free of errors for this target
    /// (see `member::ValidationStamp`): the checks that can only find
    /// errors are skipped. The model is the same; start-up is faster.
    Trusted,
}

/// [`read_member_in`], with the checks `checks` says.
pub fn read_member_checked(
    bytes: &[u8],
    format: Format,
    target: &KongTarget,
    interner: &Interner,
    checks: Checks,
) -> Model {
    let b = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    if let Ok(text) = std::str::from_utf8(b) {
        let mut src: Option<Box<dyn stream::Source>> = match format {
            Format::Json => stream::Json::new(b).map(|s| Box::new(s) as _),
            Format::Yaml => stream::Yaml::new(text).map(|s| Box::new(s) as _),
        };
        if let Some(src) = src.as_deref_mut()
            && let Some(model) = walk::read_streamed(src, target, interner, checks, b.len())
        {
            return model;
        }
    }
    match parse(bytes, format) {
        Ok(doc) => walk::read(doc, target, interner, checks),
        Err(f) => {
            let mut e = MemberError::new(ErrorKind::ParseError, "", "", f.message);
            e.line = f.line;
            e.column = f.column;
            Model {
                errors: vec![e],
                ..Model::default()
            }
        }
    }
}

/// Reads an already parsed document (used where the bytes were parsed earlier).
pub fn read_value(doc: serde_json::Value) -> Model {
    read_value_for(doc, &KongTarget::default())
}

/// [`read_value`] for the given data planes.
pub fn read_value_for(doc: serde_json::Value, target: &KongTarget) -> Model {
    read_value_in(doc, target, &Interner::new())
}

/// [`read_value_for`], interning keys and references into `interner`.
pub fn read_value_in(doc: serde_json::Value, target: &KongTarget, interner: &Interner) -> Model {
    walk::read(doc, target, interner, Checks::All)
}
