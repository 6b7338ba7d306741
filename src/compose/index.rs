//! The key index: which members hold each unique key, and which keys are
//! therefore in conflict. Applying a member's delta touches only that
//! member's keys, so an update costs O(size of the member).

use std::collections::HashSet;

use ahash::{AHashMap, RandomState};
use smallvec::{SmallVec, smallvec};
use std::collections::hash_map::Entry;

use crate::config::{BUILTIN_VAULTS, Coll, KeyKind};
use crate::intern::{Interner, Sym};
use crate::member::{KeyClass, Member};

/// A member's place in a composite.
pub type Slot = u32;

/// (slot, index into that member's `keys` or `vault_refs`).
pub type Owners = SmallVec<[(Slot, u32); 2]>;

/// The owners of one key in 8 bytes: almost every key has exactly one, so
/// the table holds `(slot, index)` itself, and only a key held twice or
/// more (a conflict) points into `KeyIndex::spilled`. Half the size of a
/// `SmallVec` entry: for a dense member of a million consumers the key
/// table is the composite's largest structure.
#[derive(Clone, Copy, Debug)]
struct Packed(u64);

const SPILLED: u64 = 1 << 63;

impl Packed {
    fn one(slot: Slot, key: u32) -> Option<Packed> {
        (u64::from(slot) << 32 & SPILLED == 0)
            .then_some(Packed(u64::from(slot) << 32 | u64::from(key)))
    }

    fn single(self) -> Option<(Slot, u32)> {
        (self.0 & SPILLED == 0).then_some(((self.0 >> 32) as Slot, self.0 as u32))
    }

    fn spill(self) -> Option<usize> {
        (self.0 & SPILLED != 0).then_some((self.0 & !SPILLED) as usize)
    }
}

#[derive(Default)]
pub struct KeyIndex {
    owners: AHashMap<(KeyClass, Sym), Packed>,
    /// Owner lists of keys held more than once (or by a slot past 2^31).
    spilled: Vec<Owners>,
    /// Free places in `spilled`.
    free_spills: Vec<usize>,
    /// Keys held by two or more members.
    conflicted: HashSet<(KeyClass, Sym), RandomState>,
    /// Vault prefix → the references to it.
    vault_users: AHashMap<Sym, Owners>,
    /// Referenced prefixes that no member defines and Kong doesn't ship.
    unresolved_vaults: HashSet<Sym, RandomState>,
    builtin_vaults: Vec<Sym>,
}

const PREFIX: KeyClass = KeyClass {
    coll: Coll::Vaults,
    kind: KeyKind::Prefix,
};

impl KeyIndex {
    pub fn new(interner: &Interner) -> KeyIndex {
        KeyIndex {
            builtin_vaults: BUILTIN_VAULTS.iter().map(|b| interner.intern(b)).collect(),
            ..KeyIndex::default()
        }
    }

    /// Makes room for `keys` more keys without growing.
    pub fn reserve(&mut self, keys: usize) {
        self.owners.reserve(keys);
    }

    pub fn insert(&mut self, slot: Slot, m: &Member) {
        for (i, k) in m.keys.iter().enumerate() {
            let key = (k.class, k.sym);
            let owner = (slot, i as u32);
            let conflicted = match self.owners.entry(key) {
                Entry::Vacant(v) => {
                    let packed = match Packed::one(slot, i as u32) {
                        Some(p) => p,
                        None => spill(&mut self.spilled, &mut self.free_spills, smallvec![owner]),
                    };
                    v.insert(packed);
                    false
                }
                Entry::Occupied(mut o) => {
                    let p = *o.get();
                    match (p.single(), p.spill()) {
                        (Some(first), _) => {
                            let list = smallvec![first, owner];
                            o.insert(spill(&mut self.spilled, &mut self.free_spills, list));
                            true
                        }
                        (_, Some(at)) => {
                            self.spilled[at].push(owner);
                            self.spilled[at].len() >= 2
                        }
                        _ => false,
                    }
                }
            };
            if conflicted {
                self.conflicted.insert(key);
            }
        }
        for (i, v) in m.vault_refs.iter().enumerate() {
            self.vault_users
                .entry(v.prefix)
                .or_default()
                .push((slot, i as u32));
        }
        self.recheck_vaults(m);
    }

    pub fn remove(&mut self, slot: Slot, m: &Member) {
        for k in &m.keys {
            let key = (k.class, k.sym);
            let Some(&p) = self.owners.get(&key) else {
                continue;
            };
            match (p.single(), p.spill()) {
                (Some((s, _)), _) if s == slot => {
                    self.owners.remove(&key);
                    self.conflicted.remove(&key);
                }
                (_, Some(at)) => {
                    let list = &mut self.spilled[at];
                    list.retain(|(s, _)| *s != slot);
                    let left = list.len();
                    let lone = (left == 1)
                        .then(|| list[0])
                        .and_then(|(s, i)| Packed::one(s, i));
                    if left == 0 || lone.is_some() {
                        self.spilled[at] = Owners::new();
                        self.free_spills.push(at);
                        match lone {
                            Some(one) => {
                                self.owners.insert(key, one);
                            }
                            None => {
                                self.owners.remove(&key);
                            }
                        }
                    }
                    if left < 2 {
                        self.conflicted.remove(&key);
                    }
                }
                _ => {}
            }
        }
        for v in &m.vault_refs {
            if let Some(users) = self.vault_users.get_mut(&v.prefix) {
                users.retain(|(s, _)| *s != slot);
                if users.is_empty() {
                    self.vault_users.remove(&v.prefix);
                }
            }
        }
        self.recheck_vaults(m);
    }

    /// Re-derives the resolution of every prefix this member defines or uses.
    fn recheck_vaults(&mut self, m: &Member) {
        let defined = m.keys.iter().filter(|k| k.class == PREFIX).map(|k| k.sym);
        let used = m.vault_refs.iter().map(|v| v.prefix);
        for p in defined.chain(used) {
            let unresolved = self.vault_users.contains_key(&p)
                && !self.builtin_vaults.contains(&p)
                && !self.owners.contains_key(&(PREFIX, p));
            if unresolved {
                self.unresolved_vaults.insert(p);
            } else {
                self.unresolved_vaults.remove(&p);
            }
        }
    }

    /// Who holds a key (empty: nobody).
    pub fn owners(&self, class: KeyClass, sym: Sym) -> Owners {
        match self.owners.get(&(class, sym)) {
            None => Owners::new(),
            Some(p) => match (p.single(), p.spill()) {
                (Some(one), _) => smallvec![one],
                (_, Some(at)) => self.spilled[at].clone(),
                _ => Owners::new(),
            },
        }
    }

    pub fn conflicted(&self) -> impl Iterator<Item = (&(KeyClass, Sym), Owners)> {
        self.conflicted.iter().map(|k| (k, self.owners(k.0, k.1)))
    }

    pub fn conflict_count(&self) -> usize {
        self.conflicted.len()
    }

    pub fn unresolved_vaults(&self) -> impl Iterator<Item = &[(Slot, u32)]> {
        self.unresolved_vaults
            .iter()
            .map(|p| self.vault_users.get(p).map(|o| o.as_slice()).unwrap_or(&[]))
    }

    pub fn has_unresolved_vaults(&self) -> bool {
        !self.unresolved_vaults.is_empty()
    }
}

/// Stores an owner list in `spilled` (a freed place first).
fn spill(spilled: &mut Vec<Owners>, free: &mut Vec<usize>, list: Owners) -> Packed {
    let at = match free.pop() {
        Some(at) => {
            spilled[at] = list;
            at
        }
        None => {
            spilled.push(list);
            spilled.len() - 1
        }
    };
    Packed(SPILLED | at as u64)
}
