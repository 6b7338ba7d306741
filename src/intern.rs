//! String interning: every name, id and key of every member becomes a [`Sym`].
//!
//! The key index compares and hashes `Sym`s (a `u32`) instead of strings, and a
//! string that appears in many members (a shared plugin name, a vault prefix) is
//! stored once. Strings live in bump arenas that are only ever appended to, so a
//! `Sym` stays valid for the life of the interner.
//!
//! The interner is sharded so rayon workers building members in parallel rarely
//! contend on one lock.

use ahash::RandomState;
use bumpalo::Bump;
use parking_lot::Mutex;

const SHARD_BITS: u32 = 4;
const SHARDS: usize = 1 << SHARD_BITS;

/// An interned string. Equal strings of one [`Interner`] get equal `Sym`s.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Sym(u32);

impl Sym {
    fn new(shard: usize, index: usize) -> Sym {
        Sym(((index as u32) << SHARD_BITS) | shard as u32)
    }
    fn shard(self) -> usize {
        (self.0 as usize) & (SHARDS - 1)
    }
    fn index(self) -> usize {
        (self.0 >> SHARD_BITS) as usize
    }
}

struct Shard {
    arena: Bump,
    /// Indices into `strs`, hashed by their string: 4 bytes a string rather
    /// than a `&str` key and its value (24), for a dense member of a
    /// million keys the difference is most of the interner's overhead.
    map: hashbrown::HashTable<u32>,
    // SAFETY of the `'static`: these point into `arena`, which is never reset and
    // lives as long as the shard; they are only handed out tied to `&Interner`.
    strs: Vec<&'static str>,
}

/// A concurrent, append-only string interner (ahash maps over bumpalo arenas).
pub struct Interner {
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
    id: u64,
}

/// Each interner gets its own id, so a `Sym` minted by one is never mixed up
/// with another's (see `Member::interner_id`).
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Default for Interner {
    fn default() -> Self {
        Self::new()
    }
}

impl Interner {
    pub fn new() -> Interner {
        // Fixed seeds: shard choice only affects speed, but keeping it stable
        // makes runs reproducible when profiling.
        let hasher = RandomState::with_seeds(0x5eed, 0xc0ffee, 0xdead, 0xbeef);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    arena: Bump::new(),
                    map: hashbrown::HashTable::new(),
                    strs: Vec::new(),
                })
            })
            .collect();
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Interner { hasher, shards, id }
    }

    /// Which interner this is; `Sym`s of different interners don't compare.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The shard of a string's hash: bits the shard's table does not use
    /// (it takes the low bits for the bucket and the top 7 as a tag), so a
    /// shard's strings don't crowd into a sixteenth of its buckets.
    fn shard_of(hash: u64) -> usize {
        ((hash >> 32) as usize) & (SHARDS - 1)
    }

    /// Returns the symbol for `s`, adding it on first sight.
    pub fn intern(&self, s: &str) -> Sym {
        let hash = self.hasher.hash_one(s);
        let shard_no = Self::shard_of(hash);
        let mut guard = self.shards[shard_no].lock();
        let shard = &mut *guard;
        let strs = &shard.strs;
        if let Some(&i) = shard.map.find(hash, |&i| strs[i as usize] == s) {
            return Sym::new(shard_no, i as usize);
        }
        let stored: &str = shard.arena.alloc_str(s);
        // SAFETY: the arena is owned by the shard, never reset or dropped before
        // the interner, and bump allocations never move.
        let stored: &'static str = unsafe { std::mem::transmute::<&str, &'static str>(stored) };
        let index = shard.strs.len();
        shard.strs.push(stored);
        let (hasher, strs) = (&self.hasher, &shard.strs);
        shard
            .map
            .insert_unique(hash, index as u32, |&i| hasher.hash_one(strs[i as usize]));
        Sym::new(shard_no, index)
    }

    /// Returns the symbol for `s` if it was ever interned.
    pub fn get(&self, s: &str) -> Option<Sym> {
        let hash = self.hasher.hash_one(s);
        let shard_no = Self::shard_of(hash);
        let shard = self.shards[shard_no].lock();
        shard
            .map
            .find(hash, |&i| shard.strs[i as usize] == s)
            .map(|&i| Sym::new(shard_no, i as usize))
    }

    /// The string behind `sym`.
    pub fn resolve(&self, sym: Sym) -> &str {
        let shard = self.shards[sym.shard()].lock();
        shard.strs[sym.index()]
    }

    /// Number of distinct strings held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().strs.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_string_same_sym_and_round_trip() {
        let i = Interner::new();
        let a = i.intern("orders");
        let b = i.intern("payments");
        assert_eq!(a, i.intern("orders"));
        assert_ne!(a, b);
        assert_eq!(i.resolve(a), "orders");
        assert_eq!(i.resolve(b), "payments");
        assert_eq!(i.get("payments"), Some(b));
        assert_eq!(i.get("missing"), None);
        assert_eq!(i.len(), 2);
    }

    #[test]
    fn parallel_interning_agrees() {
        use rayon::prelude::*;
        let i = Interner::new();
        let syms: Vec<Sym> = (0..10_000)
            .into_par_iter()
            .map(|n| i.intern(&format!("k{}", n % 500)))
            .collect();
        for (n, s) in syms.iter().enumerate() {
            assert_eq!(i.resolve(*s), format!("k{}", n % 500));
        }
        assert_eq!(i.len(), 500);
    }
}
