//! Findings and the report that carries them, with its two printers.

mod finding;
pub mod text;

pub use finding::{Conflict, ConflictKind, ErrorKind, MemberError};

use serde::{Deserialize, Serialize};

/// Most member errors one member config reports. Past it the rest are only
/// counted: a 3 MB body of a million `{}` services would otherwise answer
/// with 130 MB of errors (and a 64 MB body exhaust memory building them).
pub const MAX_MEMBER_ERRORS: usize = 1000;

/// The error that stands for the `more` errors past [`MAX_MEMBER_ERRORS`].
pub fn more_errors(kind: ErrorKind, more: usize) -> MemberError {
    MemberError::new(
        kind,
        "",
        "",
        format!(
            "{more} more member error(s) not listed: only the first {MAX_MEMBER_ERRORS} are reported; fix those and submit again"
        ),
    )
}

/// `OK`: no findings; `CONFLICT`: conflicts only; `INVALID`: member errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    Ok,
    Conflict,
    Invalid,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Conflict => "CONFLICT",
            State::Invalid => "INVALID",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSummary {
    pub name: String,
    pub entities: usize,
}

/// The JSON report of SPEC §7.3.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub state: State,
    pub members: Vec<MemberSummary>,
    pub conflicts: Vec<Conflict>,
    pub errors: Vec<MemberError>,
}

impl Report {
    pub fn new(
        members: Vec<MemberSummary>,
        conflicts: Vec<Conflict>,
        errors: Vec<MemberError>,
    ) -> Report {
        let state = if !errors.is_empty() {
            State::Invalid
        } else if !conflicts.is_empty() {
            State::Conflict
        } else {
            State::Ok
        };
        Report {
            state,
            members,
            conflicts,
            errors,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
