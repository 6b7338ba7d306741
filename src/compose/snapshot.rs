//! Immutable snapshots: a group's effective config as one decK 3.0 JSON
//! document, held as a rope of shared member fragments.
//!
//! Assembling a snapshot copies no entity bytes: it lists, per collection, the
//! members' pre-serialized chunks (`Bytes` are reference counted). Its hash is
//! derived from the chunk hashes, so publishing after one member changed costs
//! O(members × collections), not O(config size).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::Serialize;

use crate::config::Coll;
use crate::member::{Chunk, Member};

/// Which form of the effective config a snapshot is.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Form {
    /// Kong's declarative format (`declarative_config`, `POST /config`):
    /// what data planes load (README: What rgmerge checks). decK-only keys are expanded or left out.
    #[default]
    Kong,
    /// The decK 3.0 file form, as members wrote it (`?format=deck`).
    Deck,
}

impl Form {
    /// `kong` or `deck`, as `?format=` and `--format` spell it.
    pub fn parse(s: &str) -> Option<Form> {
        match s {
            "kong" | "declarative" => Some(Form::Kong),
            "deck" => Some(Form::Deck),
            _ => None,
        }
    }

    /// The chunks of this form of one member.
    pub fn chunks(self, m: &Member) -> &[Chunk] {
        match self {
            Form::Kong => m.kong(),
            Form::Deck => &m.chunks,
        }
    }
}

/// The document a group serves before its first conflict-free merge.
pub const EMPTY_CONFIG: &[u8] = br#"{"_format_version":"3.0"}"#;

/// The bytes of a snapshot and their content hash, independent of version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body {
    parts: Vec<Bytes>,
    len: usize,
    hash: String,
    wire: WireCache,
    derived: Derived,
}

/// What a layer above derives from a body (the cluster endpoint's Kong hash
/// and encoded payloads), kept as long as the body and shared by its clones,
/// so it is computed once per snapshot however many readers ask. Type-erased:
/// compose knows nothing of what is kept. Not part of the value.
#[derive(Clone, Default)]
struct Derived(Arc<OnceLock<Arc<dyn std::any::Any + Send + Sync>>>);

impl PartialEq for Derived {
    fn eq(&self, _: &Derived) -> bool {
        true
    }
}

impl Eq for Derived {}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Derived")
    }
}

/// [`Body::wire_parts`], computed on first use and shared by clones. Not
/// part of the value: two bodies with the same parts are equal whether or
/// not either has been sent yet.
#[derive(Clone, Default)]
struct WireCache(Arc<OnceLock<Arc<[Bytes]>>>);

impl PartialEq for WireCache {
    fn eq(&self, _: &WireCache) -> bool {
        true
    }
}

impl Eq for WireCache {}

impl std::fmt::Debug for WireCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WireCache")
    }
}

/// Parts shorter than this are copied together for the wire; longer ones
/// are sent as they are, without copying.
const WIRE_SMALL_PART: usize = 4 * 1024;
/// The most bytes of small parts copied into one wire buffer.
const WIRE_BUFFER: usize = 64 * 1024;
/// A document up to this size goes out as one buffer (copied once, on its
/// first GET): the response is then one write with its headers, which is
/// what keeps a few-hundred-KB GET near the socket's own rate. Larger ones
/// go in pieces, without a copy.
const WIRE_WHOLE: usize = 1024 * 1024;

impl Body {
    /// `{"_format_version":"3.0"}`.
    pub fn empty() -> Body {
        Body::assemble(std::iter::empty::<&Member>())
    }

    /// The decK form of the members, spliced in the given order (see
    /// [`Body::assemble_form`]). Kept as the registry's and the benches'
    /// entry point; the form data planes load is [`Body::assemble_kong`].
    pub fn assemble<'a>(members: impl Iterator<Item = &'a Member> + Clone) -> Body {
        Body::assemble_form(members, Form::Deck)
    }

    /// Kong's declarative form of the members: what data planes load.
    pub fn assemble_kong<'a>(members: impl Iterator<Item = &'a Member> + Clone) -> Body {
        Body::assemble_form(members, Form::Kong)
    }

    /// Splices the members' chunks of `form`, in the given order, into one document.
    ///
    /// The hash is blake3 over, in document order, each chunk's hash and each
    /// piece of punctuation (its length, then its bytes). That input is
    /// gathered in one buffer and hashed in one call: blake3 then hashes many
    /// 1 KiB blocks at once, where thousands of small `update`s went one
    /// block at a time.
    pub fn assemble_form<'a>(
        members: impl Iterator<Item = &'a Member> + Clone,
        form: Form,
    ) -> Body {
        // Bucket the chunks by collection in one pass (a counting sort that
        // keeps member order), instead of looking up every collection in
        // every member.
        let mut counts = [0usize; Coll::ALL.len()];
        for m in members.clone() {
            for c in form.chunks(m) {
                counts[c.coll as usize] += 1;
            }
        }
        let mut starts = [0usize; Coll::ALL.len()];
        let mut total = 0;
        for coll in Coll::ALL {
            starts[coll as usize] = total;
            total += counts[coll as usize];
        }
        let mut fill = starts;
        let mut sorted: Vec<Option<&Chunk>> = vec![None; total];
        for m in members {
            for c in form.chunks(m) {
                sorted[fill[c.coll as usize]] = Some(c);
                fill[c.coll as usize] += 1;
            }
        }

        let mut parts: Vec<Bytes> = Vec::with_capacity(2 * total + 2 * Coll::ALL.len() + 2);
        let mut hashed: Vec<u8> = Vec::with_capacity(48 * total + 64 * Coll::ALL.len() + 64);
        punct(&mut parts, &mut hashed, b"{\"_format_version\":\"3.0\"");
        for coll in Coll::ALL {
            let i = coll as usize;
            let mut first = true;
            for c in sorted[starts[i]..starts[i] + counts[i]].iter().flatten() {
                if c.bytes.is_empty() {
                    continue;
                }
                let sep = if first { open(coll) } else { b"," };
                punct(&mut parts, &mut hashed, sep);
                hashed.extend_from_slice(c.hash.as_bytes());
                parts.push(c.bytes.clone());
                first = false;
            }
            if !first {
                let close: &'static [u8] = if coll == Coll::PluginConfigs {
                    b"}"
                } else {
                    b"]"
                };
                punct(&mut parts, &mut hashed, close);
            }
        }
        punct(&mut parts, &mut hashed, b"}");
        let hash = blake3::hash(&hashed);
        let len = parts.iter().map(Bytes::len).sum();
        Body {
            parts,
            len,
            hash: hash.to_hex().to_string(),
            wire: WireCache::default(),
            derived: Derived::default(),
        }
    }

    /// The content hash (lowercase hex).
    pub fn hash(&self) -> &str {
        &self.hash
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The value a layer above derived from this body, made by `init` on
    /// first use (one type per body: the first caller's). `None` if a value
    /// of another type is kept.
    pub fn derived<T: std::any::Any + Send + Sync>(
        &self,
        init: impl FnOnce() -> T,
    ) -> Option<Arc<T>> {
        let any = self.derived.0.get_or_init(|| Arc::new(init()));
        Arc::clone(any).downcast::<T>().ok()
    }

    /// The derived value, if one of type `T` was made already.
    pub fn derived_if_made<T: std::any::Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let any = self.derived.0.get()?;
        Arc::clone(any).downcast::<T>().ok()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, to stream without copying.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The same bytes as [`Body::parts`], in fewer pieces, for sending: a
    /// document up to 1 MiB is one buffer, so a response is one write
    /// instead of one per piece; in a larger one, runs of small parts
    /// (punctuation, small members' chunks) are copied into buffers of up to
    /// 64 KiB and large parts are shared as they are. Computed once per body,
    /// on first use.
    pub fn wire_parts(&self) -> Arc<[Bytes]> {
        self.wire
            .0
            .get_or_init(|| {
                if self.len <= WIRE_WHOLE {
                    return vec![Bytes::from(self.to_vec())].into();
                }
                let mut out: Vec<Bytes> = Vec::new();
                let mut buf: Vec<u8> = Vec::new();
                for p in &self.parts {
                    if p.len() >= WIRE_SMALL_PART {
                        if !buf.is_empty() {
                            out.push(Bytes::from(std::mem::take(&mut buf)));
                        }
                        out.push(p.clone());
                        continue;
                    }
                    if !buf.is_empty() && buf.len() + p.len() > WIRE_BUFFER {
                        out.push(Bytes::from(std::mem::take(&mut buf)));
                    }
                    buf.extend_from_slice(p);
                }
                if !buf.is_empty() {
                    out.push(Bytes::from(buf));
                }
                out.into()
            })
            .clone()
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

/// Punctuation between chunks: hashed as its length, then its bytes.
fn punct(parts: &mut Vec<Bytes>, hashed: &mut Vec<u8>, b: &'static [u8]) {
    hashed.extend_from_slice(&(b.len() as u64).to_le_bytes());
    hashed.extend_from_slice(b);
    parts.push(Bytes::from_static(b));
}

/// `,"services":[` and the like, made once: static bytes cost nothing to
/// share, where a fresh `Bytes` per collection per snapshot was an allocation.
fn open(coll: Coll) -> &'static [u8] {
    static OPEN: OnceLock<Vec<&'static [u8]>> = OnceLock::new();
    let table = OPEN.get_or_init(|| {
        let mut t = vec![&b""[..]; Coll::ALL.len()];
        for c in Coll::ALL {
            let bracket = if c == Coll::PluginConfigs { '{' } else { '[' };
            let s = format!(",\"{}\":{bracket}", c.name());
            t[c as usize] = Box::leak(s.into_bytes().into_boxed_slice());
        }
        t
    });
    table[coll as usize]
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
    provenance_form(members, Form::Deck)
}

/// Provenance of the snapshot of `form`.
pub fn provenance_form<'a>(
    members: impl Iterator<Item = &'a Member> + Clone,
    form: Form,
) -> Vec<(Coll, Vec<ProvenanceRun>)> {
    let mut out = Vec::new();
    for coll in Coll::ALL {
        let mut runs = Vec::new();
        let mut start = 0;
        for m in members.clone() {
            let chunk = form.chunks(m).iter().find(|c| c.coll == coll);
            if let Some(c) = chunk.filter(|c| c.count > 0) {
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
