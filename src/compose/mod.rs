//! Composites: members, the key index, conflicts, the merged snapshot.
//!
//! Does no I/O and knows nothing of HTTP or storage. A `Composite` is updated
//! by member deltas (`upsert`, `remove`); everything it reports — conflicts,
//! errors, the snapshot body — is a pure function of its current members, so
//! an incrementally maintained composite equals one merged from scratch.

mod advice;
mod index;
pub mod snapshot;
pub mod warnings;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use index::Slot;
pub use snapshot::{Body, EMPTY_CONFIG, Form, ProvenanceRun};

use crate::intern::Interner;
use crate::member::Member;
use crate::report::{
    Conflict, ConflictKind, ErrorKind, MemberError, MemberSummary, Note, Report, State, Warning,
};
use advice::Advice;
use index::KeyIndex;

pub struct Composite {
    interner: Arc<Interner>,
    slots: Vec<Option<Arc<Member>>>,
    free: Vec<Slot>,
    /// Member id → slot; iteration order is the merge order.
    order: BTreeMap<String, Slot>,
    index: KeyIndex,
    /// Warnings, kept between updates as conflicts are.
    advice: Advice,
    /// Members with member errors (only the CLI ever adds those).
    invalid: usize,
}

impl Composite {
    pub fn new(interner: Arc<Interner>) -> Composite {
        let index = KeyIndex::new(&interner);
        Composite {
            interner,
            slots: Vec::new(),
            free: Vec::new(),
            order: BTreeMap::new(),
            index,
            advice: Advice::default(),
            invalid: 0,
        }
    }

    /// A composite of `members`, merged from scratch.
    pub fn from_members(
        interner: Arc<Interner>,
        members: impl IntoIterator<Item = Arc<Member>>,
    ) -> Composite {
        let members: Vec<Arc<Member>> = members.into_iter().collect();
        let mut c = Composite::new(interner);
        // Sized once: growing the key index by doubling rehashes every key
        // several times and leaves the outgrown tables to the allocator.
        c.index.reserve(members.iter().map(|m| m.keys.len()).sum());
        c.slots.reserve(members.len());
        for m in members {
            c.remove(&m.info.id.clone());
            let slot = c.free_slot();
            c.advice.insert_groups(slot, &m);
            c.place(slot, m);
        }
        c
    }

    pub fn interner(&self) -> &Arc<Interner> {
        &self.interner
    }

    /// Adds a member, or replaces the member with the same id: the old
    /// member's keys leave the index, the new member's keys enter it.
    pub fn upsert(&mut self, member: Arc<Member>) -> Option<Arc<Member>> {
        // A revision whose routes match and ACL groups are named as before
        // (new hosts of services, new secrets) leaves the kept warnings as
        // they are: it takes back its slot, so every (slot, index) entry
        // still points at the same route.
        let same = self
            .get(&member.info.id)
            .is_some_and(|old| Advice::same_footprint(old, &member));
        let old = self.take(&member.info.id.clone(), !same);
        let slot = self.free_slot();
        if !same {
            self.advice.insert(slot, &member, &self.slots);
        }
        self.place(slot, member);
        if same {
            self.advice.keep_maps(&self.slots);
        }
        old
    }

    fn free_slot(&mut self) -> Slot {
        match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as Slot
            }
        }
    }

    /// Puts `member` in the empty `slot` and indexes its keys.
    fn place(&mut self, slot: Slot, member: Arc<Member>) {
        self.index.insert(slot, &member);
        if !member.is_valid() {
            self.invalid += 1;
        }
        self.order.insert(member.info.id.clone(), slot);
        self.slots[slot as usize] = Some(member);
    }

    pub fn remove(&mut self, member_id: &str) -> Option<Arc<Member>> {
        self.take(member_id, true)
    }

    /// Removes a member; its warnings' entries too unless `advice` is false
    /// (an upsert that keeps them).
    fn take(&mut self, member_id: &str, advice: bool) -> Option<Arc<Member>> {
        let slot = self.order.remove(member_id)?;
        let old = self.slots[slot as usize].take()?;
        self.index.remove(slot, &old);
        if advice {
            self.advice.remove(slot, &old);
        }
        if !old.is_valid() {
            self.invalid -= 1;
        }
        self.free.push(slot);
        Some(old)
    }

    pub fn get(&self, member_id: &str) -> Option<&Arc<Member>> {
        self.order
            .get(member_id)
            .and_then(|&s| self.slots[s as usize].as_ref())
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Members in merge order.
    pub fn members(&self) -> impl Iterator<Item = &Arc<Member>> + Clone {
        self.order
            .values()
            .filter_map(|&s| self.slots[s as usize].as_ref())
    }

    fn member(&self, slot: Slot) -> &Member {
        // Slots in the index always hold a member: remove() unindexes first.
        self.slots[slot as usize]
            .as_deref()
            .expect("indexed slot holds a member")
    }

    pub fn state(&self) -> State {
        if self.invalid > 0 {
            State::Invalid
        } else if self.index.conflict_count() > 0 || self.index.has_unresolved_vaults() {
            State::Conflict
        } else {
            State::Ok
        }
    }

    /// How many conflicts `conflicts()` would list, without building them.
    pub fn conflict_count(&self) -> usize {
        self.index.conflict_count()
            + self
                .index
                .unresolved_vaults()
                .map(<[_]>::len)
                .sum::<usize>()
    }

    /// Every conflict, in a stable order.
    pub fn conflicts(&self) -> Vec<Conflict> {
        let mut out = Vec::with_capacity(self.index.conflict_count());
        for ((class, sym), owners) in self.index.conflicted() {
            let Some(kind) = class.kind.conflict() else {
                continue;
            };
            let mut members = Vec::with_capacity(owners.len());
            let mut paths = BTreeMap::new();
            for &(slot, key) in &owners {
                let m = self.member(slot);
                members.push(m.info.name.clone());
                paths.insert(m.info.name.clone(), m.key_path(&m.keys[key as usize]));
            }
            members.sort();
            out.push(Conflict {
                kind,
                entity: class.coll.name().to_string(),
                field: class.kind.field().to_string(),
                value: self.interner.resolve(*sym).to_string(),
                members,
                paths,
                noun: class.coll.noun(),
            });
        }
        for users in self.index.unresolved_vaults() {
            for &(slot, i) in users {
                let m = self.member(slot);
                let v = &m.vault_refs[i as usize];
                out.push(Conflict {
                    kind: ConflictKind::UnresolvedVaultReference,
                    entity: v.coll.name().to_string(),
                    field: v.path.rsplit('.').next().unwrap_or("").to_string(),
                    value: v.reference.clone(),
                    members: vec![m.info.name.clone()],
                    paths: BTreeMap::from([(m.info.name.clone(), v.path.to_string())]),
                    noun: v.coll.noun(),
                });
            }
        }
        out.sort();
        out
    }

    /// Every member error; an unresolved ID association whose target another
    /// member holds is reported as `cross_member_reference`, naming that member.
    pub fn errors(&self) -> Vec<MemberError> {
        let mut out = Vec::new();
        for &slot in self.order.values() {
            out.extend(self.classified(self.member(slot), Some(slot)));
        }
        out
    }

    /// `member`'s errors as this composite would report them if `member`
    /// replaced the member with its id, without changing anything: a config
    /// is judged before it is applied. Same order as `member.errors`.
    pub fn errors_of(&self, member: &Member) -> Vec<MemberError> {
        let own = self.order.get(&member.info.id).copied();
        self.classified(member, own)
    }

    fn classified(&self, m: &Member, own: Option<Slot>) -> Vec<MemberError> {
        let mut errs = m.errors.clone();
        for u in &m.unresolved {
            // The first holder in merge order, so the message does not
            // depend on the order members entered the index.
            let holder = u
                .candidates
                .iter()
                .flat_map(|&(class, sym)| self.index.owners(class, sym))
                .filter(|(s, _)| Some(*s) != own)
                .map(|(s, _)| self.member(s))
                .min_by(|a, b| a.info.id.cmp(&b.info.id));
            if let Some(other) = holder {
                let owner = &other.info.name;
                let e = &mut errs[u.error];
                e.kind = ErrorKind::CrossMemberReference;
                e.message = format!(
                    "{} names {} {}, which lives in member '{}': ID associations stay inside one group, so move the {} into '{}' (the member that owns the {}), or point it at {} of '{}'",
                    u.source_label,
                    u.target_noun,
                    crate::report::quote(&u.value),
                    owner,
                    u.source_noun,
                    owner,
                    u.target_noun,
                    a_or_an(u.target_noun),
                    m.info.name
                );
            }
        }
        errs
    }

    /// Every warning: shared ACL groups, then overlapping routes. Advisory:
    /// they never change `state()`. Kept between updates: listing them
    /// costs O(warnings found), not a pass over every route.
    pub fn warnings(&self) -> Vec<Warning> {
        let merged: Vec<Slot> = self.order.values().copied().collect();
        self.advice.warnings(&self.slots, &merged)
    }

    /// What rgmerge did not check, each said once: a plugin whose config
    /// is not modelled is noted at its first use in merge order.
    pub fn notes(&self) -> Vec<Note> {
        let mut seen = ahash::AHashSet::new();
        self.members()
            .flat_map(|m| m.notes.iter())
            .filter(|n| seen.insert((n.kind.as_str(), n.message.as_str())))
            .cloned()
            .collect()
    }

    pub fn report(&self) -> Report {
        let members = self
            .members()
            .map(|m| MemberSummary {
                name: m.info.name.clone(),
                entities: m.entities,
            })
            .collect();
        Report::new(members, self.conflicts(), self.errors())
            .with_advice(self.warnings(), self.notes())
    }

    /// The merged document in decK form: members in merge order, entities
    /// in their order. Equal to `Body::assemble` of the members (the
    /// registry's restore check relies on it); data planes load
    /// [`Composite::assemble_kong`].
    pub fn assemble(&self) -> Body {
        self.assemble_form(Form::Deck)
    }

    /// The merged document in Kong's declarative form (README: What rgmerge checks): decK-only
    /// keys expanded or left out. Equal to `Body::assemble_kong` of the members.
    pub fn assemble_kong(&self) -> Body {
        self.assemble_form(Form::Kong)
    }

    /// The merged document of `form` (`?format=deck` → `Form::Deck`).
    pub fn assemble_form(&self, form: Form) -> Body {
        Body::assemble_form(self.members().map(|m| m.as_ref()), form)
    }

    pub fn provenance(&self) -> Vec<(crate::config::Coll, Vec<ProvenanceRun>)> {
        snapshot::provenance(self.members().map(|m| m.as_ref()))
    }

    /// Provenance of the snapshot of `form`.
    pub fn provenance_form(&self, form: Form) -> Vec<(crate::config::Coll, Vec<ProvenanceRun>)> {
        snapshot::provenance_form(self.members().map(|m| m.as_ref()), form)
    }
}

/// `a service`, `an upstream`, `an SNI`.
fn a_or_an(noun: &str) -> String {
    let vowel = noun
        .chars()
        .next()
        .is_some_and(|c| "aeiouAEIOU".contains(c) || noun.starts_with("SNI"));
    format!("{} {noun}", if vowel { "an" } else { "a" })
}
