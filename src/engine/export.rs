//! A whole backup of one point in time (issue 27): every record the store
//! keeps — groups with their memberships, pins and pinned data-plane
//! certificates, the history entries and config blobs of what each group
//! serves, teams with their credentials, token and session hashes and
//! grants, the access key that keys those hashes, runtime instances, and
//! the audit log.
//!
//! Online, [`Engine::export`] takes it on the writer between two batches,
//! after queued audit entries are stored: no write can interleave, and every
//! acknowledged write is in it with its audit entry (on PostgreSQL a write's
//! entry is stored in the writer job that commits it:
//! `Writer::store_write_audit`). On PostgreSQL it is this daemon's state at
//! its log position, node reports as this daemon last had them. Offline,
//! `rgmerge export --data-dir` makes the same [`Dump`] from a restored
//! registry ([`Dump::of`]). [`Dump::lines`] is its wire form (one JSON
//! object a line, ending with a count), which `GET /v2/backup` streams and
//! [`Dump::read_lines`] reads back; `commands::transfer` writes it as files.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Engine, Writer};
use crate::config::Format;
use crate::registry::record::{AccessRecord, Blob, Change, GroupRecord, HistoryEntry};
use crate::registry::{AuditEntry, AuditFilter, Kind, Node, Refusal, Registry, now_ms, rfc3339_ms};

/// The version of the export format this binary writes (and the newest it
/// reads). Version 1 was the directory of groups and configs with no
/// manifest.
pub const FORMAT: u32 = 2;

/// Everything the store holds at one point in time, as records.
#[derive(Debug, Default)]
pub struct Dump {
    /// The format version of the daemon that made it.
    pub format: u32,
    /// The version of the rgmerge that made it.
    pub rgmerge: String,
    /// When it was taken, RFC 3339 UTC.
    pub at: String,
    /// Every group's record: fields, memberships, config hash, served
    /// snapshot, pin, pinned data-plane certificates.
    pub groups: Vec<GroupRecord>,
    /// Each group's kept history entries.
    pub history: Vec<(Uuid, HistoryEntry)>,
    /// Every config a group holds or a served snapshot is made of.
    pub blobs: BTreeMap<String, Blob>,
    /// The token-hash key and every team (`None`: access control was never
    /// set up).
    pub access: Option<AccessRecord>,
    /// Each group's runtime instances as they last reported.
    pub nodes: Vec<(Uuid, Node)>,
    /// The audit log, oldest first.
    pub audit: Vec<AuditEntry>,
}

/// One line of the wire form.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "part", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Header {
        format: u32,
        rgmerge: String,
        at: String,
    },
    Group {
        record: Box<GroupRecord>,
    },
    History {
        group: Uuid,
        entry: Box<HistoryEntry>,
    },
    /// A config: its text when it is UTF-8 (always, for a config that
    /// parsed), else its bytes in hex.
    Blob {
        hash: String,
        format: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hex: Option<String>,
    },
    AccessKey {
        key: String,
    },
    Team {
        record: Box<crate::registry::TeamRecord>,
    },
    Node {
        group: Uuid,
        node: Box<Node>,
    },
    Audit {
        entry: Box<AuditEntry>,
    },
    /// The last line: how many came before it, so a cut stream is noticed.
    End {
        lines: u64,
    },
    /// The daemon could not go on (the stream ends here).
    Error {
        detail: String,
    },
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Json => "json",
        Format::Yaml => "yaml",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

impl Dump {
    /// The dump of `reg`: its records, the blobs its configs and served
    /// snapshots need (`blob` finds those no current config holds), and
    /// `audit` (oldest first).
    pub fn of(
        reg: &Registry,
        mut blob: impl FnMut(&[String]) -> Result<HashMap<String, Blob>, String>,
        audit: Vec<AuditEntry>,
    ) -> Result<Dump, String> {
        let mut blobs = BTreeMap::new();
        for g in reg.groups() {
            if let Kind::Standard { config, .. } = &g.kind {
                blobs.insert(config.hash.clone(), config.blob.clone());
            }
        }
        let mut missing: Vec<String> = reg
            .groups()
            .flat_map(|g| g.snapshot.sources.iter().map(|(_, h)| h))
            .filter(|h| !blobs.contains_key(*h))
            .cloned()
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            blobs.extend(blob(&missing)?);
        }
        let mut access: Option<AccessRecord> = None;
        for c in reg.access_changes() {
            match c {
                Change::PutAccessKey(key) => {
                    access.get_or_insert_with(AccessRecord::default).key = key;
                }
                Change::PutTeam(t) => access
                    .get_or_insert_with(AccessRecord::default)
                    .teams
                    .push(*t),
                _ => {}
            }
        }
        let mut dump = Dump {
            format: FORMAT,
            rgmerge: env!("CARGO_PKG_VERSION").to_string(),
            at: rfc3339_ms(now_ms()),
            access,
            audit,
            blobs,
            ..Dump::default()
        };
        for g in reg.groups() {
            dump.groups.push(reg.record(g));
            dump.history
                .extend(g.history.iter().map(|e| (g.meta.id, (**e).clone())));
            dump.nodes
                .extend(g.nodes.list().iter().map(|n| (g.meta.id, (**n).clone())));
        }
        Ok(dump)
    }

    /// The wire form, a line at a time (each ends with `\n`), made as it
    /// is read.
    pub fn lines(self) -> impl Iterator<Item = Vec<u8>> + Send + 'static {
        let header = std::iter::once(Line::Header {
            format: self.format,
            rgmerge: self.rgmerge,
            at: self.at,
        });
        let groups = self.groups.into_iter().map(|r| Line::Group {
            record: Box::new(r),
        });
        let history = self.history.into_iter().map(|(group, e)| Line::History {
            group,
            entry: Box::new(e),
        });
        let blobs = self.blobs.into_iter().map(|(hash, b)| {
            let format = format_name(b.format).to_string();
            match String::from_utf8(b.bytes) {
                Ok(text) => Line::Blob {
                    hash,
                    format,
                    text: Some(text),
                    hex: None,
                },
                Err(e) => Line::Blob {
                    hash,
                    format,
                    text: None,
                    hex: Some(hex(e.as_bytes())),
                },
            }
        });
        let (key, teams) = match self.access {
            Some(a) => (Some(a.key), a.teams),
            None => (None, Vec::new()),
        };
        let key = key.into_iter().map(|key| Line::AccessKey { key });
        let teams = teams.into_iter().map(|t| Line::Team {
            record: Box::new(t),
        });
        let nodes = self.nodes.into_iter().map(|(group, n)| Line::Node {
            group,
            node: Box::new(n),
        });
        let audit = self
            .audit
            .into_iter()
            .map(|e| Line::Audit { entry: Box::new(e) });
        let mut count = 0u64;
        let mut failed = false;
        header
            .chain(groups)
            .chain(history)
            .chain(blobs)
            .chain(key)
            .chain(teams)
            .chain(nodes)
            .chain(audit)
            .map(Some)
            .chain(std::iter::once(None))
            .map_while(move |line| {
                if failed {
                    return None;
                }
                let line = line.unwrap_or(Line::End { lines: count });
                count += 1;
                let mut bytes = match serde_json::to_vec(&line) {
                    Ok(b) => b,
                    Err(e) => {
                        failed = true;
                        let detail = format!("can't write a record of the backup: {e}");
                        serde_json::to_vec(&Line::Error { detail }).unwrap_or_default()
                    }
                };
                bytes.push(b'\n');
                Some(bytes)
            })
    }

    /// Reads the wire form back. An error names the line and what is wrong
    /// with it; a stream without its last line is cut.
    pub fn read_lines(
        mut next: impl FnMut() -> Result<Option<Vec<u8>>, String>,
    ) -> Result<Dump, String> {
        let mut dump = Dump::default();
        let mut n = 0u64;
        let mut header = false;
        let mut access: Option<AccessRecord> = None;
        loop {
            let Some(bytes) = next()? else {
                return Err(format!(
                    "the backup stream ended after {n} line(s), before its last line: it is incomplete"
                ));
            };
            n += 1;
            let line: Line = serde_json::from_slice(&bytes)
                .map_err(|e| format!("line {n} of the backup stream: {e}"))?;
            if !header && !matches!(line, Line::Header { .. } | Line::Error { .. }) {
                return Err("the backup stream does not start with its header".into());
            }
            match line {
                Line::Header {
                    format,
                    rgmerge,
                    at,
                } => {
                    if format != FORMAT {
                        return Err(format!(
                            "the daemon sent backup format {format}; this rgmerge reads format {FORMAT}"
                        ));
                    }
                    header = true;
                    dump.format = format;
                    dump.rgmerge = rgmerge;
                    dump.at = at;
                }
                Line::Group { record } => dump.groups.push(*record),
                Line::History { group, entry } => dump.history.push((group, *entry)),
                Line::Blob {
                    hash,
                    format,
                    text,
                    hex,
                } => {
                    let format = match format.as_str() {
                        "json" => Format::Json,
                        "yaml" => Format::Yaml,
                        other => return Err(format!("line {n}: unknown config format {other:?}")),
                    };
                    let bytes = match (text, hex) {
                        (Some(t), None) => t.into_bytes(),
                        (None, Some(h)) => {
                            unhex(&h).ok_or_else(|| format!("line {n}: the config is not hex"))?
                        }
                        _ => return Err(format!("line {n}: a config needs text or hex")),
                    };
                    let blob = Blob { format, bytes };
                    if blob.hash() != hash {
                        return Err(format!("line {n}: config {hash} does not have that hash"));
                    }
                    dump.blobs.insert(hash, blob);
                }
                Line::AccessKey { key } => {
                    access.get_or_insert_with(AccessRecord::default).key = key
                }
                Line::Team { record } => access
                    .get_or_insert_with(AccessRecord::default)
                    .teams
                    .push(*record),
                Line::Node { group, node } => dump.nodes.push((group, *node)),
                Line::Audit { entry } => dump.audit.push(*entry),
                Line::End { lines } => {
                    if lines + 1 != n {
                        return Err(format!(
                            "the backup stream says it sent {lines} line(s) before its end, but {} came",
                            n - 1
                        ));
                    }
                    if next()?.is_some() {
                        return Err(format!(
                            "the backup stream goes on after its end (line {n})"
                        ));
                    }
                    if access.as_ref().is_some_and(|a| a.key.is_empty()) {
                        return Err("the backup stream has teams but no access key".into());
                    }
                    dump.access = access;
                    return Ok(dump);
                }
                Line::Error { detail } => {
                    return Err(format!("the daemon could not finish the backup: {detail}"));
                }
            }
        }
    }
}

impl Writer {
    /// The dump of this moment: queued audit entries stored first, so every
    /// write is in it with its audit entry; taken between two batches, so
    /// no write is half in it.
    fn dump(&mut self) -> Result<Dump, Refusal> {
        let mut audit = self.read_audit(&AuditFilter {
            limit: usize::MAX,
            ..AuditFilter::default()
        })?;
        audit.reverse();
        let mut failed = None;
        let dump = Dump::of(
            &self.reg,
            |hashes| {
                self.blobs(hashes).map_err(|e| {
                    let detail = e.detail.clone();
                    failed = Some(e);
                    detail
                })
            },
            audit,
        );
        match (dump, failed) {
            (Ok(d), _) => Ok(d),
            (Err(_), Some(refusal)) => Err(refusal),
            (Err(detail), None) => Err(Refusal::internal(detail)),
        }
    }
}

impl Engine {
    /// A whole backup of one point in time (see the module's text).
    pub async fn export(&self) -> Result<Dump, Refusal> {
        self.submit(|w| w.dump()).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dump with a UTF-8 config, one that is not, a team and an audit entry.
    fn sample() -> Dump {
        let mut blobs = BTreeMap::new();
        for b in [
            Blob {
                format: Format::Yaml,
                bytes: b"_format_version: \"3.0\"\n".to_vec(),
            },
            Blob {
                format: Format::Json,
                bytes: vec![0xff, 0xfe, b'{', b'}'],
            },
        ] {
            blobs.insert(b.hash(), b);
        }
        Dump {
            format: FORMAT,
            rgmerge: "0.0.0".into(),
            at: "2026-12-07T00:00:00Z".into(),
            blobs,
            access: Some(AccessRecord {
                key: "ab".repeat(32),
                teams: Vec::new(),
            }),
            ..Dump::default()
        }
    }

    fn read(lines: Vec<Vec<u8>>) -> Result<Dump, String> {
        let mut it = lines.into_iter().map(|mut l| {
            l.pop();
            l
        });
        Dump::read_lines(|| Ok(it.next()))
    }

    #[test]
    fn the_wire_form_reads_back_whole() {
        let lines: Vec<Vec<u8>> = sample().lines().collect();
        let back = read(lines).expect("reads back");
        let want = sample();
        assert_eq!(back.blobs, want.blobs);
        assert_eq!(back.access, want.access);
        assert_eq!((back.format, back.at), (want.format, want.at));
    }

    /// Each damage, and the words its error must have.
    #[test]
    fn a_cut_changed_or_foreign_stream_is_refused_saying_why() {
        type Damage = fn(&mut Vec<Vec<u8>>);
        let cases: [(&str, Damage, &str); 6] = [
            ("cut before its end", |l| drop(l.pop()), "incomplete"),
            ("a line lost", |l| drop(l.remove(1)), "says it sent"),
            (
                "a line after the end",
                |l| l.push(b"{}\n".to_vec()),
                "goes on after its end",
            ),
            (
                "a changed config",
                |l| {
                    let i = l
                        .iter()
                        .position(|x| x.windows(6).any(|w| w == b"\"yaml\""))
                        .expect("the yaml blob");
                    l[i] = String::from_utf8_lossy(&l[i])
                        .replace("3.0", "3.1")
                        .into_bytes();
                },
                "does not have that hash",
            ),
            (
                "another format",
                |l| {
                    l[0] = String::from_utf8_lossy(&l[0])
                        .replace("\"format\":2", "\"format\":9")
                        .into_bytes()
                },
                "backup format 9",
            ),
            (
                "no header",
                |l| drop(l.remove(0)),
                "does not start with its header",
            ),
        ];
        for (name, damage, says) in cases {
            let mut lines: Vec<Vec<u8>> = sample().lines().collect();
            damage(&mut lines);
            let err = read(lines).err().unwrap_or_default();
            assert!(err.contains(says), "{name}: {err:?}");
        }
    }
}
