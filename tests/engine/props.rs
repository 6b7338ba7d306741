//! Property tests of the composite (ARCHITECTURE.md, "Invariants").
//!
//! Small member configs are drawn from tiny pools of names, ids, keys and
//! vault prefixes, so members collide, reference each other and break often.
//! - Incremental == from scratch: after every step of a random sequence of
//!   upserts, replacements and removals, the incrementally maintained
//!   composite reports the same state, conflicts, errors and report, and
//!   assembles the same snapshot bytes, hash and provenance as
//!   `Composite::from_members` on the current member set.
//! - Warnings kept between updates == warnings from scratch: after every
//!   step, the composite's warnings equal `warnings::shared_acl_groups` +
//!   `warnings::overlapping_routes` of its members in merge order, also for
//!   a full merge that is then updated (its route maps built on that update).
//! - Determinism: the same members in any insertion order, or rebuilt from the
//!   same bytes with a fresh interner (a restart), give byte-identical
//!   snapshots, the same hash and the same report.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::select;
use rgmerge::compose::{Composite, Form, warnings};
use rgmerge::config::Format;
use rgmerge::intern::Interner;
use rgmerge::member::{Member, MemberInfo};
use rgmerge::report::State;
use serde_json::{Map, Value, json};

const MEMBERS: &[&str] = &["blue", "default", "red", "yellow"];
const SERVICES: &[&str] = &["orders", "catalog", "users"];
const ROUTES: &[&str] = &["login", "search"];
const IDS: &[&str] = &[
    "00000000-0000-4000-8000-000000000001",
    "00000000-0000-4000-8000-000000000002",
    "00000000-0000-4000-8000-000000000003",
];
const USERS: &[&str] = &["alice", "bob"];
const KEYS: &[&str] = &["k-1", "k-2"];
const GROUPS: &[&str] = &["gold", "silver"];
const GLOBALS: &[&str] = &["prometheus", "cors", "konnect-application-auth"];
const PREFIXES: &[&str] = &["corp", "team", "env"];
const UPSTREAMS: &[&str] = &["up-a", "up-b"];
const TARGETS: &[&str] = &["10.0.0.1:80", "10.0.0.2:80"];
/// Route paths that contain each other, a regex, and none (any path).
const PATHS: &[&[&str]] = &[
    &["/p"],
    &["/p"],
    &["/p/q"],
    &["/pq", "/x"],
    &["~/r$"],
    &["/x", "~/r$"],
    &[],
];
/// Route hosts: none (any host), plain, with a port, a wildcard.
const HOSTS: &[&[&str]] = &[
    &[],
    &[],
    &["a.example.com"],
    &["a.example.com:8000"],
    &["*.example.com"],
    &["b.example.com", "a.example.com"],
];
const METHODS: &[&[&str]] = &[&[], &[], &["GET"], &["POST", "GET"]];

fn pick(pool: &'static [&'static str]) -> impl Strategy<Value = String> {
    select(pool).prop_map(str::to_string)
}

fn maybe(pool: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    proptest::option::weighted(0.7, pick(pool))
}

fn insert(o: &mut Map<String, Value>, k: &str, v: Option<impl Into<Value>>) {
    if let Some(v) = v {
        o.insert(k.to_string(), v.into());
    }
}

/// A route; what it matches is drawn from small pools, so routes of
/// different members overlap in every way `overlapping_route` compares.
fn route() -> impl Strategy<Value = Value> {
    (
        maybe(ROUTES),
        proptest::option::weighted(0.2, pick(IDS)),
        select(PATHS),
        select(HOSTS),
        select(METHODS),
    )
        .prop_map(|(name, id, paths, hosts, methods)| {
            let mut o = Map::new();
            insert(&mut o, "name", name);
            insert(&mut o, "id", id);
            if !paths.is_empty() || hosts.is_empty() {
                // Kong wants one of paths, hosts, methods…: no paths and no
                // hosts keeps "/p".
                let paths = if paths.is_empty() { &["/p"][..] } else { paths };
                o.insert("paths".into(), json!(paths));
            }
            if !hosts.is_empty() {
                o.insert("hosts".into(), json!(hosts));
            }
            if !methods.is_empty() {
                o.insert("methods".into(), json!(methods));
            }
            Value::Object(o)
        })
}

fn service() -> impl Strategy<Value = Value> {
    (
        maybe(SERVICES),
        proptest::option::weighted(0.3, pick(IDS)),
        proptest::collection::vec(route(), 0..3),
        proptest::bool::weighted(0.08),
    )
        .prop_map(|(name, id, routes, broken)| {
            let mut o = Map::new();
            insert(&mut o, "name", name);
            insert(&mut o, "id", id);
            o.insert("host".into(), json!("backend.internal"));
            if broken {
                o.insert("port".into(), json!("eighty"));
            }
            if !routes.is_empty() {
                o.insert("routes".into(), Value::Array(routes));
            }
            Value::Object(o)
        })
}

/// A top-level route naming a service, which may be in another member or nowhere.
fn top_route() -> impl Strategy<Value = Value> {
    (maybe(ROUTES), pick(SERVICES))
        .prop_map(|(name, svc)| json!({"name": name, "paths": ["/t"], "service": {"name": svc}}))
}

fn consumer() -> impl Strategy<Value = Value> {
    (
        pick(USERS),
        proptest::option::weighted(0.5, pick(KEYS)),
        proptest::option::weighted(0.3, pick(GROUPS)),
    )
        .prop_map(|(user, key, group)| {
            let mut o = Map::new();
            o.insert("username".into(), json!(user));
            insert(
                &mut o,
                "keyauth_credentials",
                key.as_ref().map(|k| json!([{"key": k}])),
            );
            insert(&mut o, "groups", group.map(|g| json!([{"name": g}])));
            // ACL groups shared across members give `shared_acl_group` warnings.
            insert(
                &mut o,
                "acls",
                key.map(|k| json!([{"group": format!("acl-{k}")}])),
            );
            Value::Object(o)
        })
}

fn plugin() -> impl Strategy<Value = Value> {
    (
        pick(GLOBALS),
        proptest::option::weighted(0.4, pick(SERVICES)),
        proptest::option::weighted(0.3, pick(PREFIXES)),
    )
        .prop_map(|(name, svc, vault)| {
            let mut o = Map::new();
            o.insert("name".into(), json!(name));
            insert(&mut o, "service", svc);
            if let Some(p) = vault {
                o.insert(
                    "config".into(),
                    json!({"header_value": format!("{{vault://{p}/secret}}")}),
                );
            }
            Value::Object(o)
        })
}

fn upstream() -> impl Strategy<Value = Value> {
    (
        pick(UPSTREAMS),
        proptest::collection::vec(pick(TARGETS), 0..2),
    )
        .prop_map(|(name, ts)| {
            let targets: Vec<Value> = ts.into_iter().map(|t| json!({"target": t})).collect();
            json!({"name": name, "targets": targets})
        })
}

/// One member config; `None` stands for a file that does not parse.
fn config() -> impl Strategy<Value = Option<Value>> {
    let doc = (
        proptest::collection::vec(service(), 0..3),
        proptest::collection::vec(top_route(), 0..2),
        proptest::collection::vec(consumer(), 0..2),
        proptest::collection::vec(pick(GROUPS), 0..2),
        proptest::collection::vec(plugin(), 0..3),
        proptest::collection::vec(pick(PREFIXES), 0..2),
        proptest::collection::vec(upstream(), 0..2),
    )
        .prop_map(
            |(services, routes, consumers, groups, plugins, vaults, upstreams)| {
                let mut o = Map::new();
                o.insert("_format_version".into(), json!("3.0"));
                let mut put = |k: &str, v: Vec<Value>| {
                    if !v.is_empty() {
                        o.insert(k.to_string(), Value::Array(v));
                    }
                };
                put("services", services);
                put("routes", routes);
                put("consumers", consumers);
                put(
                    "consumer_groups",
                    groups.into_iter().map(|g| json!({"name": g})).collect(),
                );
                put("plugins", plugins);
                put(
                    "vaults",
                    vaults
                        .into_iter()
                        .filter(|p| p != "env")
                        .map(|p| json!({"name": "env", "prefix": p}))
                        .collect(),
                );
                put("upstreams", upstreams);
                Some(Value::Object(o))
            },
        );
    prop_oneof![19 => doc, 1 => Just(None)]
}

/// A member's bytes, in JSON or YAML.
fn bytes(doc: &Option<Value>, yaml: bool) -> (Vec<u8>, Format) {
    match (doc, yaml) {
        (None, _) => (b"{\"_format_version\": \"3.0\",".to_vec(), Format::Json),
        (Some(v), false) => (serde_json::to_vec(v).unwrap(), Format::Json),
        (Some(v), true) => (
            serde_saphyr::to_string(v).unwrap().into_bytes(),
            Format::Yaml,
        ),
    }
}

fn build(name: &str, doc: &Option<Value>, yaml: bool, interner: &Interner) -> Arc<Member> {
    let (b, format) = bytes(doc, yaml);
    let info = MemberInfo::new(name, name, name == "default");
    Arc::new(Member::build(info, &b, format, interner))
}

#[derive(Clone, Debug)]
enum Op {
    /// Add the member, or replace its config.
    Put(usize, Option<Value>, bool),
    Remove(usize),
    /// Replace the member's config with a revision whose services move to
    /// another host; with `true`, its routes' hosts change too. The first
    /// keeps the kept warnings as they are, the second must not.
    Rehost(usize, bool),
}

/// `doc` with every service's host changed, and with `routes` every
/// route's hosts (top level or under a service); the rest as it was.
fn rehosted(doc: &Option<Value>, routes: bool) -> Option<Value> {
    let mut doc = doc.clone()?;
    let rehost = |rs: &mut Value| {
        for r in rs.as_array_mut().into_iter().flatten() {
            if let Some(o) = r.as_object_mut() {
                o.insert("hosts".into(), json!(["rehosted.example"]));
            }
        }
    };
    if let Some(services) = doc.get_mut("services").and_then(Value::as_array_mut) {
        for s in services {
            if let Some(o) = s.as_object_mut() {
                o.insert("host".into(), Value::from("rehosted.internal"));
                if routes && let Some(rs) = o.get_mut("routes") {
                    rehost(rs);
                }
            }
        }
    }
    if routes && let Some(rs) = doc.get_mut("routes") {
        rehost(rs);
    }
    Some(doc)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..MEMBERS.len(), config(), any::<bool>()).prop_map(|(m, c, y)| Op::Put(m, c, y)),
        1 => (0..MEMBERS.len()).prop_map(Op::Remove),
        1 => (0..MEMBERS.len(), any::<bool>()).prop_map(|(m, r)| Op::Rehost(m, r)),
    ]
}

/// Warnings computed from scratch from the members, in merge order.
fn reference_warnings(c: &Composite) -> Vec<rgmerge::report::Warning> {
    let members: Vec<&Member> = c.members().map(|m| m.as_ref()).collect();
    warnings::from_scratch(&members)
}

fn same(inc: &Composite, scratch: &Composite) -> Result<(), TestCaseError> {
    prop_assert_eq!(inc.len(), scratch.len());
    prop_assert_eq!(inc.state(), scratch.state());
    prop_assert_eq!(inc.conflicts(), scratch.conflicts());
    prop_assert_eq!(inc.errors(), scratch.errors());
    prop_assert_eq!(inc.report(), scratch.report());
    prop_assert_eq!(inc.warnings(), scratch.warnings());
    prop_assert_eq!(inc.warnings(), reference_warnings(scratch));
    prop_assert_eq!(inc.notes(), scratch.notes());
    let (a, b) = (inc.assemble(), scratch.assemble());
    prop_assert_eq!(a.to_vec(), b.to_vec());
    prop_assert_eq!(a.hash(), b.hash());
    prop_assert_eq!(inc.provenance(), scratch.provenance());
    // Kong's declarative form (what data planes load) too.
    let (a, b) = (inc.assemble_kong(), scratch.assemble_kong());
    prop_assert_eq!(a.to_vec(), b.to_vec());
    prop_assert_eq!(a.hash(), b.hash());
    prop_assert_eq!(
        inc.provenance_form(Form::Kong),
        scratch.provenance_form(Form::Kong)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 160,
        max_shrink_iters: 2_000,
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct("fixtures/proptest/props.proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn incremental_equals_from_scratch(ops in proptest::collection::vec(op(), 1..14)) {
        let interner = Arc::new(Interner::new());
        let mut inc = Composite::new(interner.clone());
        let mut current: BTreeMap<&str, Arc<Member>> = BTreeMap::new();
        let mut docs: BTreeMap<&str, (Option<Value>, bool)> = BTreeMap::new();
        for op in &ops {
            match op {
                Op::Put(i, doc, yaml) => {
                    let m = build(MEMBERS[*i], doc, *yaml, &interner);
                    let old = inc.upsert(m.clone());
                    prop_assert_eq!(old.is_some(), current.contains_key(MEMBERS[*i]));
                    current.insert(MEMBERS[*i], m);
                    docs.insert(MEMBERS[*i], (doc.clone(), *yaml));
                }
                Op::Remove(i) => {
                    let old = inc.remove(MEMBERS[*i]);
                    prop_assert_eq!(old.is_some(), current.remove(MEMBERS[*i]).is_some());
                    docs.remove(MEMBERS[*i]);
                }
                Op::Rehost(i, routes) => {
                    let Some((doc, yaml)) = docs.get(MEMBERS[*i]).cloned() else { continue };
                    let doc = rehosted(&doc, *routes);
                    let m = build(MEMBERS[*i], &doc, yaml, &interner);
                    prop_assert!(inc.upsert(m.clone()).is_some());
                    current.insert(MEMBERS[*i], m);
                    docs.insert(MEMBERS[*i], (doc, yaml));
                }
            }
            let scratch = Composite::from_members(interner.clone(), current.values().cloned());
            same(&inc, &scratch)?;
            // A full merge keeps no route maps; its first update builds them
            // from the members it holds.
            let mut updated = Composite::from_members(interner.clone(), current.values().cloned());
            if let Some(m) = current.values().next_back() {
                updated.upsert(m.clone());
            }
            prop_assert_eq!(updated.warnings(), reference_warnings(&updated));
            prop_assert_eq!(updated.warnings(), scratch.warnings());
            if inc.state() == State::Ok {
                let body = inc.assemble().to_vec();
                prop_assert!(serde_json::from_slice::<Value>(&body).is_ok());
            }
        }
    }

    #[test]
    fn same_members_any_order_or_restart_give_identical_snapshots(
        docs in proptest::collection::vec((config(), any::<bool>()), 1..=MEMBERS.len()),
        order in Just((0..MEMBERS.len()).collect::<Vec<usize>>()).prop_shuffle(),
    ) {
        let interner = Arc::new(Interner::new());
        let members: Vec<Arc<Member>> = docs
            .iter()
            .enumerate()
            .map(|(i, (d, y))| build(MEMBERS[i], d, *y, &interner))
            .collect();
        let forward = Composite::from_members(interner.clone(), members.iter().cloned());
        let shuffled = Composite::from_members(
            interner.clone(),
            order.iter().filter(|&&i| i < members.len()).map(|&i| members[i].clone()),
        );
        same(&forward, &shuffled)?;

        // A restart: a fresh interner, members rebuilt from the same bytes.
        let fresh = Arc::new(Interner::new());
        let rebuilt = Composite::from_members(
            fresh.clone(),
            docs.iter().enumerate().rev().map(|(i, (d, y))| build(MEMBERS[i], d, *y, &fresh)),
        );
        let (a, b) = (forward.assemble(), rebuilt.assemble());
        prop_assert_eq!(a.to_vec(), b.to_vec());
        prop_assert_eq!(a.hash(), b.hash());
        let (a, b) = (forward.assemble_kong(), rebuilt.assemble_kong());
        prop_assert_eq!(a.to_vec(), b.to_vec());
        prop_assert_eq!(a.hash(), b.hash());
        prop_assert_eq!(forward.report(), rebuilt.report());
    }
}

/// The generator does produce every interesting situation; otherwise the
/// properties above could pass vacuously.
#[test]
fn generator_reaches_conflicts_errors_and_clean_composites() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = proptest::collection::vec((config(), any::<bool>()), 2..=MEMBERS.len());
    let mut states = BTreeMap::new();
    let mut codes = std::collections::BTreeSet::new();
    let mut warned = std::collections::BTreeSet::new();
    for _ in 0..400 {
        let docs = strategy.new_tree(&mut runner).unwrap().current();
        let interner = Arc::new(Interner::new());
        let c = Composite::from_members(
            interner.clone(),
            docs.iter()
                .enumerate()
                .map(|(i, (d, y))| build(MEMBERS[i], d, *y, &interner)),
        );
        let r = c.report();
        *states.entry(format!("{:?}", r.state)).or_insert(0) += 1;
        codes.extend(r.conflicts.iter().map(|c| c.kind.code()));
        codes.extend(r.errors.iter().map(|e| e.kind.code()));
        warned.extend(r.warnings.iter().map(|w| (w.kind.code(), w.value.clone())));
    }
    for s in ["Ok", "Conflict", "Invalid"] {
        assert!(
            states.get(s).copied().unwrap_or(0) > 0,
            "never {s}: {states:?}"
        );
    }
    for code in [
        "duplicate_id",
        "duplicate_name",
        "duplicate_vault_prefix",
        "duplicate_global_plugin",
        "duplicate_credential",
        "unresolved_vault_reference",
        "parse_error",
        "schema_error",
        "duplicate_in_member",
        "cross_member_reference",
        "unresolved_reference",
        "app_registration_outside_default",
    ] {
        assert!(
            codes.contains(code),
            "the generator never produces {code}: {codes:?}"
        );
    }
    // Overlapping routes of each sort: prefix paths, regex paths, routes
    // without paths (by host and any host); and shared ACL groups.
    let has = |code: &str, part: &str| {
        warned
            .iter()
            .any(|(c, v): &(&str, String)| *c == code && v.contains(part))
    };
    assert!(has("shared_acl_group", ""), "{warned:?}");
    assert!(has("overlapping_route", "paths '/p"), "{warned:?}");
    assert!(has("overlapping_route", "paths '~/r$'"), "{warned:?}");
    assert!(
        warned
            .iter()
            .any(|(c, v)| *c == "overlapping_route" && !v.contains("paths")),
        "no overlapping route without paths: {warned:?}"
    );
}
