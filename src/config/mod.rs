//! The decK 3.0 member-config model: parsing (JSON and YAML), schema checks,
//! and the extraction of keys, ID associations and vault references.
//!
//! Knows nothing about groups, composites, HTTP or storage.

pub mod model;
pub mod parse;
pub mod schema;
pub mod value;
mod walk;

pub use model::{Entity, Key, KeyKind, Model, Ref, RefBy, VaultRef};
pub use parse::{Format, ParseFailure, parse};
pub use schema::{BUILTIN_VAULTS, Coll};
pub use walk::describe;

use crate::report::{ErrorKind, MemberError};

/// Parses and checks one member config. Never fails: a document that does not
/// parse gives a `Model` whose only finding is the `parse_error`.
pub fn read_member(bytes: &[u8], format: Format) -> Model {
    match parse(bytes, format) {
        Ok(doc) => walk::read(doc),
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
    walk::read(doc)
}
