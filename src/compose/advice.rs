//! Warnings kept between updates, as the key index keeps conflicts. Shared
//! ACL groups are kept by group: an update touches only the changed member's
//! groups. Routes are kept in maps by what they match (prefix paths sorted,
//! regex texts, hosts): an update moves only the changed member's routes, and
//! listing the overlapping routes walks the sorted paths where a full merge
//! sorts every route path of the composite first (README: Finding codes).
//! The list equals `warnings::shared_acl_groups` +
//! `warnings::overlapping_routes` of the members in merge order, caps
//! included (the property tests check it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ahash::{AHashMap, AHashSet};
use smallvec::SmallVec;

use super::index::Slot;
use super::warnings::{
    MAX_ROUTE_COMPARISONS, MAX_WARNINGS, host_only, overlap, overlapping_routes, route_warning,
    shared_acl_warning,
};
use crate::config::RouteMatch;
use crate::member::Member;
use crate::report::Warning;

/// A route of a composite: (its member's slot, its index in the member).
type Route = (Slot, u32);
type Routes = SmallVec<[Route; 2]>;

#[derive(Default)]
pub struct Advice {
    /// ACL group → the members using it (slot, index of its first use in
    /// the member's `acl_groups`).
    groups: AHashMap<Box<str>, SmallVec<[(Slot, u32); 2]>>,
    /// Groups used by two members or more, in name order.
    shared: BTreeSet<Box<str>>,
    /// Where routes are found by what they match; built on the first update
    /// after a full merge (which lists its warnings by sorting instead).
    maps: Option<RouteMaps>,
}

#[derive(Default)]
struct RouteMaps {
    /// Prefix path → its routes; sorted, so the paths a prefix contains
    /// follow it.
    prefixes: BTreeMap<Box<str>, Routes>,
    /// Regex path (compared by its text) → its routes.
    regexes: AHashMap<Box<str>, Routes>,
    /// Host without port → the routes naming it.
    by_host: AHashMap<Box<str>, Routes>,
    /// Routes with no host or a wildcard host.
    any_host: AHashSet<Route>,
    /// Routes without paths.
    pathless: AHashSet<Route>,
}

fn anywhere(r: &RouteMatch) -> bool {
    r.hosts.is_empty() || r.hosts.iter().any(|h| h.contains('*'))
}

/// Adds `route` to `key`'s list, once per route unless `every` (a regex
/// path listed twice is listed twice when compared from scratch).
fn add(map: &mut AHashMap<Box<str>, Routes>, key: &str, route: Route, every: bool) {
    match map.get_mut(key) {
        Some(list) => {
            if every || list.last() != Some(&route) {
                list.push(route);
            }
        }
        None => {
            map.insert(key.into(), smallvec::smallvec![route]);
        }
    }
}

fn drop_slot(map: &mut AHashMap<Box<str>, Routes>, key: &str, slot: Slot) {
    if let Some(list) = map.get_mut(key) {
        list.retain(|(s, _)| *s != slot);
        if list.is_empty() {
            map.remove(key);
        }
    }
}

impl RouteMaps {
    fn build(slots: &[Option<Arc<Member>>]) -> RouteMaps {
        let mut maps = RouteMaps::default();
        let mut prefixes: Vec<(&str, Route)> = Vec::new();
        for (s, m) in slots.iter().enumerate() {
            let Some(m) = m else { continue };
            for (i, r) in m.routes.iter().enumerate() {
                let route = (s as Slot, i as u32);
                prefixes.extend(
                    r.paths
                        .iter()
                        .filter(|p| !p.starts_with('~'))
                        .map(|p| (p.as_str(), route)),
                );
                maps.add_others(route, r);
            }
        }
        prefixes.sort_unstable();
        let mut sorted: Vec<(Box<str>, Routes)> = Vec::new();
        for (p, route) in prefixes {
            match sorted.last_mut() {
                Some((q, list)) if **q == *p => {
                    if list.last() != Some(&route) {
                        list.push(route);
                    }
                }
                _ => sorted.push((p.into(), smallvec::smallvec![route])),
            }
        }
        maps.prefixes = sorted.into_iter().collect();
        maps
    }

    fn add(&mut self, route: Route, r: &RouteMatch) {
        for p in r.paths.iter().filter(|p| !p.starts_with('~')) {
            let list = match self.prefixes.get_mut(p.as_str()) {
                Some(list) => list,
                None => self.prefixes.entry(p.as_str().into()).or_default(),
            };
            if list.last() != Some(&route) {
                list.push(route);
            }
        }
        self.add_others(route, r);
    }

    /// Everything but the prefix paths.
    fn add_others(&mut self, route: Route, r: &RouteMatch) {
        for p in r.paths.iter().filter(|p| p.starts_with('~')) {
            add(&mut self.regexes, p, route, true);
        }
        for h in &r.hosts {
            add(&mut self.by_host, host_only(h), route, false);
        }
        if anywhere(r) {
            self.any_host.insert(route);
        }
        if r.paths.is_empty() {
            self.pathless.insert(route);
        }
    }

    fn remove(&mut self, slot: Slot, m: &Member) {
        for (i, r) in m.routes.iter().enumerate() {
            let route = (slot, i as u32);
            for p in &r.paths {
                if p.starts_with('~') {
                    drop_slot(&mut self.regexes, p, slot);
                } else if let Some(list) = self.prefixes.get_mut(p.as_str()) {
                    list.retain(|(s, _)| *s != slot);
                    if list.is_empty() {
                        self.prefixes.remove(p.as_str());
                    }
                }
            }
            for h in &r.hosts {
                drop_slot(&mut self.by_host, host_only(h), slot);
            }
            self.any_host.remove(&route);
            self.pathless.remove(&route);
        }
    }

    /// `warnings::overlapping_routes` of the members in `merged` (slots in
    /// merge order), the same comparisons in the same order, without
    /// sorting the paths again. Routes are numbered as there: in merge
    /// order, then in member order.
    fn overlapping(&self, slots: &[Option<Arc<Member>>], merged: &[Slot]) -> Vec<Warning> {
        let member = |s: Slot| slots[s as usize].as_deref();
        let mut base = vec![0usize; slots.len()];
        let mut total = 0;
        for &s in merged {
            base[s as usize] = total;
            total += member(s).map_or(0, |m| m.routes.len());
        }
        if merged.len() < 2 || total == 0 {
            return Vec::new();
        }
        let number = |r: Route| base[r.0 as usize] + r.1 as usize;
        let route = |r: Route| member(r.0).and_then(|m| m.routes.get(r.1 as usize));
        let in_order = |list: &[Route]| -> Routes {
            let mut l: Routes = list.iter().copied().collect();
            if l.len() > 1 {
                l.sort_by_key(|&r| number(r));
            }
            l
        };

        let mut found: Vec<((usize, usize), (Route, Route))> = Vec::new();
        let mut seen = AHashSet::new();
        let mut budget = MAX_ROUTE_COMPARISONS;
        let mut consider = |a: Route, b: Route, found: &mut Vec<_>| -> bool {
            if budget == 0 || found.len() >= MAX_WARNINGS {
                return false;
            }
            let (a, b) = if number(a) <= number(b) {
                (a, b)
            } else {
                (b, a)
            };
            let (x, y) = (number(a), number(b));
            if a.0 != b.0 && seen.insert((x, y)) {
                budget -= 1;
                if let (Some(ra), Some(rb)) = (route(a), route(b))
                    && overlap(ra, rb)
                {
                    found.push(((x, y), (a, b)));
                }
            }
            true
        };

        // Prefix paths in order, each against the paths that follow it while
        // it is their prefix.
        let mut it = self.prefixes.iter();
        'outer: while let Some((p, list)) = it.next() {
            let list = in_order(list);
            for (k, &a) in list.iter().enumerate() {
                for &b in &list[k + 1..] {
                    if !consider(a, b, &mut found) {
                        break 'outer;
                    }
                }
                for (q, next) in it.clone() {
                    if !q.starts_with(&**p) {
                        break;
                    }
                    for &b in &in_order(next) {
                        if !consider(a, b, &mut found) {
                            break 'outer;
                        }
                    }
                }
            }
        }
        let mut regex_lists: Vec<Vec<(usize, Route)>> = self
            .regexes
            .values()
            .map(|l| in_order(l).into_iter().map(|r| (number(r), r)).collect())
            .collect();
        regex_lists.sort_unstable();
        for list in regex_lists {
            for (k, &(_, a)) in list.iter().enumerate() {
                for &(_, b) in &list[k + 1..] {
                    consider(a, b, &mut found);
                }
            }
        }

        // Routes without paths against the routes that could share a host.
        if !self.pathless.is_empty() {
            let by_number = |set: &AHashSet<Route>| {
                let mut v: Vec<Route> = set.iter().copied().collect();
                v.sort_by_key(|&r| number(r));
                v
            };
            let any_host = by_number(&self.any_host);
            let all: Vec<Route> = merged
                .iter()
                .flat_map(|&s| {
                    (0..member(s).map_or(0, |m| m.routes.len())).map(move |i| (s, i as u32))
                })
                .collect();
            'pathless: for a in by_number(&self.pathless) {
                let Some(r) = route(a) else { continue };
                let mut lists: Vec<Routes> = Vec::new();
                let everyone = anywhere(r);
                if !everyone {
                    lists.push(any_host.iter().copied().collect());
                    for h in &r.hosts {
                        if let Some(l) = self.by_host.get(host_only(h)) {
                            lists.push(in_order(l));
                        }
                    }
                }
                let lists: Vec<&[Route]> = if everyone {
                    vec![&all]
                } else {
                    lists.iter().map(|l| l.as_slice()).collect()
                };
                for l in lists {
                    for &b in l {
                        if !consider(a, b, &mut found) {
                            break 'pathless;
                        }
                    }
                }
            }
        }

        found.sort_unstable_by_key(|&(xy, _)| xy);
        found
            .into_iter()
            .filter_map(|(_, (a, b))| {
                Some(route_warning(
                    member(a.0)?,
                    route(a)?,
                    member(b.0)?,
                    route(b)?,
                ))
            })
            .collect()
    }
}

impl Advice {
    /// `m` enters at `slot`; `slots` holds the other members (not `m`).
    pub fn insert(&mut self, slot: Slot, m: &Member, slots: &[Option<Arc<Member>>]) {
        self.insert_groups(slot, m);
        let maps = self.maps.get_or_insert_with(|| RouteMaps::build(slots));
        for (i, r) in m.routes.iter().enumerate() {
            maps.add((slot, i as u32), r);
        }
    }

    /// Whether `new` would enter the maps and group lists exactly as `old`
    /// did: the same route paths and hosts at each index, the same ACL
    /// group names in order. Everything else a warning shows is read from
    /// the member in the slot when listing.
    pub fn same_footprint(old: &Member, new: &Member) -> bool {
        old.routes.len() == new.routes.len()
            && old.acl_groups.len() == new.acl_groups.len()
            && old
                .routes
                .iter()
                .zip(&new.routes)
                .all(|(a, b)| a.paths == b.paths && a.hosts == b.hosts)
            && old
                .acl_groups
                .iter()
                .zip(&new.acl_groups)
                .all(|((a, _), (b, _))| a == b)
    }

    /// Builds the route maps if a full merge left them unbuilt, as the
    /// first update does; `slots` holds every member.
    pub fn keep_maps(&mut self, slots: &[Option<Arc<Member>>]) {
        self.maps.get_or_insert_with(|| RouteMaps::build(slots));
    }

    /// `m`'s ACL groups only: a full merge lists its routes' warnings from
    /// scratch (one sort), and the route maps wait for the first update.
    pub fn insert_groups(&mut self, slot: Slot, m: &Member) {
        for (j, (g, _)) in m.acl_groups.iter().enumerate() {
            let list = match self.groups.get_mut(g.as_str()) {
                Some(list) => list,
                None => self.groups.entry(g.as_str().into()).or_default(),
            };
            if list.iter().all(|(s, _)| *s != slot) {
                list.push((slot, j as u32));
                if list.len() == 2 {
                    self.shared.insert(g.as_str().into());
                }
            }
        }
    }

    /// `m` leaves `slot`.
    pub fn remove(&mut self, slot: Slot, m: &Member) {
        for (g, _) in &m.acl_groups {
            if let Some(list) = self.groups.get_mut(g.as_str()) {
                list.retain(|(s, _)| *s != slot);
                if list.len() < 2 {
                    self.shared.remove(g.as_str());
                }
                if list.is_empty() {
                    self.groups.remove(g.as_str());
                }
            }
        }
        if let Some(maps) = &mut self.maps {
            maps.remove(slot, m);
        }
    }

    /// Every warning: shared ACL groups by name, then overlapping routes in
    /// merge order. `merged` is the slots in merge order.
    pub fn warnings(&self, slots: &[Option<Arc<Member>>], merged: &[Slot]) -> Vec<Warning> {
        let member = |s: Slot| slots[s as usize].as_deref();
        let mut out = Vec::new();
        for g in self.shared.iter().take(MAX_WARNINGS) {
            let holders: Vec<(&Member, &str)> = self
                .groups
                .get(g)
                .into_iter()
                .flatten()
                .filter_map(|&(s, j)| {
                    let m = member(s)?;
                    Some((m, m.acl_groups.get(j as usize)?.1.as_ref()))
                })
                .collect();
            out.push(shared_acl_warning(g, &holders));
        }
        match &self.maps {
            Some(maps) => out.extend(maps.overlapping(slots, merged)),
            None => {
                let members: Vec<&Member> = merged.iter().filter_map(|&s| member(s)).collect();
                out.extend(overlapping_routes(&members));
            }
        }
        out
    }
}
