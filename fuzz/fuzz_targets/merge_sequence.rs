//! A sequence of member adds, replacements, renames and removals applied
//! incrementally to one `Composite` must report exactly what a composite
//! merged from scratch of the final members reports (DESIGN: incremental ==
//! from scratch), and in whatever order the members were added (determinism).
//!
//! Input format (hand-rolled so seeds can embed real decK files): a list of
//! ops, each an op byte and a member byte, then the op's own bytes:
//! - generated config: a count byte, then per entity a kind byte and a few
//!   choice bytes, all drawn from small pools of names, ids, keys and vault
//!   prefixes so that members collide;
//! - raw config: a format byte, a 2-byte big-endian length, that many bytes.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rgmerge::compose::Composite;
use rgmerge::config::Format;
use rgmerge::intern::Interner;
use rgmerge::member::{Member, MemberInfo};
use rgmerge::report::State;
use serde_json::{Value, json};

const MEMBERS: usize = 4;
/// Ids fix the merge order; names (which findings show) sort differently.
const NAMES: [&str; MEMBERS] = ["delta", "alpha", "charlie", "bravo"];
const SVC: [&str; 3] = ["orders", "users", "billing"];
const ROUTE: [&str; 3] = ["r1", "r2", "r3"];
const IDS: [&str; 3] = [
    "6f1b5d2e-0000-4000-8000-000000000001",
    "6f1b5d2e-0000-4000-8000-000000000002",
    "6f1b5d2e-0000-4000-8000-000000000003",
];
const USERS: [&str; 3] = ["ann", "bob", "cyd"];
const KEYS: [&str; 3] = ["k1", "k2", "k3"];
const PLUGINS: [&str; 3] = ["cors", "rate-limiting", "key-auth"];
const PREFIXES: [&str; 4] = ["p1", "p2", "env", "p3"];
const TARGETS: [&str; 2] = ["10.0.0.1:80", "10.0.0.2:80"];
const SNIS: [&str; 2] = ["a.example.com", "b.example.com"];

struct Rd<'a> {
    d: &'a [u8],
    i: usize,
}

impl Rd<'_> {
    fn done(&self) -> bool {
        self.i >= self.d.len()
    }
    fn byte(&mut self) -> u8 {
        let b = self.d.get(self.i).copied().unwrap_or(0);
        self.i += 1;
        b
    }
    fn bit(&mut self) -> bool {
        self.byte() & 1 == 1
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.byte() as usize % xs.len()]
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let start = self.i.min(self.d.len());
        let end = (start + n).min(self.d.len());
        self.i = start + n;
        &self.d[start..end]
    }
}

fn maybe_id(r: &mut Rd, v: &mut Value) {
    if r.byte().is_multiple_of(3) {
        v["id"] = json!(r.pick(&IDS));
    }
}

/// One small decK document; mostly valid, sometimes not (a dangling
/// reference, a duplicate inside the member), so every finding kind occurs.
fn gen_config(r: &mut Rd) -> Value {
    let mut doc = json!({"_format_version": "3.0"});
    let n = r.byte() % 7;
    for _ in 0..n {
        let (coll, item) = match r.byte() % 12 {
            0 | 1 => {
                let mut s = json!({"name": r.pick(&SVC), "host": "upstream.internal"});
                maybe_id(r, &mut s);
                if r.bit() {
                    s["routes"] = json!([{"name": r.pick(&ROUTE), "paths": ["/x"]}]);
                }
                if r.byte().is_multiple_of(4) {
                    s["host"] = json!(format!("{{vault://{}/host}}", r.pick(&PREFIXES)));
                }
                ("services", s)
            }
            2 => {
                let mut route = json!({"name": r.pick(&ROUTE), "paths": ["/y"]});
                if r.bit() {
                    route["service"] = json!({"name": r.pick(&SVC)});
                }
                ("routes", route)
            }
            3 => (
                "upstreams",
                json!({"name": r.pick(&SVC), "targets": [{"target": r.pick(&TARGETS)}]}),
            ),
            4 => {
                let mut c = json!({"username": r.pick(&USERS)});
                if r.bit() {
                    c["custom_id"] = json!(r.pick(&KEYS));
                }
                if r.bit() {
                    c["keyauth_credentials"] = json!([{"key": r.pick(&KEYS)}]);
                }
                if r.bit() {
                    c["basicauth_credentials"] =
                        json!([{"username": r.pick(&USERS), "password": "pw"}]);
                }
                if r.bit() {
                    c["acls"] = json!([{"group": "staff"}]);
                }
                maybe_id(r, &mut c);
                ("consumers", c)
            }
            5 | 6 => {
                let mut p = json!({"name": r.pick(&PLUGINS), "config": {}});
                match r.byte() % 4 {
                    0 => p["service"] = json!(r.pick(&SVC)),
                    1 => p["instance_name"] = json!(r.pick(&ROUTE)),
                    2 => {
                        p["config"] =
                            json!({"secret": format!("{{vault://{}/s}}", r.pick(&PREFIXES))})
                    }
                    _ => {}
                }
                maybe_id(r, &mut p);
                ("plugins", p)
            }
            7 => (
                "vaults",
                json!({"name": "env", "prefix": r.pick(&PREFIXES)}),
            ),
            8 => {
                let mut g = json!({"name": r.pick(&USERS)});
                maybe_id(r, &mut g);
                ("consumer_groups", g)
            }
            9 => {
                let mut c =
                    json!({"cert": "-----BEGIN CERTIFICATE-----", "key": "-----BEGIN KEY-----"});
                maybe_id(r, &mut c);
                if r.bit() {
                    c["snis"] = json!([{"name": r.pick(&SNIS)}]);
                }
                ("certificates", c)
            }
            10 => {
                let mut k = json!({"name": r.pick(&KEYS)});
                maybe_id(r, &mut k);
                ("key_sets", k)
            }
            _ => (
                "partials",
                json!({"name": r.pick(&KEYS), "type": "redis-ee", "config": {}}),
            ),
        };
        match doc[coll].as_array_mut() {
            Some(a) => a.push(item),
            None => doc[coll] = json!([item]),
        }
    }
    doc
}

fn to_bytes(doc: &Value, yaml: bool) -> (Vec<u8>, Format) {
    if yaml {
        // JSON is YAML: exercises the YAML path on the same content.
        (
            serde_json::to_string_pretty(doc)
                .unwrap_or_default()
                .into_bytes(),
            Format::Yaml,
        )
    } else {
        (serde_json::to_vec(doc).unwrap_or_default(), Format::Json)
    }
}

/// Everything a composite reports, for comparison.
fn observe(c: &Composite) -> String {
    let body = c.assemble();
    format!(
        "state={:?}\nconflicts={:?}\nerrors={:?}\nreport={:?}\nhash={}\nbody={}\nprovenance={:?}\nlen={}",
        c.state(),
        c.conflicts(),
        c.errors(),
        c.report(),
        body.hash(),
        String::from_utf8_lossy(&body.to_vec()),
        c.provenance(),
        c.len(),
    )
}

fuzz_target!(|data: &[u8]| {
    let interner = Arc::new(Interner::new());
    let mut r = Rd { d: data, i: 0 };
    let mut inc = Composite::new(interner.clone());
    let mut current: [Option<Arc<Member>>; MEMBERS] = Default::default();
    let mut src: [Option<(Vec<u8>, Format)>; MEMBERS] = Default::default();
    let mut renamed = [false; MEMBERS];
    let mut ops = 0;
    while !r.done() && ops < 64 {
        ops += 1;
        let op = r.byte() % 8;
        let k = r.byte() as usize % MEMBERS;
        let info = |renamed: bool| MemberInfo {
            id: format!("m{k}"),
            name: if renamed {
                format!("{}-2", NAMES[k])
            } else {
                NAMES[k].to_string()
            },
            is_default: k == 0,
        };
        match op {
            0..=2 => {
                let doc = gen_config(&mut r);
                let (bytes, format) = to_bytes(&doc, r.bit());
                let m = Arc::new(Member::build(info(renamed[k]), &bytes, format, &interner));
                inc.upsert(m.clone());
                current[k] = Some(m);
                src[k] = Some((bytes, format));
            }
            3 => {
                let yaml = r.bit();
                let len = u16::from_be_bytes([r.byte(), r.byte()]) as usize;
                let bytes = r.take(len.min(4096)).to_vec();
                let format = if yaml { Format::Yaml } else { Format::Json };
                let m = Arc::new(Member::build(info(renamed[k]), &bytes, format, &interner));
                inc.upsert(m.clone());
                current[k] = Some(m);
                src[k] = Some((bytes, format));
            }
            4 | 5 => {
                let removed = inc.remove(&format!("m{k}"));
                assert_eq!(removed.is_some(), current[k].is_some());
                current[k] = None;
                src[k] = None;
            }
            6 => {
                // Rename: the same config re-entered under a new name, as the daemon does.
                if let Some((bytes, format)) = src[k].clone() {
                    renamed[k] = !renamed[k];
                    let m = Arc::new(Member::build(info(renamed[k]), &bytes, format, &interner));
                    inc.upsert(m.clone());
                    current[k] = Some(m);
                }
            }
            _ => {
                // Re-upsert the very same member: must change nothing.
                if let Some(m) = current[k].clone() {
                    let before = observe(&inc);
                    let prev = inc.upsert(m.clone());
                    assert!(prev.is_some_and(|p| Arc::ptr_eq(&p, &m)));
                    assert_eq!(
                        before,
                        observe(&inc),
                        "re-upserting a member changed the composite"
                    );
                }
            }
        }
        assert_eq!(inc.len(), current.iter().flatten().count());
        assert_eq!(inc.conflict_count(), inc.conflicts().len());
    }

    let finals: Vec<Arc<Member>> = current.iter().flatten().cloned().collect();
    let scratch = Composite::from_members(interner.clone(), finals.iter().cloned());
    let got = observe(&inc);
    assert_eq!(got, observe(&scratch), "incremental != from scratch");
    let reversed = Composite::from_members(interner.clone(), finals.iter().rev().cloned());
    assert_eq!(got, observe(&reversed), "merge depends on insertion order");

    // State is a function of the findings.
    let report = inc.report();
    let expected = if !report.errors.is_empty() {
        State::Invalid
    } else if !report.conflicts.is_empty() {
        State::Conflict
    } else {
        State::Ok
    };
    assert_eq!(report.state, expected);
    assert_eq!(inc.state(), expected);
    for c in &report.conflicts {
        assert!(
            c.members.windows(2).all(|w| w[0] < w[1]),
            "members unsorted: {c:?}"
        );
        assert_eq!(c.paths.len(), c.members.len(), "{c:?}");
    }

    // An OK composite's snapshot is itself a valid decK file with every entity.
    let body = inc.assemble();
    let bytes = body.to_vec();
    let doc: Value = serde_json::from_slice(&bytes).expect("snapshot is JSON");
    assert_eq!(doc["_format_version"], "3.0");
    if report.state == State::Ok {
        let merged = Member::build(
            MemberInfo::new("merged", "merged", true),
            &bytes,
            Format::Json,
            &interner,
        );
        assert!(
            merged.errors.is_empty(),
            "OK composite's snapshot is not a valid member: {:?}\n{}",
            merged.errors,
            String::from_utf8_lossy(&bytes)
        );
        let total: usize = finals.iter().map(|m| m.entities).sum();
        assert_eq!(
            merged.entities, total,
            "entities lost or invented in the merge"
        );
    }
});
