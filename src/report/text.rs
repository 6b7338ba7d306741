//! The report for people: one block per finding, like a compiler error —
//! what is wrong, where (member and path), and how to fix it.

use std::fmt::Write;

use super::{Conflict, ConflictKind, ErrorKind, MemberError, Report, WarningKind};

/// How to resolve each finding code; the README's catalogue says the same.
pub fn help_for_error(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ParseError => {
            "fix the syntax at the line and column shown; the file must be one JSON or YAML document"
        }
        ErrorKind::SchemaError => {
            "make the field match what Kong Gateway accepts (its entity and plugin schemas): the type, the allowed values, the required fields, UUID ids"
        }
        ErrorKind::DuplicateInMember => {
            "keep one of the two entities or give one of them a different key"
        }
        ErrorKind::UnresolvedReference => {
            "define the referenced entity in this member, or correct the reference (by id or name)"
        }
        ErrorKind::CrossMemberReference => {
            "ID associations stay inside one group: move the referencing entity into the member that owns the target, or point it at an entity of its own member"
        }
        ErrorKind::AppRegistrationOutsideDefault => {
            "move the `konnect-application-auth` plugin to the default group's config"
        }
    }
}

pub fn help_for_conflict(kind: ConflictKind) -> &'static str {
    match kind {
        ConflictKind::DuplicateId => {
            "ids are unique across a composite: drop the `id` from all but one member (decK generates one) or give each member its own"
        }
        ConflictKind::DuplicateName => {
            "names are unique across a composite: rename the entity in all but one member (a team prefix such as `blue-` keeps them apart), or keep it in one member only"
        }
        ConflictKind::DuplicateVaultPrefix => {
            "vault prefixes are shared by the whole composite: keep the vault in one member (others may reference it by prefix) or rename a prefix"
        }
        ConflictKind::DuplicateGlobalPlugin => {
            "a global plugin applies to the whole composite: keep it in one member (usually the platform team's) and scope the others to a service, route or consumer"
        }
        ConflictKind::DuplicateCredential => {
            "credentials of every member authenticate against the whole composite: give each consumer its own key"
        }
        ConflictKind::UnresolvedVaultReference => {
            "define a vault with this prefix in some member of the composite, or use a built-in backend (env, aws, gcp, hcv, azure, conjur)"
        }
    }
}

pub fn help_for_warning(kind: WarningKind) -> &'static str {
    match kind {
        WarningKind::SharedAclGroup => {
            "consumers of several members share this ACL group, so an `acl` plugin allowing it lets all of them in: prefix group names per team if teams must stay isolated"
        }
        WarningKind::OverlappingRoute => {
            "Kong sends a request both routes match to one of them: narrow one route (a host, a path prefix or a header of its own) so each team's traffic reaches its own service"
        }
    }
}

pub fn describe_conflict(c: &Conflict) -> String {
    let noun = if c.noun.is_empty() { "entity" } else { c.noun };
    match c.kind {
        ConflictKind::UnresolvedVaultReference => format!(
            "{noun} field `{}` references `{}`, but no member of the composite defines that vault prefix",
            c.field, c.value
        ),
        ConflictKind::DuplicateGlobalPlugin => format!(
            "global plugin {} is defined by {} members: {}",
            super::quote(&c.value),
            c.members.len(),
            c.members.join(", ")
        ),
        _ => format!(
            "{noun} {} {} is defined by {} members: {}",
            c.field,
            super::quote(&c.value),
            c.members.len(),
            c.members.join(", ")
        ),
    }
}

/// Renders `report` for a terminal (no colour: it is also read in CI logs).
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for e in &report.errors {
        render_error(&mut out, e);
    }
    for c in &report.conflicts {
        let _ = writeln!(out, "conflict[{}]: {}", c.kind.code(), describe_conflict(c));
        for m in &c.members {
            let _ = writeln!(
                out,
                "  --> {m}: {}",
                c.paths.get(m).map(String::as_str).unwrap_or("?")
            );
        }
        let _ = writeln!(out, "   = help: {}\n", help_for_conflict(c.kind));
    }
    for w in &report.warnings {
        let _ = writeln!(out, "warning[{}]: {}", w.kind.code(), w.message);
        for m in &w.members {
            let _ = writeln!(
                out,
                "  --> {m}: {}",
                w.paths.get(m).map(String::as_str).unwrap_or("?")
            );
        }
        let _ = writeln!(out, "   = help: {}\n", help_for_warning(w.kind));
    }
    for n in &report.notes {
        let _ = writeln!(out, "note[{}]: {}", n.kind, n.message);
        let _ = writeln!(out, "  --> {}: {}\n", n.member, n.path);
    }
    let entities: usize = report.members.iter().map(|m| m.entities).sum();
    let _ = writeln!(
        out,
        "{}: {} member(s), {} entities, {} conflict(s), {} member error(s){}",
        report.states_words(),
        report.members.len(),
        entities,
        report.conflicts.len(),
        report.errors.len(),
        if report.warnings.is_empty() {
            String::new()
        } else {
            format!(", {} warning(s)", report.warnings.len())
        }
    );
    out
}

fn render_error(out: &mut String, e: &MemberError) {
    let _ = writeln!(out, "error[{}]: {}", e.kind.code(), e.message);
    let place = if e.path.is_empty() {
        "(document)"
    } else {
        e.path.as_str()
    };
    match (e.line, e.column) {
        (Some(l), Some(c)) => {
            let _ = writeln!(out, "  --> {}: {place} (line {l}, column {c})", e.member);
        }
        _ => {
            let _ = writeln!(out, "  --> {}: {place}", e.member);
        }
    }
    let _ = writeln!(out, "   = help: {}\n", help_for_error(e.kind));
}
