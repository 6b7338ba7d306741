//! Why a write was refused: typed values the server maps to HTTP. The
//! registry says what went wrong; it never picks a status or a title.

/// What kind of refusal; the server turns it into a status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalKind {
    /// The request itself is wrong (a bad name, an unknown member id).
    Invalid,
    NotFound,
    /// The request is well formed but collides with current state.
    Conflict,
    /// A composite's config can't be written.
    ReadOnly,
    /// The store could not make the write durable.
    Storage,
    Internal,
}

/// A refused request: its kind, a sentence for people, and (when one is to
/// blame) the request field at fault (`name`, `members[2].id`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub detail: String,
    pub field: Option<String>,
}

impl Refusal {
    fn new(kind: RefusalKind, detail: impl Into<String>) -> Refusal {
        Refusal {
            kind,
            detail: detail.into(),
            field: None,
        }
    }
    /// Names the request field at fault.
    pub fn on(mut self, field: impl Into<String>) -> Refusal {
        self.field = Some(field.into());
        self
    }
    pub fn invalid(detail: impl Into<String>) -> Refusal {
        Refusal::new(RefusalKind::Invalid, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Refusal {
        Refusal::new(RefusalKind::NotFound, detail)
    }
    pub fn conflict(detail: impl Into<String>) -> Refusal {
        Refusal::new(RefusalKind::Conflict, detail)
    }
    pub fn read_only(detail: impl Into<String>) -> Refusal {
        Refusal::new(RefusalKind::ReadOnly, detail)
    }
    pub fn internal(detail: impl Into<String>) -> Refusal {
        Refusal::new(RefusalKind::Internal, detail)
    }
    pub fn storage(detail: impl Into<String>) -> Refusal {
        Refusal::new(RefusalKind::Storage, detail)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

pub type Result<T> = std::result::Result<T, Refusal>;
