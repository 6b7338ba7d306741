//! Warnings between members (README: Finding codes): advisory, never part of a
//! composite's state. Computed from the members' own summaries (their ACL
//! groups and what their routes match). A composite keeps them between
//! updates (`compose::advice`); the functions here compute them from scratch
//! (a full merge, and the reference the property tests compare with) and
//! render one warning, so both ways give the same list.

use std::collections::BTreeMap;

use ahash::AHashMap;

use crate::config::RouteMatch;
use crate::member::Member;
use crate::report::{Warning, WarningKind, quote};

/// At most this many warnings of each kind are listed.
pub const MAX_WARNINGS: usize = 1000;

/// Every warning of `members` (in merge order) computed from them alone:
/// what `Composite::warnings` keeps between updates must equal this.
pub fn from_scratch(members: &[&Member]) -> Vec<Warning> {
    let mut out = shared_acl_groups(members);
    out.extend(overlapping_routes(members));
    out
}

/// `shared_acl_group`: one ACL group name used by consumers of ≥ 2 members.
pub fn shared_acl_groups(members: &[&Member]) -> Vec<Warning> {
    // group → (member index, first path), members in merge order. Hashed,
    // not sorted: almost every group has one holder, and only the shared
    // ones need the name order the list is given in.
    let mut by_group: AHashMap<&str, Vec<(usize, &str)>> = AHashMap::new();
    for (i, m) in members.iter().enumerate() {
        for (g, path) in &m.acl_groups {
            let holders = by_group.entry(g.as_str()).or_default();
            if holders.last().is_none_or(|(j, _)| *j != i) {
                holders.push((i, path));
            }
        }
    }
    let mut shared: Vec<(&str, Vec<(usize, &str)>)> = by_group
        .into_iter()
        .filter(|(_, holders)| holders.len() >= 2)
        .collect();
    shared.sort_unstable_by(|a, b| a.0.cmp(b.0));
    shared
        .into_iter()
        .take(MAX_WARNINGS)
        .map(|(group, holders)| {
            let holders: Vec<(&Member, &str)> =
                holders.iter().map(|&(i, p)| (members[i], p)).collect();
            shared_acl_warning(group, &holders)
        })
        .collect()
}

/// The `shared_acl_group` warning of `group`, held by `holders` (each member
/// once, with the path of its first use).
pub fn shared_acl_warning(group: &str, holders: &[(&Member, &str)]) -> Warning {
    let mut names: Vec<String> = holders.iter().map(|(m, _)| m.info.name.clone()).collect();
    names.sort();
    let paths = holders
        .iter()
        .map(|(m, p)| (m.info.name.clone(), p.to_string()))
        .collect();
    Warning {
        kind: WarningKind::SharedAclGroup,
        entity: "acls".into(),
        value: group.to_string(),
        message: format!(
            "ACL group {} is used by consumers of {} members: {}; an `acl` plugin that allows it lets all of them in",
            quote(group),
            names.len(),
            names.join(", ")
        ),
        members: names,
        paths,
    }
}

/// Most pairs of routes compared for one composite: past it the list of
/// `overlapping_route` warnings may be incomplete (it is advisory).
pub const MAX_ROUTE_COMPARISONS: usize = 2_000_000;

/// `overlapping_route`: routes of two members that match the same requests.
/// Only routes that could overlap are compared: prefix paths sorted, so
/// the paths a prefix contains follow it; regex paths by their text; a
/// route without paths against the routes of its hosts.
pub fn overlapping_routes(members: &[&Member]) -> Vec<Warning> {
    let mut routes: Vec<(usize, &RouteMatch)> = Vec::new();
    for (i, m) in members.iter().enumerate() {
        routes.extend(m.routes.iter().map(|r| (i, r)));
    }
    if members.len() < 2 || routes.is_empty() {
        return Vec::new();
    }
    let mut found: Vec<(usize, usize)> = Vec::new();
    let mut seen = ahash::AHashSet::new();
    let mut budget = MAX_ROUTE_COMPARISONS;
    let mut consider = |x: usize, y: usize, found: &mut Vec<(usize, usize)>| -> bool {
        if budget == 0 || found.len() >= MAX_WARNINGS {
            return false;
        }
        let (x, y) = (x.min(y), x.max(y));
        if routes[x].0 != routes[y].0 && seen.insert((x, y)) {
            budget -= 1;
            if overlap(routes[x].1, routes[y].1) {
                found.push((x, y));
            }
        }
        true
    };

    // Prefix paths: sorted, every path a prefix contains comes right after it.
    let mut prefixes: Vec<(&str, usize)> = Vec::new();
    let mut regexes: AHashMap<&str, Vec<usize>> = AHashMap::new();
    let mut pathless: Vec<usize> = Vec::new();
    for (ri, (_, r)) in routes.iter().enumerate() {
        if r.paths.is_empty() {
            pathless.push(ri);
        }
        for p in &r.paths {
            if p.starts_with('~') {
                regexes.entry(p.as_str()).or_default().push(ri);
            } else {
                prefixes.push((p.as_str(), ri));
            }
        }
    }
    prefixes.sort_unstable();
    'outer: for i in 0..prefixes.len() {
        let (p, a) = prefixes[i];
        for &(q, b) in &prefixes[i + 1..] {
            if !q.starts_with(p) {
                break;
            }
            if !consider(a, b, &mut found) {
                break 'outer;
            }
        }
    }
    let mut regex_lists: Vec<&Vec<usize>> = regexes.values().collect();
    regex_lists.sort_unstable();
    for list in regex_lists {
        for (k, &a) in list.iter().enumerate() {
            for &b in &list[k + 1..] {
                consider(a, b, &mut found);
            }
        }
    }

    // Routes without paths match any path: compare them with the routes
    // that could share a host.
    if !pathless.is_empty() {
        let mut by_host: AHashMap<&str, Vec<usize>> = AHashMap::new();
        let mut any_host: Vec<usize> = Vec::new();
        for (ri, (_, r)) in routes.iter().enumerate() {
            if r.hosts.is_empty() || r.hosts.iter().any(|h| h.contains('*')) {
                any_host.push(ri);
            }
            for h in &r.hosts {
                let list = by_host.entry(host_only(h)).or_default();
                if list.last() != Some(&ri) {
                    list.push(ri);
                }
            }
        }
        'pathless: for &a in &pathless {
            let r = routes[a].1;
            let everyone = r.hosts.is_empty() || r.hosts.iter().any(|h| h.contains('*'));
            let mut lists: Vec<&[usize]> = vec![&any_host];
            if everyone {
                lists.clear();
            } else {
                for h in &r.hosts {
                    if let Some(l) = by_host.get(host_only(h)) {
                        lists.push(l);
                    }
                }
            }
            let all: Vec<usize>;
            if everyone {
                all = (0..routes.len()).collect();
                lists.push(&all);
            }
            for l in lists {
                for &b in l {
                    if !consider(a, b, &mut found) {
                        break 'pathless;
                    }
                }
            }
        }
    }

    found.sort_unstable();
    found
        .into_iter()
        .map(|(x, y)| {
            let (mx, rx) = routes[x];
            let (my, ry) = routes[y];
            route_warning(members[mx], rx, members[my], ry)
        })
        .collect()
}

/// The `overlapping_route` warning of route `rx` of `mx` and `ry` of `my`
/// (`mx` before `my` in merge order).
pub fn route_warning(mx: &Member, rx: &RouteMatch, my: &Member, ry: &RouteMatch) -> Warning {
    let (nx, ny) = (&mx.info.name, &my.info.name);
    let mut names = vec![nx.clone(), ny.clone()];
    names.sort();
    let paths = BTreeMap::from([(nx.clone(), rx.path.clone()), (ny.clone(), ry.path.clone())]);
    Warning {
        kind: WarningKind::OverlappingRoute,
        entity: "routes".into(),
        value: describe(rx),
        message: format!(
            "{} of '{nx}' and {} of '{ny}' match the same requests ({}): Kong routes them to one of the two, so one team's route can capture the other's traffic",
            rx.label,
            ry.label,
            describe(rx)
        ),
        members: names,
        paths,
    }
}

/// A host without its port (`example.com:8000` → `example.com`).
pub fn host_only(h: &str) -> &str {
    match h.rsplit_once(':') {
        Some((name, port))
            if port.bytes().all(|b| b.is_ascii_digit())
                && !name.ends_with(']')
                && !name.contains(':') =>
        {
            name
        }
        _ => h,
    }
}

/// Whether one request could match both routes.
pub fn overlap(a: &RouteMatch, b: &RouteMatch) -> bool {
    if !a.protocols.iter().any(|p| b.protocols.contains(p)) {
        return false;
    }
    let hosts = a.hosts.is_empty()
        || b.hosts.is_empty()
        || a.hosts
            .iter()
            .any(|x| b.hosts.iter().any(|y| hosts_meet(x, y)));
    let paths = a.paths.is_empty()
        || b.paths.is_empty()
        || a.paths
            .iter()
            .any(|x| b.paths.iter().any(|y| paths_meet(x, y)));
    let methods = a.methods.is_empty()
        || b.methods.is_empty()
        || a.methods.iter().any(|m| b.methods.contains(m));
    let headers = a.headers.iter().all(|(name, values)| {
        b.headers
            .iter()
            .find(|(n, _)| n == name)
            .is_none_or(|(_, other)| values.iter().any(|v| other.contains(v)))
    });
    hosts && paths && methods && headers
}

fn hosts_meet(x: &str, y: &str) -> bool {
    if x == y {
        return true;
    }
    wildcard_matches(x, y) || wildcard_matches(y, x)
}

fn wildcard_matches(pattern: &str, host: &str) -> bool {
    if let Some(suffix) = pattern.strip_prefix('*') {
        host.len() > suffix.len() && host.ends_with(suffix)
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        host.len() > prefix.len() && host.starts_with(prefix)
    } else {
        false
    }
}

/// Prefix paths meet when one is a prefix of the other; a regex path is
/// only compared by its text.
fn paths_meet(x: &str, y: &str) -> bool {
    if x.starts_with('~') || y.starts_with('~') {
        return x == y;
    }
    x.starts_with(y) || y.starts_with(x)
}

fn describe(r: &RouteMatch) -> String {
    let mut parts = Vec::new();
    parts.push(format!("protocols {}", r.protocols.join(",")));
    if !r.hosts.is_empty() {
        parts.push(format!("hosts {}", clip_list(&r.hosts)));
    }
    if !r.paths.is_empty() {
        parts.push(format!("paths {}", clip_list(&r.paths)));
    }
    if !r.methods.is_empty() {
        parts.push(format!("methods {}", r.methods.join(",")));
    }
    parts.join("; ")
}

fn clip_list(v: &[String]) -> String {
    let shown: Vec<String> = v.iter().take(3).map(|s| quote(s)).collect();
    if v.len() > 3 {
        format!("{} (+{} more)", shown.join(","), v.len() - 3)
    } else {
        shown.join(",")
    }
}
