//! Findings and the report that carries them, with its two printers.

mod finding;
pub mod text;

pub use finding::{Conflict, ConflictKind, ErrorKind, MemberError, Note, Warning, WarningKind};

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

/// Most characters of a value quoted in a finding.
pub const QUOTE_CHARS: usize = 40;

/// A value as findings quote it: whole when short, else its first
/// [`QUOTE_CHARS`] characters and its length (`'aaaa…' (1048576 bytes)`),
/// so a 1 MB key never makes a 1 MB message. Control characters are escaped.
pub fn quote(s: &str) -> String {
    // Short, plain ASCII: nothing to escape or clip (the common case, and
    // every entity's label goes through here).
    if s.len() <= QUOTE_CHARS
        && s.bytes()
            .all(|b| (0x20..0x7f).contains(&b) && !matches!(b, b'\'' | b'"' | b'\\'))
    {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('\'');
        out.push_str(s);
        out.push('\'');
        return out;
    }
    let mut out = String::with_capacity(s.len().min(QUOTE_CHARS * 2) + 24);
    out.push('\'');
    let mut taken = 0;
    for (n, c) in s.chars().enumerate() {
        if n == QUOTE_CHARS {
            break;
        }
        taken += c.len_utf8();
        out.extend(c.escape_debug());
    }
    if taken < s.len() {
        out.push('…');
        out.push('\'');
        out.push_str(&format!(" ({} bytes)", s.len()));
    } else {
        out.push('\'');
    }
    out
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

/// The JSON report of README: Validate a composite from files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub state: State,
    pub members: Vec<MemberSummary>,
    pub conflicts: Vec<Conflict>,
    pub errors: Vec<MemberError>,
    /// Advisory: never part of `state` (README: Finding codes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
    /// What was not checked (a plugin config rgmerge does not model).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
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
            warnings: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The same report with its warnings and notes.
    pub fn with_advice(mut self, warnings: Vec<Warning>, notes: Vec<Note>) -> Report {
        self.warnings = warnings;
        self.notes = notes;
        self
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
