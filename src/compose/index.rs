//! The key index: which members hold each unique key, and which keys are
//! therefore in conflict. Applying a member's delta touches only that
//! member's keys, so an update costs O(size of the member).

use std::collections::HashSet;

use ahash::{AHashMap, RandomState};
use smallvec::SmallVec;

use crate::config::{BUILTIN_VAULTS, Coll, KeyKind};
use crate::intern::{Interner, Sym};
use crate::member::{KeyClass, Member};

/// A member's place in a composite.
pub type Slot = u32;

/// (slot, index into that member's `keys` or `vault_refs`).
type Owners = SmallVec<[(Slot, u32); 2]>;

#[derive(Default)]
pub struct KeyIndex {
    owners: AHashMap<(KeyClass, Sym), Owners>,
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
            let owners = self.owners.entry(key).or_default();
            owners.push((slot, i as u32));
            if owners.len() >= 2 {
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
            if let Some(owners) = self.owners.get_mut(&key) {
                owners.retain(|(s, _)| *s != slot);
                match owners.len() {
                    0 => {
                        self.owners.remove(&key);
                        self.conflicted.remove(&key);
                    }
                    1 => {
                        self.conflicted.remove(&key);
                    }
                    _ => {}
                }
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

    pub fn owners(&self, class: KeyClass, sym: Sym) -> &[(Slot, u32)] {
        self.owners
            .get(&(class, sym))
            .map(|o| o.as_slice())
            .unwrap_or(&[])
    }

    pub fn conflicted(&self) -> impl Iterator<Item = (&(KeyClass, Sym), &[(Slot, u32)])> {
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
