//! Criterion benches of the engine: parsing, building one member, full and
//! incremental merges of composites of 8, 64 and 256 members × 1,000
//! entities, and snapshot assembly.
//!
//! `cargo bench -- --test` runs each bench once (CI's smoke test);
//! `cargo bench -- --profile-time 10 incremental/256` runs one without
//! analysis, for `perf record`. Member configs come from `rgmerge::synth`, so
//! the inputs are the same on every machine and every run.
//!
//! `startup/restore/256` opens a data directory holding a composite of 256
//! members × 1,000 entities (written once, through the daemon's write path)
//! and restores it as `rgmerge serve` does; under `--test` it uses 16 members
//! so CI's smoke test stays fast.

use std::hint::black_box;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;
use serde::de::DeserializeSeed;

use rgmerge::bench;
use rgmerge::compose::{Body, Composite};
use rgmerge::config::value::StrictValue;
use rgmerge::config::{self, Format};
use rgmerge::intern::Interner;
use rgmerge::member::{Member, MemberInfo};
use rgmerge::synth::{self, Spec};

// The allocator the `rgmerge` binary ships with, so figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ENTITIES: usize = 1000;
const SIZES: [usize; 3] = [8, 64, 256];
const SPEC: Spec = Spec {
    entities: ENTITIES,
    conflicts: 0.0,
    seed: 1,
};

fn info(i: usize) -> MemberInfo {
    let name = synth::member_name(i, 256);
    MemberInfo {
        id: name.clone(),
        name,
        is_default: i == 0,
    }
}

/// The largest composite's members, built once and shared: the smaller
/// composites are its first 8 and 64 members.
struct Fixture {
    interner: Arc<Interner>,
    members: Vec<Arc<Member>>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let interner = Arc::new(Interner::new());
        let members = (0..SIZES[SIZES.len() - 1])
            .into_par_iter()
            .map(|i| {
                let bytes = synth::to_json(&synth::member_document(i, &SPEC, 0));
                Arc::new(Member::build(info(i), &bytes, Format::Json, &interner))
            })
            .collect();
        Fixture { interner, members }
    })
}

fn parse(c: &mut Criterion) {
    let json = synth::to_json(&synth::member_document(0, &SPEC, 0));
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("json/simd_json_strict", |b| {
        b.iter(|| config::parse(black_box(&json), Format::Json))
    });
    g.bench_function("json/serde_json_value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&json)))
    });
    // The same strict seed (duplicate keys, depth) driven by serde_json instead.
    g.bench_function("json/serde_json_strict", |b| {
        b.iter(|| {
            let mut de = serde_json::Deserializer::from_slice(black_box(&json));
            StrictValue::root().deserialize(&mut de)
        })
    });
    g.finish();
}

/// YAML: the fast reader for decK's subset (`config::parse`) against the full
/// parser it replaced (`parse_yaml_reference`: serde-saphyr into the strict
/// seed), on the same generated files in the same run: a 1,000-entity member
/// (408 KB as JSON) and a 12,000-service file (120,000 entities). `parse/*`
/// is the parser alone; `validate/*` is what `rgmerge validate` does per file
/// after reading it (parse, then the schema walk and checks).
fn yaml(c: &mut Criterion) {
    let quick = std::env::args().any(|a| a == "--test");
    let small = synth::to_yaml(&synth::member_document(0, &SPEC, 0)).unwrap_or_default();
    // 12,000 services: services are a tenth of a generated member's entities.
    let big_spec = Spec {
        entities: if quick { 1_200 } else { 120_000 },
        ..SPEC
    };
    let big = synth::to_yaml(&synth::member_document(0, &big_spec, 0)).unwrap_or_default();
    let mut g = c.benchmark_group("yaml");
    for (name, doc) in [("member_1000", &small), ("services_12000", &big)] {
        g.throughput(Throughput::Bytes(doc.len() as u64));
        if doc.len() > 1 << 20 {
            g.sample_size(10);
            g.warm_up_time(Duration::from_millis(1));
            g.measurement_time(Duration::from_secs(5));
        } else {
            g.sample_size(20);
        }
        g.bench_function(format!("parse/{name}/fast"), |b| {
            b.iter(|| config::parse(black_box(doc), Format::Yaml))
        });
        g.bench_function(format!("parse/{name}/reference"), |b| {
            b.iter(|| config::parse::parse_yaml_reference(black_box(doc)))
        });
        g.bench_function(format!("validate/{name}/fast"), |b| {
            b.iter(|| config::read_member(black_box(doc), Format::Yaml))
        });
        g.bench_function(format!("validate/{name}/reference"), |b| {
            b.iter(|| config::parse::parse_yaml_reference(black_box(doc)).map(config::read_value))
        });
    }
    g.finish();
}

fn member(c: &mut Criterion) {
    let interner = Interner::new();
    let json = synth::to_json(&synth::member_document(0, &SPEC, 0));
    let mut g = c.benchmark_group("member");
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("build_1000_entities/json", |b| {
        b.iter(|| Member::build(info(0), black_box(&json), Format::Json, &interner))
    });
    g.finish();
}

/// Index, conflicts, report and snapshot of a composite merged from scratch
/// out of pre-built members (parsing excluded).
fn full_merge(c: &mut Criterion) {
    let mut g = c.benchmark_group("full_merge");
    g.sample_size(10);
    for n in SIZES {
        g.throughput(Throughput::Elements((n * ENTITIES) as u64));
        // Set-up inside the closure: criterion only calls it when the bench
        // passes the command line's filter.
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let f = fixture();
            // One composite alive at a time: the output is dropped untimed.
            b.iter_batched(
                || (),
                |()| {
                    let c = Composite::from_members(f.interner.clone(), f.members[..n].to_vec());
                    let report = c.report();
                    let body = c.assemble();
                    (c, report, body)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// A composite of `n` members and two revisions of its middle member.
struct Incremental {
    composite: Composite,
    versions: [Arc<Member>; 2],
    flip: usize,
}

impl Incremental {
    fn new(n: usize) -> Incremental {
        let f = fixture();
        let target = n / 2;
        let bytes = synth::to_json(&synth::member_document(target, &SPEC, 1));
        let revised = Member::build(info(target), &bytes, Format::Json, &f.interner);
        Incremental {
            composite: Composite::from_members(f.interner.clone(), f.members[..n].to_vec()),
            versions: [Arc::new(revised), f.members[target].clone()],
            flip: 0,
        }
    }
}

/// One member replaced by a new revision of itself (and back), state read,
/// conflicts listed, a new snapshot assembled and hashed. Should stay nearly
/// flat as n grows (only the snapshot's rope grows with the member count).
fn incremental(c: &mut Criterion) {
    let mut g = c.benchmark_group("incremental_update");
    for n in SIZES {
        // Criterion may call the closure more than once; set up on the first.
        let mut state: Option<Incremental> = None;
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let s = state.get_or_insert_with(|| Incremental::new(n));
            b.iter_batched(
                || {
                    s.flip += 1;
                    s.versions[s.flip % 2].clone()
                },
                |next| {
                    let old = s.composite.upsert(next);
                    let state = s.composite.state();
                    let conflicts = s.composite.conflicts();
                    let body = s.composite.assemble();
                    (old, state, conflicts, body)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// Assembling and hashing the 256-member snapshot (a rope of member chunks),
/// against copying the same 60 MB document into one buffer and hashing it.
fn snapshot(c: &mut Criterion) {
    let shared: OnceLock<(Composite, Body)> = OnceLock::new();
    let setup = || {
        shared.get_or_init(|| {
            let f = fixture();
            let composite = Composite::from_members(f.interner.clone(), f.members.clone());
            let body = composite.assemble();
            (composite, body)
        })
    };
    let mut g = c.benchmark_group("snapshot_256");
    g.bench_function("assemble_and_hash", |b| {
        let (composite, _) = setup();
        b.iter(|| composite.assemble())
    });
    g.sample_size(10);
    g.bench_function("copy_and_hash_whole_body", |b| {
        let (_, body) = setup();
        b.iter(|| blake3::hash(&body.to_vec()))
    });
    g.finish();
}

/// The cluster endpoint's cost per served version (issue 30): Kong's config
/// hash over the snapshot (parse, then hash) and the gzip'd reconfigure
/// frame, each made once per version and sent to every data plane.
fn cluster_payload(c: &mut Criterion) {
    let n = SIZES[1];
    let shared: OnceLock<(Vec<u8>, serde_json::Value)> = OnceLock::new();
    let setup = || {
        shared.get_or_init(|| {
            let f = fixture();
            let composite = Composite::from_members(f.interner.clone(), f.members[..n].to_vec());
            let bytes = composite.assemble_kong().to_vec();
            let value = serde_json::from_slice(&bytes).expect("a snapshot is JSON");
            (bytes, value)
        })
    };
    let mut g = c.benchmark_group(format!("cluster_payload_{n}"));
    g.sample_size(10);
    g.bench_function("parse_and_kong_hash", |b| {
        let (bytes, _) = setup();
        b.iter(|| {
            let v: serde_json::Value = serde_json::from_slice(bytes).expect("json");
            rgmerge::cluster::hash::config_hash(&v)
        })
    });
    g.bench_function("kong_hash", |b| {
        let (_, value) = setup();
        b.iter(|| rgmerge::cluster::hash::config_hash(value))
    });
    g.bench_function("gzip_reconfigure_frame", |b| {
        let (bytes, _) = setup();
        let hashes = serde_json::json!({"config": "0"});
        b.iter(|| rgmerge::cluster::wire::reconfigure(0, bytes, "0", &hashes).expect("gzip"))
    });
    g.finish();
}

/// Start-up: `Store::open` + `Engine::start` on a data directory holding one
/// composite of `n` members (members rebuilt in parallel, the composite
/// merged, every published snapshot's hash checked). Each start-up takes
/// about 1–2.5 s at 256 members, so few samples.
fn startup(c: &mut Criterion) {
    // `cargo bench -- --test` (CI) runs each bench once: a small store will do.
    let n = if std::env::args().any(|a| a == "--test") {
        16
    } else {
        SIZES[SIZES.len() - 1]
    };
    let mut dir: Option<tempfile::TempDir> = None;
    let mut g = c.benchmark_group("startup");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(1));
    g.measurement_time(Duration::from_secs(25));
    g.throughput(Throughput::Elements((n * ENTITIES) as u64));
    g.bench_with_input(BenchmarkId::new("restore", n), &n, |b, &n| {
        let d = dir.get_or_insert_with(|| {
            let d = tempfile::tempdir().expect("a temporary directory");
            bench::write_startup_fixture(d.path(), n, &SPEC).expect("the fixture is written");
            d
        });
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // The previous engine's writer thread closes the store.
                bench::wait_until_closed(d.path());
                let t = std::time::Instant::now();
                let engine = bench::start_up(d.path()).expect("the store restores");
                total += t.elapsed();
                drop(black_box(engine));
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = parse, yaml, member, full_merge, incremental, snapshot, cluster_payload, startup
}
criterion_main!(benches);
