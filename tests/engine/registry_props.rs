//! Property test of the registry, the daemon's state machine, driven the way
//! the engine drives it: `begin()`, one operation, then `rollback()` on an
//! error or a dry run, or keep.
//!
//! After every step:
//! - a refused operation or a dry run changed nothing: a deterministic dump
//!   of the whole registry (group metas, the name index, memberships both
//!   ways, config hashes, snapshot versions, hashes and sources, nodes,
//!   pinned certificates, composite reports) is byte-for-byte what it was;
//! - incremental == from scratch: every composite's report equals that of a
//!   `Composite::from_members` of its members rebuilt from their stored config
//!   bytes, and an OK composite's snapshot is exactly that composite's
//!   `assemble()` (bytes and hash); a standard group's snapshot is its own
//!   config's;
//! - snapshot versions never go back, and move whenever the bytes change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use proptest::prelude::*;
use rgmerge::compose::{Body, Composite};
use rgmerge::config::Format;
use rgmerge::intern::Interner;
use rgmerge::member::Member;
use rgmerge::registry::record::Blob;
use rgmerge::registry::{
    ConfigWrite, GroupUpdate, Kind, Mode, NewCertificate, NewGroup, NodeReport, Refusal, Registry,
    Settings, transact,
};
use rgmerge::report::State;
use serde_json::{Value, json};
use uuid::Uuid;

const NAMES: [&str; 6] = ["blue", "green", "red", "teal", "gold", "comp"];
const SVC: [&str; 3] = ["orders", "users", "billing"];
const IDS: [&str; 2] = [
    "3a0c1d4e-0000-4000-8000-00000000000a",
    "3a0c1d4e-0000-4000-8000-00000000000b",
];
const KEYS: [&str; 2] = ["k1", "k2"];
const PREFIXES: [&str; 3] = ["p1", "p2", "env"];
const PLUGINS: [&str; 3] = ["cors", "rate-limiting", "key-auth"];

/// Two real certificates (PEM), made once.
fn certs() -> &'static [String] {
    static CERTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    CERTS.get_or_init(|| {
        ["dp-1.example.com", "dp-2.example.com"]
            .iter()
            .map(|h| {
                rcgen::generate_simple_self_signed(vec![h.to_string()])
                    .expect("rcgen")
                    .cert
                    .pem()
            })
            .collect()
    })
}

/// One entity of a generated config; indexes pick from the small pools above.
#[derive(Clone, Debug)]
enum Ent {
    Service {
        name: usize,
        id: Option<usize>,
        route: bool,
        vault: Option<usize>,
    },
    TopRoute {
        service: usize,
    },
    Consumer {
        user: usize,
        key: Option<usize>,
    },
    GlobalPlugin {
        name: usize,
    },
    Vault {
        prefix: usize,
    },
}

/// Ways a config is wrong on its own (each a member error).
#[derive(Clone, Copy, Debug)]
enum Bad {
    Parse,
    Schema,
    DuplicateInMember,
    UnresolvedReference,
    OldFormat,
    AppRegistration,
}

#[derive(Clone, Debug)]
enum Cfg {
    Good { ents: Vec<Ent>, yaml: bool },
    Bad(Bad),
}

fn ent() -> impl Strategy<Value = Ent> {
    prop_oneof![
        3 => (0..SVC.len(), proptest::option::of(0..IDS.len()), any::<bool>(), proptest::option::weighted(0.2, 0..PREFIXES.len()))
            .prop_map(|(name, id, route, vault)| Ent::Service { name, id, route, vault }),
        1 => (0..SVC.len()).prop_map(|service| Ent::TopRoute { service }),
        2 => (0..SVC.len(), proptest::option::of(0..KEYS.len()))
            .prop_map(|(user, key)| Ent::Consumer { user, key }),
        1 => (0..PLUGINS.len()).prop_map(|name| Ent::GlobalPlugin { name }),
        1 => (0..PREFIXES.len()).prop_map(|prefix| Ent::Vault { prefix }),
    ]
}

fn cfg() -> impl Strategy<Value = Cfg> {
    prop_oneof![
        4 => (proptest::collection::vec(ent(), 0..4), any::<bool>())
            .prop_map(|(ents, yaml)| Cfg::Good { ents, yaml }),
        1 => prop_oneof![
            Just(Bad::Parse),
            Just(Bad::Schema),
            Just(Bad::DuplicateInMember),
            Just(Bad::UnresolvedReference),
            Just(Bad::OldFormat),
            Just(Bad::AppRegistration),
        ]
        .prop_map(Cfg::Bad),
    ]
}

/// Renders a config. "Good" ones can still be member-invalid (a top-level
/// route naming a service the member lacks, two services of one name) —
/// the registry must refuse those like the `Bad` ones.
fn render(c: &Cfg) -> (Vec<u8>, Format) {
    let ents = match c {
        Cfg::Bad(b) => {
            let s: &str = match b {
                Bad::Parse => "_format_version: \"3.0\"\nservices: [\n",
                Bad::Schema => "{\"_format_version\":\"3.0\",\"services\":5}",
                Bad::DuplicateInMember => {
                    "{\"_format_version\":\"3.0\",\"services\":[{\"name\":\"a\",\"host\":\"h\"},{\"name\":\"a\",\"host\":\"h\"}]}"
                }
                Bad::UnresolvedReference => {
                    "{\"_format_version\":\"3.0\",\"routes\":[{\"name\":\"r\",\"paths\":[\"/\"],\"service\":{\"name\":\"ghost\"}}]}"
                }
                Bad::OldFormat => "{\"_format_version\":\"1.1\"}",
                Bad::AppRegistration => {
                    "{\"_format_version\":\"3.0\",\"plugins\":[{\"name\":\"konnect-application-auth\"}]}"
                }
            };
            return (s.as_bytes().to_vec(), Format::sniff(s.as_bytes()));
        }
        Cfg::Good { ents, .. } => ents,
    };
    let mut doc = json!({"_format_version": "3.0"});
    let mut push = |coll: &str, v: Value| match doc[coll].as_array_mut() {
        Some(a) => a.push(v),
        None => doc[coll] = json!([v]),
    };
    for e in ents {
        match *e {
            Ent::Service {
                name,
                id,
                route,
                vault,
            } => {
                let mut s = json!({"name": SVC[name], "host": "backend"});
                if let Some(i) = id {
                    s["id"] = json!(IDS[i]);
                }
                if route {
                    s["routes"] = json!([{"name": format!("{}-r", SVC[name]), "paths": ["/"]}]);
                }
                if let Some(p) = vault {
                    s["host"] = json!(format!("{{vault://{}/host}}", PREFIXES[p]));
                }
                push("services", s);
            }
            Ent::TopRoute { service } => push(
                "routes",
                json!({"name": format!("top-{service}"), "paths": ["/t"], "service": {"name": SVC[service]}}),
            ),
            Ent::Consumer { user, key } => {
                let mut c = json!({"username": SVC[user]});
                if let Some(k) = key {
                    c["keyauth_credentials"] = json!([{"key": KEYS[k]}]);
                }
                push("consumers", c);
            }
            Ent::GlobalPlugin { name } => push("plugins", json!({"name": PLUGINS[name]})),
            Ent::Vault { prefix } => {
                push("vaults", json!({"name": "env", "prefix": PREFIXES[prefix]}))
            }
        }
    }
    match c {
        Cfg::Good { yaml: true, .. } => (
            serde_json::to_string_pretty(&doc).unwrap().into_bytes(),
            Format::Yaml,
        ),
        _ => (serde_json::to_vec(&doc).unwrap(), Format::Json),
    }
}

/// Groups are named by an index into the groups this run created (deleted
/// ones included, so stale and unknown ids happen), or the default group.
#[derive(Clone, Debug)]
enum Op {
    Create {
        name: usize,
        composite: bool,
    },
    /// `group` picks among groups in some composite unless `wild` (then any group).
    PutConfig {
        group: usize,
        cfg: Cfg,
        dry_run: bool,
        wild: bool,
    },
    /// `comp` picks among the composites and `members` among the standard
    /// groups, unless `wild`, when both pick among all groups (mostly refused).
    Add {
        comp: usize,
        members: Vec<usize>,
        dry_run: bool,
        wild: bool,
    },
    Remove {
        comp: usize,
        members: Vec<usize>,
        dry_run: bool,
        wild: bool,
    },
    /// Konnect's upsert: the member list becomes exactly this one.
    SetMembers {
        comp: usize,
        members: Vec<usize>,
        dry_run: bool,
        wild: bool,
    },
    /// Pins certificate `cert` (of `CERTS`) to a group, a composite too.
    PinCert {
        group: usize,
        cert: usize,
    },
    UnpinCert {
        group: usize,
    },
    Rename {
        group: usize,
        name: usize,
    },
    Delete {
        group: usize,
    },
    Heartbeat {
        group: usize,
    },
    DeleteNode {
        group: usize,
    },
    UnknownId,
}

fn op() -> impl Strategy<Value = Op> {
    let g = 0..8usize;
    prop_oneof![
        3 => (0..NAMES.len(), proptest::bool::weighted(0.4))
            .prop_map(|(name, composite)| Op::Create { name, composite }),
        6 => (g.clone(), cfg(), proptest::bool::weighted(0.25), proptest::bool::weighted(0.3))
            .prop_map(|(group, cfg, dry_run, wild)| Op::PutConfig { group, cfg, dry_run, wild }),
        5 => (g.clone(), proptest::collection::vec(g.clone(), 1..4), proptest::bool::weighted(0.25), proptest::bool::weighted(0.15))
            .prop_map(|(comp, members, dry_run, wild)| Op::Add { comp, members, dry_run, wild }),
        2 => (g.clone(), proptest::collection::vec(g.clone(), 1..3), proptest::bool::weighted(0.25), proptest::bool::weighted(0.15))
            .prop_map(|(comp, members, dry_run, wild)| Op::Remove { comp, members, dry_run, wild }),
        2 => (g.clone(), proptest::collection::vec(g.clone(), 0..4), proptest::bool::weighted(0.25), proptest::bool::weighted(0.15))
            .prop_map(|(comp, members, dry_run, wild)| Op::SetMembers { comp, members, dry_run, wild }),
        1 => (g.clone(), 0..3usize).prop_map(|(group, cert)| Op::PinCert { group, cert }),
        1 => g.clone().prop_map(|group| Op::UnpinCert { group }),
        1 => (g.clone(), 0..NAMES.len()).prop_map(|(group, name)| Op::Rename { group, name }),
        1 => g.clone().prop_map(|group| Op::Delete { group }),
        1 => g.clone().prop_map(|group| Op::Heartbeat { group }),
        1 => g.prop_map(|group| Op::DeleteNode { group }),
        1 => Just(Op::UnknownId),
    ]
}

struct World {
    reg: Registry,
    /// Every group this run created, in creation order; index 0 is the default group.
    ids: Vec<Uuid>,
    /// Highest snapshot (version, hash) seen per group.
    seen: BTreeMap<Uuid, (u64, String)>,
}

fn dedup(ids: &mut Vec<Uuid>) {
    let mut seen = BTreeSet::new();
    ids.retain(|id| seen.insert(*id));
}

/// Applies one op in its own transaction, as the engine's writer does.
/// Returns whether the registry must be unchanged (refused or dry run).
fn apply(w: &mut World, op: &Op) -> (bool, String) {
    let interner = w.reg.interner().clone();
    let ids: Vec<Uuid> = w.ids.clone();
    let pick = |i: usize| ids[i % ids.len()];
    let of_kind = |composite: bool| -> Vec<Uuid> {
        let v: Vec<Uuid> = ids
            .iter()
            .copied()
            .filter(|id| {
                w.reg
                    .group(*id)
                    .is_ok_and(|g| g.meta.cluster_type.is_composite() == composite)
            })
            .collect();
        if v.is_empty() { ids.clone() } else { v }
    };
    let (comps, stds) = (of_kind(true), of_kind(false));
    let in_composites: Vec<Uuid> = stds
        .iter()
        .copied()
        .filter(|id| {
            matches!(w.reg.group(*id).map(|g| &g.kind), Ok(Kind::Standard { composites, .. }) if !composites.is_empty())
        })
        .collect();
    let pick_in =
        |wild: bool, set: &[Uuid], i: usize| if wild { pick(i) } else { set[i % set.len()] };
    let mut created = None;
    let dry_run = match op {
        Op::PutConfig { dry_run, .. }
        | Op::Add { dry_run, .. }
        | Op::Remove { dry_run, .. }
        | Op::SetMembers { dry_run, .. } => *dry_run,
        _ => false,
    };
    let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
    // As the engine runs a write; effects must be computable for every kept one.
    let result = transact(
        &mut w.reg,
        mode,
        |_effects| Ok(()),
        |tx| match op {
            Op::Create { name, composite } => {
                let r = tx.create_group(NewGroup {
                    name: NAMES[*name].into(),
                    cluster_type: composite.then(|| "CLUSTER_TYPE_CONTROL_PLANE_GROUP".into()),
                    ..NewGroup::default()
                });
                created = r.as_ref().ok().map(|m| m.id);
                r.map(|_| ())
            }
            Op::PutConfig {
                group,
                cfg,
                dry_run: _,
                wild,
            } => {
                let id = if *wild || in_composites.is_empty() {
                    pick(*group)
                } else {
                    in_composites[group % in_composites.len()]
                };
                let (bytes, format) = render(cfg);
                // As `Engine::put_config`: built outside the writer under the group's current name.
                let info = tx.registry().group(id).map(|g| g.meta.member_info());
                info.and_then(|info| {
                    let member = Member::build(info, &bytes, format, &interner);
                    match tx.put_config(id, Blob { format, bytes }, member)? {
                        ConfigWrite::Applied(_) => Ok(()),
                        ConfigWrite::Invalid(errors) => Err(Refusal::invalid(format!(
                            "{} member error(s)",
                            errors.len()
                        ))),
                    }
                })
            }
            Op::Add {
                comp,
                members,
                wild,
                ..
            }
            | Op::SetMembers {
                comp,
                members,
                wild,
                ..
            } => {
                let mut m: Vec<Uuid> = members.iter().map(|&i| pick_in(*wild, &stds, i)).collect();
                if !wild {
                    dedup(&mut m);
                }
                let c = pick_in(*wild, &comps, *comp);
                if matches!(op, Op::Add { .. }) {
                    tx.add_members(c, &m).map(|_| ())
                } else {
                    tx.set_members(c, &m).map(|_| ())
                }
            }
            Op::Remove {
                comp,
                members,
                dry_run: _,
                wild,
            } => {
                let c = pick_in(*wild, &comps, *comp);
                // Mostly current members, so removals happen.
                let current: Vec<Uuid> = match tx.registry().group(c).map(|g| &g.kind) {
                    Ok(Kind::Composite { members, .. }) if !*wild && !members.is_empty() => {
                        members.iter().copied().collect()
                    }
                    _ => stds.clone(),
                };
                let mut m: Vec<Uuid> = members
                    .iter()
                    .map(|&i| current[i % current.len()])
                    .collect();
                if !wild {
                    dedup(&mut m);
                }
                tx.remove_members(c, &m).map(|_| ())
            }
            Op::PinCert { group, cert } => tx
                .add_certificate(
                    pick(*group),
                    NewCertificate {
                        // The third is not a certificate: always refused.
                        cert: certs()
                            .get(*cert)
                            .cloned()
                            .unwrap_or_else(|| "not a PEM".into()),
                        title: Some(format!("cert {cert}")),
                    },
                )
                .map(|_| ()),
            Op::UnpinCert { group } => {
                let g = pick(*group);
                let first = tx
                    .registry()
                    .group(g)
                    .ok()
                    .and_then(|g| g.certificates.keys().next().copied())
                    .unwrap_or_else(Uuid::new_v4);
                tx.delete_certificate(g, first)
            }
            Op::Rename { group, name } => tx
                .update_group(
                    pick(*group),
                    GroupUpdate {
                        name: Some(NAMES[*name].into()),
                        ..GroupUpdate::default()
                    },
                )
                .map(|_| ()),
            Op::Delete { group } => tx.delete_group(pick(*group)),
            Op::Heartbeat { group } => tx
                .heartbeat(
                    pick(*group),
                    NodeReport {
                        id: Some("dp-1".into()),
                        hostname: "dp-1".into(),
                        config_hash: "abc".into(),
                        ..NodeReport::default()
                    },
                )
                .map(|_| ()),
            Op::DeleteNode { group } => tx.delete_node(pick(*group), "dp-1"),
            Op::UnknownId => tx.delete_group(Uuid::new_v4()),
        },
    )
    .map(|(r, _effects)| r);
    let outcome = match &result {
        Ok(()) if dry_run => "dry run".to_string(),
        Ok(()) => "ok".to_string(),
        Err(e) => format!("refused: {}", e.detail),
    };
    let unchanged = result.is_err() || dry_run;
    if !unchanged && let Some(id) = created {
        w.ids.push(id);
    }
    (unchanged, outcome)
}

/// Everything observable about the registry, deterministically.
fn dump(reg: &Registry) -> String {
    let mut out = String::new();
    for g in reg.groups() {
        let _ = writeln!(
            out,
            "{:?}\n  by-name={:?} snapshot=v{} {} {:?}\n  nodes={:?}\n  certificates={:?}",
            g.meta,
            reg.group_by_name(&g.meta.name).map(|x| x.meta.id),
            g.snapshot.version,
            g.snapshot.body.hash(),
            g.snapshot.sources,
            g.nodes,
            g.certificates,
        );
        match &g.kind {
            Kind::Standard { config, composites } => {
                let _ = writeln!(
                    out,
                    "  config={} member={}/{} in={composites:?}",
                    config.hash, config.member.info.name, config.member.hash
                );
            }
            Kind::Composite { members, composite } => {
                let _ = writeln!(
                    out,
                    "  members={members:?}\n  report={:?}",
                    composite.report()
                );
            }
        }
    }
    out
}

fn check_invariants(w: &mut World) {
    let reg = &w.reg;
    let interner = Arc::new(Interner::new());
    let mut member_of: BTreeMap<Uuid, BTreeSet<Uuid>> = BTreeMap::new();
    for g in reg.groups() {
        if let Kind::Composite { members, .. } = &g.kind {
            for m in members {
                member_of.entry(*m).or_default().insert(g.meta.id);
            }
        }
    }
    let rebuild = |id: Uuid| -> Arc<Member> {
        let g = reg.group(id).expect("member exists");
        let Kind::Standard { config, .. } = &g.kind else {
            panic!("member {id} is a composite");
        };
        let info = g.meta.member_info();
        Arc::new(Member::build(
            info,
            &config.blob.bytes,
            config.blob.format,
            &interner,
        ))
    };
    for g in reg.groups() {
        let id = g.meta.id;
        match &g.kind {
            Kind::Standard { config, composites } => {
                assert_eq!(
                    composites,
                    &member_of.remove(&id).unwrap_or_default(),
                    "'{}': its composites and the composites' members disagree",
                    g.meta.name
                );
                assert_eq!(config.hash, config.blob.hash());
                let fresh = rebuild(id);
                assert!(
                    fresh.is_valid(),
                    "'{}' holds an invalid config",
                    g.meta.name
                );
                assert_eq!(fresh.hash, config.member.hash);
                assert_eq!(
                    fresh.info.name, config.member.info.name,
                    "member name after rename"
                );
                let body = Body::assemble(std::iter::once(fresh.as_ref()));
                assert_eq!(
                    g.snapshot.body, body,
                    "'{}': snapshot is not its config",
                    g.meta.name
                );
            }
            Kind::Composite { members, composite } => {
                let ids: Vec<String> = composite.members().map(|m| m.info.id.clone()).collect();
                let want: Vec<String> = members.iter().map(Uuid::to_string).collect();
                assert_eq!(
                    ids, want,
                    "'{}': composite members vs membership set",
                    g.meta.name
                );
                let scratch =
                    Composite::from_members(interner.clone(), members.iter().map(|&m| rebuild(m)));
                assert_eq!(
                    composite.report(),
                    scratch.report(),
                    "'{}': incremental report != from scratch",
                    g.meta.name
                );
                assert_eq!(composite.state(), scratch.state());
                if scratch.state() == State::Ok {
                    let body = scratch.assemble();
                    assert_eq!(
                        g.snapshot.body.to_vec(),
                        body.to_vec(),
                        "'{}' snapshot bytes",
                        g.meta.name
                    );
                    assert_eq!(g.snapshot.body.hash(), body.hash());
                    let sources: Vec<Uuid> = g.snapshot.sources.iter().map(|(m, _)| *m).collect();
                    assert_eq!(sources, members.iter().copied().collect::<Vec<_>>());
                }
            }
        }
        let (version, hash) = (g.snapshot.version, g.snapshot.body.hash().to_string());
        if let Some((v0, h0)) = w.seen.get(&id) {
            assert!(
                version >= *v0,
                "'{}': snapshot version went back",
                g.meta.name
            );
            if version == *v0 {
                assert_eq!(
                    &hash, h0,
                    "'{}': new bytes under an old version",
                    g.meta.name
                );
            }
        }
        w.seen.insert(id, (version, hash));
    }
    assert!(
        member_of.is_empty(),
        "members that are not groups: {member_of:?}"
    );
}

fn run(ops: &[Op]) {
    let reg = Registry::new(Arc::new(Interner::new()), Settings::default());
    let default = reg.groups().next().expect("default group").meta.id;
    let mut w = World {
        reg,
        ids: vec![default],
        seen: BTreeMap::new(),
    };
    check_invariants(&mut w);
    let mut log = Vec::new();
    for op in ops {
        let before = dump(&w.reg);
        let (unchanged, outcome) = apply(&mut w, op);
        log.push(format!("{op:?} -> {outcome}"));
        if unchanged {
            let after = dump(&w.reg);
            assert!(
                before == after,
                "a refused or dry-run operation changed the registry.\nsteps:\n{}\nbefore:\n{before}\nafter:\n{after}",
                log.join("\n")
            );
        }
        let res =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_invariants(&mut w)));
        if let Err(e) = res {
            panic!(
                "invariant broken after:\n{}\n{}",
                log.join("\n"),
                e.downcast_ref::<String>().cloned().unwrap_or_default()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES=5000 for a longer run.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
        max_shrink_iters: 2000,
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct("fixtures/proptest/registry_props.proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn registry_ops_keep_invariants(ops in proptest::collection::vec(op(), 1..60)) {
        run(&ops);
    }
}

/// The membership-heavy corner, explicitly: members sharing names and ids
/// join, conflict, are rewritten and leave; a dry run and a refused add in
/// between change nothing.
#[test]
fn conflict_lifecycle_by_hand() {
    let svc = |name: usize| Cfg::Good {
        ents: vec![Ent::Service {
            name,
            id: Some(0),
            route: true,
            vault: None,
        }],
        yaml: false,
    };
    let ops = vec![
        Op::Create {
            name: 0,
            composite: false,
        },
        Op::Create {
            name: 1,
            composite: false,
        },
        Op::Create {
            name: 5,
            composite: true,
        },
        Op::PutConfig {
            group: 1,
            cfg: svc(0),
            dry_run: false,
            wild: true,
        },
        Op::PutConfig {
            group: 2,
            cfg: svc(0),
            dry_run: false,
            wild: true,
        },
        Op::Add {
            comp: 3,
            members: vec![1, 2],
            dry_run: true,
            wild: true,
        },
        Op::Add {
            comp: 3,
            members: vec![1, 2],
            dry_run: false,
            wild: true,
        },
        Op::Add {
            comp: 3,
            members: vec![1],
            dry_run: false,
            wild: true,
        },
        Op::PutConfig {
            group: 2,
            cfg: Cfg::Bad(Bad::UnresolvedReference),
            dry_run: false,
            wild: true,
        },
        Op::PutConfig {
            group: 2,
            cfg: svc(1),
            dry_run: true,
            wild: true,
        },
        Op::Rename { group: 2, name: 3 },
        Op::PutConfig {
            group: 2,
            cfg: Cfg::Good {
                ents: vec![],
                yaml: true,
            },
            dry_run: false,
            wild: true,
        },
        Op::Delete { group: 1 },
        Op::Remove {
            comp: 3,
            members: vec![1],
            dry_run: false,
            wild: true,
        },
        Op::Delete { group: 3 },
        Op::Delete { group: 1 },
    ];
    run(&ops);
}
