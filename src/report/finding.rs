//! The two families of findings (README: Finding codes): member errors and conflicts.
//!
//! Findings are plain data: every layer that finds something wrong returns
//! these as values instead of failing, so a report always lists *everything*.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One member's config alone is wrong; the member's update is rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    ParseError,
    SchemaError,
    DuplicateInMember,
    UnresolvedReference,
    CrossMemberReference,
    AppRegistrationOutsideDefault,
}

impl ErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::ParseError => "parse_error",
            ErrorKind::SchemaError => "schema_error",
            ErrorKind::DuplicateInMember => "duplicate_in_member",
            ErrorKind::UnresolvedReference => "unresolved_reference",
            ErrorKind::CrossMemberReference => "cross_member_reference",
            ErrorKind::AppRegistrationOutsideDefault => "app_registration_outside_default",
        }
    }
}

/// Members are valid alone but collide together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    DuplicateId,
    DuplicateName,
    DuplicateVaultPrefix,
    DuplicateGlobalPlugin,
    DuplicateCredential,
    UnresolvedVaultReference,
}

impl ConflictKind {
    pub fn code(self) -> &'static str {
        match self {
            ConflictKind::DuplicateId => "duplicate_id",
            ConflictKind::DuplicateName => "duplicate_name",
            ConflictKind::DuplicateVaultPrefix => "duplicate_vault_prefix",
            ConflictKind::DuplicateGlobalPlugin => "duplicate_global_plugin",
            ConflictKind::DuplicateCredential => "duplicate_credential",
            ConflictKind::UnresolvedVaultReference => "unresolved_vault_reference",
        }
    }
}

/// A member error: names the member, the entity collection, the path inside
/// the member config, and says what is wrong in words a person can act on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MemberError {
    #[serde(rename = "type")]
    pub kind: ErrorKind,
    pub member: String,
    pub entity: String,
    pub path: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub column: Option<u64>,
}

impl MemberError {
    pub fn new(
        kind: ErrorKind,
        entity: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> MemberError {
        MemberError {
            kind,
            member: String::new(),
            entity: entity.into(),
            path: path.into(),
            message: message.into(),
            line: None,
            column: None,
        }
    }
}

/// A conflict between members. `members` is sorted by name and `paths` maps
/// each member to where the colliding entity sits in its config.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Conflict {
    #[serde(rename = "type")]
    pub kind: ConflictKind,
    pub entity: String,
    pub field: String,
    pub value: String,
    pub members: Vec<String>,
    pub paths: BTreeMap<String, String>,
    /// What one entity of `entity` is called in a sentence (`service`), for
    /// the text printer; not part of the JSON report.
    #[serde(skip)]
    pub noun: &'static str,
}

/// Advisory findings (README: Finding codes): they never change a composite's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// The same ACL group name used by consumers of two or more members.
    SharedAclGroup,
    /// Routes of two or more members that match the same requests.
    OverlappingRoute,
}

impl WarningKind {
    pub fn code(self) -> &'static str {
        match self {
            WarningKind::SharedAclGroup => "shared_acl_group",
            WarningKind::OverlappingRoute => "overlapping_route",
        }
    }
}

/// A warning between members: like a conflict, it names every member and
/// where each one's entity sits, and says in words what overlaps.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Warning {
    #[serde(rename = "type")]
    pub kind: WarningKind,
    pub entity: String,
    pub value: String,
    pub members: Vec<String>,
    pub paths: BTreeMap<String, String>,
    pub message: String,
}

/// Something rgmerge did not check, said once so that it never passes
/// silently (a plugin whose config schema is not modelled).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Note {
    #[serde(rename = "type")]
    pub kind: String,
    pub member: String,
    pub path: String,
    pub message: String,
}
