//! The engine against real decK/Kong files (`../shared/fixtures/real/`, see its
//! PROVENANCE.md). They are other projects' files, so they are never committed
//! here: every development and CI checkout has them beside the repository. When
//! the folder is missing these tests fail under `CI=true` and are skipped
//! elsewhere with a printed reason.
//!
//! - Every file Kong accepts validates clean as a single member (no false
//!   positives); every file Kong would refuse is listed with the exact finding
//!   codes it must produce, so any change of behaviour is caught.
//! - Merged in pairs (every pair of clean files) and in the groups a platform
//!   team would form, the conflicts are exactly the keys the files share. The
//!   expectation is computed here, independently of the engine, by reading the
//!   files with serde and collecting the unique keys the README lists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rgmerge::compose::{Composite, Form};
use rgmerge::config::Format;
use rgmerge::intern::Interner;
use rgmerge::member::{Member, MemberInfo};
use rgmerge::report::{Report, State};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/real")
}

/// Whether the real files are here; under `CI=true` their absence fails the test.
fn real_files_present(test: &str) -> bool {
    if root().is_dir() {
        return true;
    }
    let reason = format!("{} is missing", root().display());
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: {reason}; CI must have ../shared/fixtures/real"
    );
    eprintln!("SKIPPED {test}: {reason}");
    false
}

/// Every fixture file, as `owner__repo/file`.
fn fixture_files() -> Vec<String> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(root()).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            out.push(format!(
                "{}/{}",
                dir.file_name().unwrap().to_string_lossy(),
                f.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    out.sort();
    out
}

fn stem(rel: &str) -> String {
    let file = rel.rsplit('/').next().unwrap();
    Path::new(file)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .to_string()
}

fn build(rel: &str, interner: &Interner) -> Arc<Member> {
    let path = root().join(rel);
    let bytes = std::fs::read(&path).unwrap();
    let name = stem(rel);
    let info = MemberInfo::unnamed(name);
    Arc::new(Member::build(
        info,
        &bytes,
        Format::from_path(&path, &bytes),
        interner,
    ))
}

fn codes(report: &Report) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for c in &report.conflicts {
        *out.entry(c.kind.code().to_string()).or_default() += 1;
    }
    for e in &report.errors {
        *out.entry(e.kind.code().to_string()).or_default() += 1;
    }
    out
}

/// Files Kong (or decK 3.x) would refuse, and what the engine must say about them.
const REFUSED: &[(&str, &[(&str, usize)])] = &[
    // No `_format_version` (decK's reader unit-test inputs).
    (
        "Kong__go-database-reconciler/pkg__file__testdata__config.yaml",
        &[("schema_error", 1)],
    ),
    (
        "Kong__go-database-reconciler/pkg__file__testdata__file.json",
        &[("schema_error", 1)],
    ),
    // Also a decK template (`${{ env "…" }}`) as a service host and as a
    // pre-function's `log` (an array in Kong): decK substitutes it, Kong
    // would not take the literal.
    (
        "Kong__go-database-reconciler/pkg__file__testdata__file.yaml",
        &[("schema_error", 3)],
    ),
    // `_format_version: "1.1"`.
    (
        "Kong__go-database-reconciler/tests__integration__testdata__sync__008-create-simple-entities__kong.yaml",
        &[("schema_error", 1)],
    ),
    (
        "Kong__kong/spec__fixtures__burst.yml",
        &[("schema_error", 1)],
    ),
    // Ids like "svc-1" that are not UUIDs: one schema_error per id; and a
    // certificate whose `cert` and `key` are not PEM. 005 also scopes
    // key-auth and acl to a consumer group, which their schemas do not
    // allow (Kong's published schemas: no `consumer_group`).
    (
        "Kong__go-database-reconciler/tests__integration__testdata__render__deterministic-sort__005-nested-entities__input.yaml",
        &[("schema_error", 47)],
    ),
    (
        "Kong__go-database-reconciler/tests__integration__testdata__render__deterministic-sort__006-complex-nested-structure__input.yaml",
        &[("schema_error", 48)],
    ),
    // Plugins scoped to consumers johndoe1..3 that the file does not define.
    (
        "Kong__go-apiops/openapi2kong__oas3_testfiles__09a-plugins-with-consumers.expected.json",
        &[("unresolved_reference", 3)],
    ),
    // `{vault://ai/openai-token}`: no vault with prefix `ai`, and no built-in
    // backend; and plugin `ai-model-selector`, which Kong Gateway 3.10 does
    // not bundle.
    (
        "Kong__deck/tests__integration__testdata__file_ai2kong__05-identity-providers__output.yaml",
        &[("schema_error", 1), ("unresolved_vault_reference", 1)],
    ),
    // Plugins Kong Gateway 3.10 does not bundle (`ai-model-selector`, the
    // 3.12 `ai-mcp-proxy`, openapi2kong's placeholder `some-plugin1..3`):
    // Kong refuses a plugin that is not enabled on the node.
    (
        "Kong__deck/tests__integration__testdata__file_ai2kong__02-identity-and-policies__output.yaml",
        &[("schema_error", 1)],
    ),
    (
        "Kong__go-apiops/openapi2mcp__oas3_testfiles__08-security-acl.expected.json",
        &[("schema_error", 1)],
    ),
    (
        "Kong__go-apiops/openapi2kong__oas3_testfiles__10-generic-plugins-multi-service.expected.json",
        &[("schema_error", 4)],
    ),
    // rate-limiting-advanced with `limit` but no `window_size`, which Kong
    // Gateway Enterprise requires (its published 3.10 schema): openapi2kong's
    // expected output, not a file Kong loads. One per route.
    (
        "Kong__go-apiops/openapi2kong__oas3_testfiles__29-routes-with-headers-duplicate-plugin-id.expected.json",
        &[("schema_error", 3)],
    ),
    // A plugin's `partials` entry names a partial the file does not define.
    (
        "Kong__go-database-reconciler/tests__integration__testdata__dump__006-plugin-partials__select-tagged-dump-global.yaml",
        &[("unresolved_reference", 1)],
    ),
];

#[test]
fn every_real_file_gives_exactly_its_expected_findings() {
    if !real_files_present("every_real_file_gives_exactly_its_expected_findings") {
        return;
    }
    let files = fixture_files();
    assert!(files.len() >= 60, "{} fixture files", files.len());
    let interner = Arc::new(Interner::new());
    let mut failures = Vec::new();
    let mut clean = 0;
    for rel in files.iter().filter(|f| !f.ends_with(".md")) {
        let m = build(rel, &interner);
        let c = Composite::from_members(interner.clone(), [m]);
        let report = c.report();
        let expected: BTreeMap<String, usize> = REFUSED
            .iter()
            .find(|(f, _)| f == rel)
            .map(|(_, codes)| codes.iter().map(|&(c, n)| (c.to_string(), n)).collect())
            .unwrap_or_default();
        let actual = codes(&report);
        if actual != expected {
            failures.push(format!(
                "{rel}: expected {expected:?}, got {actual:?}\n{}",
                rgmerge::report::text::render(&report)
            ));
        }
        if expected.is_empty() {
            clean += 1;
            assert_eq!(report.state, State::Ok, "{rel}");
            let snapshot = c.assemble().to_vec();
            let doc: Value = serde_json::from_slice(&snapshot)
                .unwrap_or_else(|e| panic!("{rel}: snapshot is not JSON: {e}"));
            assert_eq!(doc["_format_version"], "3.0", "{rel}");
        }
    }
    for (f, _) in REFUSED {
        assert!(files.iter().any(|x| x == f), "{f} is not a fixture");
    }
    assert!(
        failures.is_empty(),
        "{} file(s) differ:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(clean >= 45, "only {clean} clean files");
}

/// The refused files say *where*: every finding has a path or a position.
#[test]
fn findings_on_real_files_point_at_the_entity() {
    if !real_files_present("findings_on_real_files_point_at_the_entity") {
        return;
    }
    let interner = Arc::new(Interner::new());
    let m = build(REFUSED[5].0, &interner);
    let report = Composite::from_members(interner.clone(), [m]).report();
    let paths: Vec<&str> = report.errors.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"services[0].id"), "{paths:?}");
    assert!(
        paths.contains(&"consumers[0].keyauth_credentials[2].id"),
        "{paths:?}"
    );
    let m = build(REFUSED[7].0, &interner);
    let report = Composite::from_members(interner.clone(), [m]).report();
    let refs: Vec<(&str, &str)> = report
        .errors
        .iter()
        .map(|e| (e.path.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(refs.len(), 3);
    for (path, message) in refs {
        assert!(path.starts_with("plugins[") && path.ends_with("].consumer"));
        assert!(message.contains("names consumer 'johndoe"), "{message}");
    }
}

// ---------- an independent reading of the unique keys ----------

/// (conflict type, collection, field, value)
type KeyOf = (&'static str, String, &'static str, String);

fn read_value(rel: &str) -> Value {
    let bytes = std::fs::read(root().join(rel)).unwrap();
    if rel.ends_with(".json") {
        serde_json::from_slice(&bytes).unwrap()
    } else {
        serde_saphyr::from_slice(&bytes).unwrap()
    }
}

fn s(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// A reference written as a string or as `{id}`/`{name}`.
fn ref_value(v: &Value) -> Option<String> {
    s(v).or_else(|| s(&v["id"])).or_else(|| s(&v["name"]))
}

/// Every composite-wide unique key of one config.
fn unique_keys(doc: &Value) -> BTreeSet<KeyOf> {
    let mut out = BTreeSet::new();
    // Upstreams and key sets may be named by id; keys compare by name.
    let mut canonical = BTreeMap::new();
    for coll in ["upstreams", "key_sets"] {
        for item in doc[coll].as_array().into_iter().flatten() {
            if let (Some(id), Some(name)) = (s(&item["id"]), s(&item["name"])) {
                canonical.insert(id, name);
            }
        }
    }
    let canon = |v: String| canonical.get(&v).cloned().unwrap_or(v);
    for (key, items) in doc.as_object().unwrap() {
        if key == "_plugin_configs" {
            for name in items.as_object().into_iter().flatten().map(|(k, _)| k) {
                out.insert(("duplicate_name", key.clone(), "name", name.clone()));
            }
            continue;
        }
        if key.starts_with('_') {
            continue;
        }
        for item in items.as_array().into_iter().flatten() {
            entity(key, item, None, &canon, &mut out);
        }
    }
    out
}

fn entity(
    coll: &str,
    e: &Value,
    parent: Option<&str>,
    canon: &dyn Fn(String) -> String,
    out: &mut BTreeSet<KeyOf>,
) {
    let mut add = |ty: &'static str, field: &'static str, v: Option<String>| {
        if let Some(v) = v {
            out.insert((ty, coll.to_string(), field, v));
        }
    };
    add("duplicate_id", "id", s(&e["id"]));
    match coll {
        "services" | "routes" | "upstreams" | "consumer_groups" | "key_sets" | "keys" | "snis"
        | "partials" | "filter_chains" | "rbac_roles" | "service_packages" | "custom_plugins"
        | "cloned_plugins" | "ai_models" => add("duplicate_name", "name", s(&e["name"])),
        "consumers" => {
            add("duplicate_name", "username", s(&e["username"]));
            add("duplicate_name", "custom_id", s(&e["custom_id"]));
        }
        "plugins" => {
            add("duplicate_name", "instance_name", s(&e["instance_name"]));
            let scoped = ["service", "route", "consumer", "consumer_group"]
                .iter()
                .any(|f| !e[f].is_null());
            if parent.is_none() && !scoped {
                add("duplicate_global_plugin", "name", s(&e["name"]));
            }
        }
        "vaults" => add("duplicate_vault_prefix", "prefix", s(&e["prefix"])),
        "keyauth_credentials" | "jwt_secrets" => add("duplicate_credential", "key", s(&e["key"])),
        "basicauth_credentials" | "hmacauth_credentials" => {
            add("duplicate_credential", "username", s(&e["username"]))
        }
        "oauth2_credentials" => add("duplicate_credential", "client_id", s(&e["client_id"])),
        _ => {}
    }
    match coll {
        "targets" => {
            let up = parent
                .map(str::to_string)
                .or_else(|| ref_value(&e["upstream"]).map(canon));
            if let (Some(up), Some(t)) = (up, s(&e["target"])) {
                add("duplicate_name", "target", Some(format!("({up}, {t})")));
            }
        }
        "keys" => {
            if let Some(kid) = s(&e["kid"]) {
                let set = ref_value(&e["set"]).map(canon).unwrap_or_default();
                add("duplicate_name", "kid", Some(format!("({set}, {kid})")));
            }
        }
        _ => {}
    }
    let nested: &[&str] = match coll {
        "services" => &["routes", "plugins"],
        "routes" | "consumer_groups" => &["plugins"],
        "upstreams" => &["targets"],
        "certificates" => &["snis"],
        "consumers" => &[
            "plugins",
            "keyauth_credentials",
            "basicauth_credentials",
            "jwt_secrets",
            "hmacauth_credentials",
            "oauth2_credentials",
            "mtls_auth_credentials",
            "acls",
        ],
        _ => &[],
    };
    let me = s(&e["name"]).or_else(|| s(&e["id"]));
    for child in nested {
        for item in e[*child].as_array().into_iter().flatten() {
            entity(child, item, Some(me.as_deref().unwrap_or("")), canon, out);
        }
    }
}

/// (type, collection, field, value, members) of the conflicts `files` must give.
type Expected = BTreeSet<(String, String, String, String, Vec<String>)>;

fn expected_conflicts(files: &[&str], keys: &BTreeMap<String, BTreeSet<KeyOf>>) -> Expected {
    let mut holders: BTreeMap<&KeyOf, Vec<String>> = BTreeMap::new();
    for f in files {
        for k in &keys[*f] {
            holders.entry(k).or_default().push(stem(f));
        }
    }
    holders
        .into_iter()
        .filter(|(_, m)| m.len() >= 2)
        .map(|((ty, coll, field, value), mut members)| {
            members.sort();
            (
                ty.to_string(),
                coll.clone(),
                field.to_string(),
                value.clone(),
                members,
            )
        })
        .collect()
}

fn actual_conflicts(report: &Report) -> Expected {
    report
        .conflicts
        .iter()
        .map(|c| {
            (
                c.kind.code().to_string(),
                c.entity.clone(),
                c.field.clone(),
                c.value.clone(),
                c.members.clone(),
            )
        })
        .collect()
}

struct Fixtures {
    interner: Arc<Interner>,
    members: BTreeMap<String, Arc<Member>>,
    keys: BTreeMap<String, BTreeSet<KeyOf>>,
}

fn clean_fixtures() -> Fixtures {
    let interner = Arc::new(Interner::new());
    let mut members = BTreeMap::new();
    let mut keys = BTreeMap::new();
    for rel in fixture_files() {
        if rel.ends_with(".md") || REFUSED.iter().any(|(f, _)| *f == rel) {
            continue;
        }
        keys.insert(rel.clone(), unique_keys(&read_value(&rel)));
        members.insert(rel.clone(), build(&rel, &interner));
    }
    Fixtures {
        interner,
        members,
        keys,
    }
}

fn merge(fx: &Fixtures, files: &[&str]) -> Report {
    Composite::from_members(
        fx.interner.clone(),
        files.iter().map(|f| fx.members[*f].clone()),
    )
    .report()
}

#[test]
fn every_pair_of_clean_files_conflicts_exactly_on_shared_keys() {
    if !real_files_present("every_pair_of_clean_files_conflicts_exactly_on_shared_keys") {
        return;
    }
    let fx = clean_fixtures();
    let files: Vec<&str> = fx.members.keys().map(String::as_str).collect();
    let (mut pairs, mut conflicting) = (0, 0);
    let mut failures = Vec::new();
    for (i, a) in files.iter().enumerate() {
        for b in &files[i + 1..] {
            let report = merge(&fx, &[a, b]);
            let expected = expected_conflicts(&[a, b], &fx.keys);
            let actual = actual_conflicts(&report);
            if actual != expected {
                failures.push(format!(
                    "{a} + {b}:\n  missing {:?}\n  unexpected {:?}",
                    expected.difference(&actual).collect::<Vec<_>>(),
                    actual.difference(&expected).collect::<Vec<_>>()
                ));
            }
            assert!(report.errors.is_empty(), "{a} + {b}: {:?}", report.errors);
            let want = if expected.is_empty() {
                State::Ok
            } else {
                State::Conflict
            };
            assert_eq!(report.state, want, "{a} + {b}");
            pairs += 1;
            conflicting += usize::from(!expected.is_empty());
        }
    }
    assert!(
        failures.is_empty(),
        "{} pair(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(pairs > 1000, "{pairs} pairs");
    assert!(conflicting >= 20, "only {conflicting} pairs conflict");
}

const DECK: &str = "Kong__deck/tests__integration__testdata__";
const GDR: &str = "Kong__go-database-reconciler/";

fn full(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

/// Groups a platform team would merge, with the conflict *kinds* each must show.
#[test]
fn realistic_composites_conflict_as_their_overlap_implies() {
    if !real_files_present("realistic_composites_conflict_as_their_overlap_implies") {
        return;
    }
    let fx = clean_fixtures();
    let groups: Vec<(Vec<String>, &[&str])> = vec![
        // The same Konnect workspace before and after an update.
        (
            full(&[
                &format!(
                    "{DECK}sync__050-konnect-workspace__konnect-workspace-with-multiple-entities.yaml"
                ),
                &format!(
                    "{DECK}sync__050-konnect-workspace__konnect-workspace-with-multiple-entities-updated.yaml"
                ),
            ]),
            &["duplicate_id", "duplicate_name", "duplicate_vault_prefix"],
        ),
        // Three states of the same entities under altered ids.
        (
            full(&[
                &format!(
                    "{GDR}tests__integration__testdata__sync__020-same-names-altered-ids__1-before.yaml"
                ),
                &format!(
                    "{GDR}tests__integration__testdata__sync__020-same-names-altered-ids__2-before.yaml"
                ),
                &format!(
                    "{GDR}tests__integration__testdata__sync__020-same-names-altered-ids__desired.yaml"
                ),
            ]),
            &["duplicate_id", "duplicate_name"],
        ),
        // KongAir: the merged production config plus the platform team's own snippets.
        (
            full(&[
                "Kong__KongAir/PRD__kong__kong.yaml",
                "Kong__KongAir/platform__kong__plugins__acme.yaml",
                "Kong__KongAir/platform__kong__vaults__aws-secrets-manager.yaml",
            ]),
            &["duplicate_global_plugin", "duplicate_id", "duplicate_name"],
        ),
        // Two runtime groups of one decK test: different services, no overlap.
        (
            full(&[
                &format!("{GDR}pkg__file__testdata__differentruntimegroup__bar.yaml"),
                &format!("{GDR}pkg__file__testdata__differentruntimegroup__foo.yaml"),
            ]),
            &[],
        ),
        // Consumer groups applied by name in two different decK tests.
        (
            full(&[
                &format!(
                    "{GDR}tests__integration__testdata__sync__017-consumer-groups-rla-application__kong3x.yaml"
                ),
                &format!(
                    "{GDR}tests__integration__testdata__sync__025-consumer-groups-scoped-plugins__konnect.yaml"
                ),
                &format!(
                    "{GDR}tests__integration__testdata__sync__029-plugin-scoped-to-cg-route__kong.yaml"
                ),
            ]),
            &[
                "duplicate_credential",
                "duplicate_global_plugin",
                "duplicate_id",
                "duplicate_name",
            ],
        ),
    ];
    // And every Kong Ingress Controller golden file in one composite.
    let kic: Vec<String> = fx
        .members
        .keys()
        .filter(|f| f.starts_with("Kong__kubernetes-ingress-controller/"))
        .cloned()
        .collect();
    assert!(kic.len() >= 14);
    let mut groups = groups;
    groups.push((
        kic,
        &["duplicate_credential", "duplicate_id", "duplicate_name"],
    ));

    for (files, kinds) in &groups {
        let refs: Vec<&str> = files.iter().map(String::as_str).collect();
        let report = merge(&fx, &refs);
        let expected = expected_conflicts(&refs, &fx.keys);
        assert_eq!(actual_conflicts(&report), expected, "{files:?}");
        let got: BTreeSet<&str> = report.conflicts.iter().map(|c| c.kind.code()).collect();
        let want: BTreeSet<&str> = kinds.iter().copied().collect();
        assert_eq!(
            got,
            want,
            "{files:?}\n{}",
            rgmerge::report::text::render(&report)
        );
        assert!(report.errors.is_empty(), "{files:?}");
        // Every conflict names each member's entity.
        for c in &report.conflicts {
            assert_eq!(c.paths.len(), c.members.len(), "{c:?}");
        }
    }
}

/// A real file whose plugins name consumers it does not define: alone it is
/// `unresolved_reference`; next to a member that has those consumers, it is
/// `cross_member_reference` naming that member.
#[test]
fn real_unresolved_references_become_cross_member_next_to_the_owner() {
    if !real_files_present("real_unresolved_references_become_cross_member_next_to_the_owner") {
        return;
    }
    let interner = Arc::new(Interner::new());
    let apiops = build(REFUSED[7].0, &interner);
    let consumers = b"_format_version: \"3.0\"\nconsumers:\n- username: johndoe1\n- username: johndoe2\n- username: johndoe3\n";
    let owner = Arc::new(Member::build(
        MemberInfo::new("identity", "identity", false),
        consumers,
        Format::Yaml,
        &interner,
    ));
    let report = Composite::from_members(interner.clone(), [apiops, owner]).report();
    assert_eq!(report.state, State::Invalid);
    assert_eq!(report.errors.len(), 3);
    for e in &report.errors {
        assert_eq!(e.kind.code(), "cross_member_reference");
        assert!(
            e.message.contains("lives in member 'identity'"),
            "{}",
            e.message
        );
    }
    assert!(report.conflicts.is_empty());
}

/// What only decK reads never reaches the Kong form of a snapshot (README: What rgmerge checks):
/// every real file alone, and all clean files merged, give a snapshot whose
/// Kong form has no `_plugin_configs`, no plugin `_config`, no consumer
/// `groups`, no consumer-group `consumers`, no `custom_entities` and no
/// decK metadata; the decK form (`?format=deck`) still has them.
#[test]
fn no_deck_only_key_reaches_a_kong_snapshot() {
    if !real_files_present("no_deck_only_key_reaches_a_kong_snapshot") {
        return;
    }
    fn deck_only(doc: &Value) -> Vec<String> {
        let mut found = Vec::new();
        let top = doc.as_object().unwrap();
        for k in [
            "_plugin_configs",
            "custom_entities",
            "_info",
            "_konnect",
            "_workspace",
            "_transform",
        ] {
            if top.contains_key(k) {
                found.push(k.to_string());
            }
        }
        for c in doc["consumers"].as_array().into_iter().flatten() {
            if c.get("groups").is_some() {
                found.push("consumers[].groups".into());
            }
        }
        for g in doc["consumer_groups"].as_array().into_iter().flatten() {
            if g.get("consumers").is_some() {
                found.push("consumer_groups[].consumers".into());
            }
        }
        fn walk(v: &Value, found: &mut Vec<String>) {
            match v {
                Value::Object(o) => {
                    if o.contains_key("_config") {
                        found.push("_config".into());
                    }
                    o.values().for_each(|x| walk(x, found));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, found)),
                _ => {}
            }
        }
        walk(doc, &mut found);
        found
    }
    let interner = Arc::new(Interner::new());
    let mut with_deck_keys = 0;
    for rel in fixture_files().iter().filter(|f| !f.ends_with(".md")) {
        let c = Composite::from_members(interner.clone(), [build(rel, &interner)]);
        let kong: Value = serde_json::from_slice(&c.assemble_kong().to_vec()).unwrap();
        assert_eq!(deck_only(&kong), Vec::<String>::new(), "{rel}");
        let deck: Value = serde_json::from_slice(&c.assemble_form(Form::Deck).to_vec()).unwrap();
        with_deck_keys += usize::from(!deck_only(&deck).is_empty());
        // Memberships decK wrote as `groups` are there in Kong's form.
        let groups = deck["consumers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["groups"].as_array())
            .map(Vec::len)
            .sum::<usize>();
        let members = kong["consumer_group_consumers"]
            .as_array()
            .map_or(0, Vec::len);
        assert!(
            members >= groups.min(1),
            "{rel}: {groups} groups, {members} memberships"
        );
    }
    assert!(
        with_deck_keys >= 9,
        "only {with_deck_keys} files use decK-only keys"
    );
    let fx = clean_fixtures();
    let all = Composite::from_members(fx.interner.clone(), fx.members.values().cloned());
    let kong: Value = serde_json::from_slice(&all.assemble_kong().to_vec()).unwrap();
    assert_eq!(deck_only(&kong), Vec::<String>::new());
}

/// A restore trusts a config this binary already found clean (its record's
/// stamp matches `member::validation_stamp`) and skips the checks that only
/// find errors. That must build the very same member: checked here on every
/// clean real file and on synthetic members of every entity kind (X.509
/// certificates included), with the whole member compared through `Debug`.
/// So must a member frozen for the store and thawed at the next start-up
/// (`member::frozen`).
#[test]
fn a_trusted_rebuild_of_a_clean_config_is_the_same_member() {
    if !real_files_present("a_trusted_rebuild_of_a_clean_config_is_the_same_member") {
        return;
    }
    use rgmerge::config::{Checks, KongTarget};
    let interner = Interner::new();
    let target = KongTarget::default();
    let mut inputs: Vec<(String, Vec<u8>, Format)> = fixture_files()
        .iter()
        .filter(|f| !f.ends_with(".md"))
        .map(|rel| {
            let path = root().join(rel);
            let bytes = std::fs::read(&path).unwrap();
            let format = Format::from_path(&path, &bytes);
            (rel.clone(), bytes, format)
        })
        .collect();
    for i in 0..4 {
        let bytes = rgmerge::commands::synth::member_config(i, 400, 0.0, 7);
        inputs.push((format!("synthetic member {i}"), bytes, Format::Json));
    }
    let mut clean = 0;
    for (what, bytes, format) in &inputs {
        let build = |checks| {
            let info = MemberInfo::unnamed(what);
            Member::build_checked(info, bytes, *format, &interner, &target, checks)
        };
        let full = build(Checks::All);
        if !full.is_clean() {
            continue;
        }
        clean += 1;
        let trusted = build(Checks::Trusted);
        assert_eq!(format!("{full:?}"), format!("{trusted:?}"), "{what}");
        let row = full
            .freeze(&interner, "stamp", "blob")
            .expect("a clean member freezes");
        let thawed = Member::thaw(full.info.clone(), row, &interner, "stamp", "blob")
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert_eq!(format!("{full:?}"), format!("{thawed:?}"), "{what} thawed");
    }
    assert!(clean >= 10, "only {clean} clean inputs were compared");
}
