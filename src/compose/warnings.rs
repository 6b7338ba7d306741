//! Warnings between members (SPEC §5.3): advisory, never part of a
//! composite's state. Computed from the members' own summaries (their ACL
//! groups and what their routes match), in merge order, so an incremental
//! composite and one merged from scratch give the same list.

use std::collections::BTreeMap;

use ahash::AHashMap;

use crate::config::RouteMatch;
use crate::member::Member;
use crate::report::{Warning, WarningKind, quote};

/// At most this many warnings of each kind are listed.
pub const MAX_WARNINGS: usize = 1000;

/// `shared_acl_group`: one ACL group name used by consumers of ≥ 2 members.
pub fn shared_acl_groups(members: &[&Member]) -> Vec<Warning> {
    // group → (member index, first path), members in merge order.
    let mut by_group: BTreeMap<&str, Vec<(usize, &str)>> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        for (g, path) in &m.acl_groups {
            let holders = by_group.entry(g.as_str()).or_default();
            if holders.last().is_none_or(|(j, _)| *j != i) {
                holders.push((i, path));
            }
        }
    }
    let mut out = Vec::new();
    for (group, holders) in by_group {
        if holders.len() < 2 {
            continue;
        }
        if out.len() == MAX_WARNINGS {
            break;
        }
        let mut names: Vec<String> = holders
            .iter()
            .map(|(i, _)| members[*i].info.name.clone())
            .collect();
        names.sort();
        let paths = holders
            .iter()
            .map(|(i, p)| (members[*i].info.name.clone(), p.to_string()))
            .collect();
        out.push(Warning {
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
        });
    }
    out
}

/// `overlapping_route`: routes of two members that match the same requests.
/// Routes are bucketed by host and first path segment, so only routes
/// that could overlap are compared.
pub fn overlapping_routes(members: &[&Member]) -> Vec<Warning> {
    let mut routes: Vec<(usize, &RouteMatch)> = Vec::new();
    for (i, m) in members.iter().enumerate() {
        routes.extend(m.routes.iter().map(|r| (i, r)));
    }
    if members.len() < 2 || routes.is_empty() {
        return Vec::new();
    }
    // Bucket key: (host or "" for any/wildcard, first segment or "" for any).
    let mut buckets: AHashMap<(&str, &str), Vec<usize>> = AHashMap::new();
    let keys: Vec<Vec<(&str, &str)>> = routes.iter().map(|(_, r)| bucket_keys(r)).collect();
    for (ri, ks) in keys.iter().enumerate() {
        for k in ks {
            let b = buckets.entry(*k).or_default();
            if b.last() != Some(&ri) {
                b.push(ri);
            }
        }
    }
    let mut segs_by_host: AHashMap<&str, Vec<&str>> = AHashMap::new();
    for (h, seg) in buckets.keys() {
        segs_by_host.entry(h).or_default().push(seg);
    }
    let any_host: Vec<&str> = segs_by_host.keys().copied().collect();
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    let mut seen = ahash::AHashSet::new();
    for (a, ks) in keys.iter().enumerate() {
        for &(h, seg) in ks {
            let hosts: Vec<&str> = if h.is_empty() {
                any_host.clone()
            } else {
                vec![h, ""]
            };
            for hh in hosts {
                let segs: Vec<&str> = if seg.is_empty() {
                    segs_by_host.get(hh).cloned().unwrap_or_default()
                } else {
                    vec![seg, ""]
                };
                for ss in segs {
                    let Some(b) = buckets.get(&(hh, ss)) else {
                        continue;
                    };
                    for &other in b {
                        let (x, y) = (a.min(other), a.max(other));
                        if routes[x].0 == routes[y].0 || !seen.insert((x, y)) {
                            continue;
                        }
                        if overlap(routes[x].1, routes[y].1) {
                            pairs.push((x, y));
                        }
                    }
                }
            }
        }
        if pairs.len() >= MAX_WARNINGS {
            break;
        }
    }
    pairs.sort_unstable();
    pairs.truncate(MAX_WARNINGS);
    pairs
        .into_iter()
        .map(|(x, y)| {
            let (mx, rx) = routes[x];
            let (my, ry) = routes[y];
            let (nx, ny) = (&members[mx].info.name, &members[my].info.name);
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
        })
        .collect()
}

fn bucket_keys(r: &RouteMatch) -> Vec<(&str, &str)> {
    let hosts: Vec<&str> = if r.hosts.is_empty() || r.hosts.iter().any(|h| h.contains('*')) {
        vec![""]
    } else {
        r.hosts.iter().map(|h| host_only(h)).collect()
    };
    let segs: Vec<&str> = if r.paths.is_empty() || r.paths.iter().any(|p| !p.starts_with('/')) {
        vec![""]
    } else {
        r.paths.iter().map(|p| first_segment(p)).collect()
    };
    let mut out = Vec::with_capacity(hosts.len() * segs.len());
    for h in &hosts {
        for s in &segs {
            out.push((*h, *s));
        }
    }
    out
}

fn host_only(h: &str) -> &str {
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

/// The bucket of a prefix path: its first character after `/` (`/` alone:
/// any). Of two prefix paths where one starts with the other, both longer
/// than `/`, the first characters agree, so no overlap is missed.
fn first_segment(p: &str) -> &str {
    let rest = &p[1..];
    match rest.chars().next() {
        Some(c) => &rest[..c.len_utf8()],
        None => "",
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
