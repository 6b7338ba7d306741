//! Immutable snapshots: a group's effective config as one decK 3.0 JSON
//! document, held as a rope of shared member fragments.
//!
//! Assembling a snapshot copies no entity bytes: it lists, per collection, the
//! members' pre-serialized chunks (`Bytes` are reference counted). Its hash is
//! derived from the chunk hashes, so publishing after one member changed costs
//! O(members × collections), not O(config size).

use bytes::Bytes;
use serde::Serialize;

use crate::config::Coll;
use crate::member::Member;

/// The document a group serves before its first conflict-free merge.
pub const EMPTY_CONFIG: &[u8] = br#"{"_format_version":"3.0"}"#;

/// A version of a group's effective config.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub version: u64,
    pub body: Body,
}

/// The bytes of a snapshot and their content hash, independent of version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body {
    parts: Vec<Bytes>,
    len: usize,
    hash: String,
}

impl Body {
    /// `{"_format_version":"3.0"}`.
    pub fn empty() -> Body {
        Body::assemble(std::iter::empty::<&Member>())
    }

    /// Splices the members' chunks, in the given order, into one document.
    pub fn assemble<'a>(members: impl Iterator<Item = &'a Member> + Clone) -> Body {
        let mut parts: Vec<Bytes> = Vec::new();
        let mut hasher = blake3::Hasher::new();
        let mut push = |parts: &mut Vec<Bytes>, b: Bytes, h: Option<&blake3::Hash>| {
            match h {
                Some(h) => hasher.update(h.as_bytes()),
                None => hasher.update(&(b.len() as u64).to_le_bytes()).update(&b),
            };
            parts.push(b);
        };
        push(
            &mut parts,
            Bytes::from_static(b"{\"_format_version\":\"3.0\""),
            None,
        );
        for coll in Coll::ALL {
            let mut first = true;
            for m in members.clone() {
                let Some(c) = m.chunk(coll) else { continue };
                if c.bytes.is_empty() {
                    continue;
                }
                let sep = if first {
                    open(coll)
                } else {
                    Bytes::from_static(b",")
                };
                push(&mut parts, sep, None);
                push(&mut parts, c.bytes.clone(), Some(&c.hash));
                first = false;
            }
            if !first {
                let close: &'static [u8] = if coll == Coll::PluginConfigs {
                    b"}"
                } else {
                    b"]"
                };
                push(&mut parts, Bytes::from_static(close), None);
            }
        }
        push(&mut parts, Bytes::from_static(b"}"), None);
        let len = parts.iter().map(Bytes::len).sum();
        Body {
            parts,
            len,
            hash: hasher.finalize().to_hex().to_string(),
        }
    }

    /// The content hash (lowercase hex).
    pub fn hash(&self) -> &str {
        &self.hash
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, to stream without copying.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The whole document in one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for p in &self.parts {
            out.extend_from_slice(p);
        }
        out
    }
}

fn open(coll: Coll) -> Bytes {
    let bracket = if coll == Coll::PluginConfigs {
        '{'
    } else {
        '['
    };
    Bytes::from(format!(",\"{}\":{bracket}", coll.name()))
}

/// Where each entity of a snapshot came from: per collection, consecutive
/// runs of entities and the member that contributed them.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ProvenanceRun {
    pub member: String,
    pub member_id: String,
    /// Index of the run's first entity in the snapshot's collection.
    pub start: usize,
    pub count: usize,
}

pub fn provenance<'a>(
    members: impl Iterator<Item = &'a Member> + Clone,
) -> Vec<(Coll, Vec<ProvenanceRun>)> {
    let mut out = Vec::new();
    for coll in Coll::ALL {
        let mut runs = Vec::new();
        let mut start = 0;
        for m in members.clone() {
            if let Some(c) = m.chunk(coll).filter(|c| c.count > 0) {
                runs.push(ProvenanceRun {
                    member: m.info.name.clone(),
                    member_id: m.info.id.clone(),
                    start,
                    count: c.count,
                });
                start += c.count;
            }
        }
        if !runs.is_empty() {
            out.push((coll, runs));
        }
    }
    out
}
