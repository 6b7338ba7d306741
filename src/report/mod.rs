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

/// `OK`: no findings; `CONFLICT`: conflicts only; `INVALID`: member errors
/// (with or without conflicts: the single value older clients read; see
/// [`Report::states`] for both).
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

    /// Every state that holds, member errors first: `[OK]`, `[CONFLICT]`,
    /// `[INVALID]` or `[INVALID, CONFLICT]`. A member error and a conflict
    /// need different people to act, so neither may hide the other.
    pub fn all(errors: bool, conflicts: bool) -> Vec<State> {
        match (errors, conflicts) {
            (false, false) => vec![State::Ok],
            (false, true) => vec![State::Conflict],
            (true, false) => vec![State::Invalid],
            (true, true) => vec![State::Invalid, State::Conflict],
        }
    }

    /// `states` in words: `OK`, `CONFLICT`, `INVALID`, `INVALID and CONFLICT`.
    pub fn words(states: &[State]) -> String {
        states
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" and ")
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
    /// One value, as before: `INVALID` when there are member errors, even
    /// with conflicts too.
    pub state: State,
    /// Every state that holds ([`State::all`]): both when there are member
    /// errors and conflicts.
    #[serde(default)]
    pub states: Vec<State>,
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
            states: State::all(!errors.is_empty(), !conflicts.is_empty()),
            members,
            conflicts,
            errors,
            warnings: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// [`Report::states`] in words, e.g. `INVALID and CONFLICT`.
    pub fn states_words(&self) -> String {
        if self.states.is_empty() {
            // A report from before `states` (deserialized).
            return self.state.as_str().to_string();
        }
        State::words(&self.states)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn error() -> MemberError {
        MemberError::new(
            ErrorKind::SchemaError,
            "services",
            "services[0]",
            "a message",
        )
    }

    #[test]
    fn a_member_error_and_a_conflict_are_both_said() {
        let conflict = || Conflict {
            kind: ConflictKind::DuplicateName,
            entity: "services".into(),
            field: "name".into(),
            value: "shared".into(),
            members: vec!["blue".into(), "yellow".into()],
            paths: Default::default(),
            noun: "service",
        };
        let r = Report::new(vec![], vec![], vec![]);
        assert_eq!((r.state, r.states_words().as_str()), (State::Ok, "OK"));
        let r = Report::new(vec![], vec![conflict()], vec![]);
        assert_eq!(r.states, vec![State::Conflict]);
        let r = Report::new(vec![], vec![], vec![error()]);
        assert_eq!(r.states, vec![State::Invalid]);
        let r = Report::new(vec![], vec![conflict()], vec![error()]);
        assert_eq!(r.state, State::Invalid, "the single value is as before");
        assert_eq!(r.states, vec![State::Invalid, State::Conflict]);
        assert_eq!(r.states_words(), "INVALID and CONFLICT");
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).expect("json");
        assert_eq!(json["state"], "INVALID");
        assert_eq!(json["states"], serde_json::json!(["INVALID", "CONFLICT"]));
    }
}
