//! The Runtime Manager page (issue 14): rendering the groups page for 1,000
//! groups on the server (the issue asks for well under 100 ms), and one
//! composite's page with its conflicts, instances and history.
//!
//! The fixture goes through the daemon's write path (the engine, no store):
//! 800 standard groups with labels and configs, 200 composites of 4 members
//! each (one in ten in conflict) with 3 runtime instances each. The figure
//! is the whole page: filtering, sorting by name, and the askama template.
//!
//! `cargo bench --bench pages` (or `-- --test`, as CI's smoke test does).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use rgmerge::engine::Engine;
use rgmerge::registry::{GroupView, Mode, NewGroup, NodeReport, Settings};
use rgmerge::server::pages::groups_page;
use rgmerge::server::pages::render::{Chrome, GroupFilter, Sort, group_page};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const STANDARD: usize = 800;
const COMPOSITES: usize = 200;
const MEMBERS: usize = STANDARD / COMPOSITES;

struct Fixture {
    engine: Engine,
    views: Vec<Arc<GroupView>>,
    /// A composite in conflict, with instances.
    conflicted: Arc<GroupView>,
    _rt: tokio::runtime::Runtime,
}

fn config(service: &str) -> Vec<u8> {
    format!(
        "_format_version: \"3.0\"\nservices:\n- name: {service}\n  host: {service}.example\n  routes:\n  - name: {service}-route\n    paths: [/{service}]\n"
    )
    .into_bytes()
}

fn group(name: String, composite: bool, labels: &[(&str, String)]) -> NewGroup {
    NewGroup {
        name,
        description: None,
        cluster_type: composite.then(|| "CLUSTER_TYPE_CONTROL_PLANE_GROUP".to_string()),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        ..NewGroup::default()
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let settings = Settings {
            active_window_ms: 24 * 3600 * 1000,
            ..Settings::default()
        };
        let engine = Engine::start(None, settings).expect("engine");
        let conflicted = rt.block_on(async {
            let mut standard = Vec::with_capacity(STANDARD);
            for i in 0..STANDARD {
                let env = if i.is_multiple_of(3) { "prod" } else { "dev" };
                let v = engine
                    .create_group(group(
                        format!("team-{i:04}"),
                        false,
                        &[("team", format!("t{i}")), ("env", env.into())],
                    ))
                    .await
                    .expect("standard group");
                let id = v.meta.id;
                // One composite in ten gets two members with the same service.
                let c = i / MEMBERS;
                let service = if c.is_multiple_of(10) && i % MEMBERS < 2 {
                    format!("shared-{c}")
                } else {
                    format!("svc-{i}")
                };
                engine
                    .put_config(
                        id,
                        config(&service),
                        Some("application/yaml"),
                        Mode::Apply,
                        None,
                    )
                    .await
                    .expect("config");
                standard.push(id);
            }
            let mut first = None;
            for c in 0..COMPOSITES {
                let v = engine
                    .create_group(group(
                        format!("composite-{c:03}"),
                        true,
                        &[("env", "prod".into())],
                    ))
                    .await
                    .expect("composite");
                let id = v.meta.id;
                let members = standard[c * MEMBERS..(c + 1) * MEMBERS].to_vec();
                engine
                    .add_members(id, members, Mode::Apply)
                    .await
                    .expect("members");
                let hash = engine
                    .view(id)
                    .map(|v| v.snapshot.body.hash().to_string())
                    .unwrap_or_default();
                for n in 0..3 {
                    engine
                        .heartbeat(
                            id,
                            NodeReport {
                                id: Some(format!("dp-{c}-{n}")),
                                hostname: format!("dp-{c}-{n}.internal"),
                                ip: format!("10.0.{c}.{n}"),
                                version: "3.10.0.1".into(),
                                config_hash: if n == 2 { "old".into() } else { hash.clone() },
                                ..NodeReport::default()
                            },
                        )
                        .await
                        .expect("heartbeat");
                }
                first.get_or_insert(id);
            }
            first.and_then(|id| engine.view(id)).expect("a composite")
        });
        let views = engine.views();
        assert_eq!(
            views.len(),
            STANDARD + COMPOSITES + 1,
            "groups (and default)"
        );
        Fixture {
            engine,
            views,
            conflicted,
            _rt: rt,
        }
    })
}

fn chrome() -> Chrome {
    Chrome {
        title: "Runtime groups".into(),
        csrf: "0".repeat(64),
        changes: 0,
        signed_in: Some("team 'platform'".into()),
        can_sign_out: true,
    }
}

fn pages(c: &mut Criterion) {
    let f = fixture();
    let mut g = c.benchmark_group("pages");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("groups/1000", |b| {
        b.iter(|| {
            let html = groups_page(
                &f.engine,
                black_box(&f.views),
                GroupFilter::default(),
                chrome(),
            )
            .expect("render");
            black_box(html.len())
        })
    });
    g.bench_function("groups/1000/filtered", |b| {
        b.iter(|| {
            let filter = GroupFilter {
                name: "team-0".into(),
                label: "env:prod".into(),
            };
            let html =
                groups_page(&f.engine, black_box(&f.views), filter, chrome()).expect("render");
            black_box(html.len())
        })
    });
    g.bench_function("composite", |b| {
        b.iter(|| {
            let html = group_page(
                black_box(&f.conflicted),
                &|id| f.engine.view(id),
                Sort::default(),
                f.engine.active_window_ms(),
                true,
                chrome(),
            )
            .expect("render");
            black_box(html.len())
        })
    });
    g.finish();
}

criterion_group!(benches, pages);
criterion_main!(benches);
