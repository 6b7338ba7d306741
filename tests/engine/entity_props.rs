//! Property tests of the entity document behind the core-entities API
//! (`rgmerge::entities::doc`, ARCHITECTURE.md), over random sequences of
//! creates, replacements and deletes of services, their routes and
//! plugins, consumers and their credentials:
//! - what was written reads back: a created or replaced entity is found by
//!   its id and renders every field the write gave it;
//! - a deleted entity is gone, with what Kong deletes with it, and nothing
//!   else is;
//! - ids are stable: the written document, parsed again, holds the same
//!   entities under the same ids (so a restart or another daemon agrees);
//! - the document stays one the member validator accepts.

use proptest::prelude::*;
use proptest::sample::select;
use rgmerge::config::Format;
use rgmerge::entities::doc::Doc;
use rgmerge::entities::kinds::{self, EntityKind};
use rgmerge::intern::Interner;
use rgmerge::member::{Member, MemberInfo};
use serde_json::{Map, Value, json};
use uuid::Uuid;

const NAMES: &[&str] = &["orders", "users", "search", "billing"];
const HOSTS: &[&str] = &["a.internal", "b.internal"];
const PLUGINS: &[&str] = &["cors", "key-auth", "correlation-id"];

#[derive(Clone, Debug)]
enum Op {
    Service(&'static str, &'static str),
    Route(usize, &'static str),
    Plugin(Option<usize>, &'static str),
    Consumer(&'static str),
    KeyAuth(usize, &'static str),
    Replace(usize, &'static str),
    Delete(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (select(NAMES), select(HOSTS)).prop_map(|(n, h)| Op::Service(n, h)),
        (any::<usize>(), select(NAMES)).prop_map(|(i, n)| Op::Route(i, n)),
        (proptest::option::of(any::<usize>()), select(PLUGINS)).prop_map(|(i, p)| Op::Plugin(i, p)),
        select(NAMES).prop_map(Op::Consumer),
        (any::<usize>(), select(NAMES)).prop_map(|(i, k)| Op::KeyAuth(i, k)),
        (any::<usize>(), select(HOSTS)).prop_map(|(i, h)| Op::Replace(i, h)),
        any::<usize>().prop_map(Op::Delete),
    ]
}

fn kind(top: &str) -> &'static EntityKind {
    kinds::KINDS.iter().find(|k| k.top == top).expect("kind")
}

fn body(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

/// The entity `i` of `top`, if there are any (indexes wrap).
fn pick(doc: &Doc, top: &str, i: usize) -> Option<usize> {
    let all = doc.list(kind(top), None);
    (!all.is_empty()).then(|| all[i % all.len()])
}

/// Every field `want` sets renders with that value.
fn renders(doc: &Doc, i: usize, want: &Map<String, Value>) -> Result<(), TestCaseError> {
    let got = doc.render(i);
    for (k, v) in want {
        if matches!(k.as_str(), "service" | "consumer" | "route") {
            continue;
        }
        prop_assert_eq!(&got[k], v, "field {} of {}", k, got);
    }
    Ok(())
}

fn ids(doc: &Doc) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = doc
        .entries
        .iter()
        .map(|e| (e.kind.top.to_string(), e.id.clone()))
        .collect();
    out.sort();
    out
}

fn valid(doc: &Doc) -> Vec<String> {
    let bytes = serde_json::to_vec(&doc.root).expect("json");
    let info = MemberInfo {
        id: "m".into(),
        name: "m".into(),
        is_default: false,
    };
    let m = Member::build_for(
        info,
        &bytes,
        Format::Json,
        &Interner::new(),
        &Default::default(),
    );
    m.errors
        .iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct("fixtures/proptest/entity_props.proptest-regressions"))), ..ProptestConfig::default() })]

    #[test]
    fn edits_read_back_delete_cleanly_and_keep_their_ids(ops in proptest::collection::vec(op(), 1..24)) {
        let group = Uuid::from_u128(7);
        let mut doc = Doc::new(json!({"_format_version": "3.0"}), group, 1);
        for op in ops {
            let before = ids(&doc);
            match op {
                Op::Service(n, h) => {
                    let b = body(json!({"name": n, "host": h}));
                    match doc.insert(kind("services"), None, b.clone()) {
                        Ok(id) => {
                            let i = doc.find(kind("services"), &id).expect("created");
                            renders(&doc, i, &b)?;
                        }
                        // A name taken: refused, nothing changed.
                        Err(e) => {
                            prop_assert_eq!(e.status, 409);
                            prop_assert_eq!(ids(&doc), before);
                        }
                    }
                }
                Op::Route(s, n) => {
                    let Some(p) = pick(&doc, "services", s) else { continue };
                    let b = body(json!({"name": format!("{n}-r"), "paths": [format!("/{n}")]}));
                    if let Ok(id) = doc.insert(kind("routes"), Some(p), b.clone()) {
                        let i = doc.find(kind("routes"), &id).expect("created");
                        renders(&doc, i, &b)?;
                        let parent = doc.entries[p].id.clone();
                        prop_assert_eq!(&doc.render(i)["service"]["id"], &json!(parent));
                    }
                }
                Op::Plugin(s, name) => {
                    let parent = s.and_then(|s| pick(&doc, "services", s));
                    let b = body(json!({"name": name}));
                    if let Ok(id) = doc.insert(kind("plugins"), parent, b.clone()) {
                        let i = doc.find(kind("plugins"), &id).expect("created");
                        renders(&doc, i, &b)?;
                    }
                }
                Op::Consumer(n) => {
                    let _ = doc.insert(kind("consumers"), None, body(json!({"username": n})));
                }
                Op::KeyAuth(c, k) => {
                    let Some(p) = pick(&doc, "consumers", c) else { continue };
                    let b = body(json!({"key": format!("{k}-key")}));
                    if let Ok(id) = doc.insert(kind("key-auths"), Some(p), b.clone()) {
                        let i = doc.find(kind("key-auths"), &id).expect("created");
                        renders(&doc, i, &b)?;
                    }
                }
                Op::Replace(s, h) => {
                    let Some(i) = pick(&doc, "services", s) else { continue };
                    let id = doc.entries[i].id.clone();
                    let name = doc.render(i)["name"].clone();
                    let routes = doc.list(kind("routes"), Some(i)).len();
                    let b = body(json!({"name": name, "host": h, "port": 8080}));
                    let back = doc.replace(i, None, b.clone()).expect("replace");
                    prop_assert_eq!(&back, &id);
                    let i = doc.find(kind("services"), &id).expect("still there");
                    renders(&doc, i, &b)?;
                    // What was under it stays under it.
                    prop_assert_eq!(doc.list(kind("routes"), Some(i)).len(), routes);
                }
                Op::Delete(s) => {
                    let Some(i) = pick(&doc, "services", s) else { continue };
                    let id = doc.entries[i].id.clone();
                    let has_routes = !doc.list(kind("routes"), Some(i)).is_empty();
                    match doc.remove(i) {
                        Ok(()) => {
                            prop_assert!(!has_routes, "a service with routes was deleted");
                            prop_assert!(doc.find(kind("services"), &id).is_none());
                            // Only it and what it held are gone.
                            let after = ids(&doc);
                            for e in &after {
                                prop_assert!(before.contains(e), "{e:?} appeared");
                            }
                        }
                        Err(e) => {
                            prop_assert!(has_routes);
                            prop_assert_eq!(e.status, 400);
                            prop_assert_eq!(ids(&doc), before);
                        }
                    }
                }
            }
            // The written document, read again, holds the same entities.
            let again = Doc::new(doc.root.clone(), group, 1);
            prop_assert_eq!(ids(&again), ids(&doc));
            let errors = valid(&doc);
            prop_assert!(errors.is_empty(), "{errors:?}\n{}", doc.root);
        }
    }
}

/// A document from decK text, for the cases below.
fn doc_of(value: Value) -> Doc {
    Doc::new(value, Uuid::from_u128(9), 1)
}

#[test]
fn a_route_moved_to_another_service_keeps_its_plugins_and_creation_time() {
    let mut doc = doc_of(json!({"_format_version": "3.0", "services": [
        {"name": "a", "host": "a.internal", "routes": [
            {"name": "r", "paths": ["/r"], "created_at": 5, "plugins": [{"name": "cors"}]}
        ]},
        {"name": "b", "host": "b.internal"}
    ]}));
    let r = doc.find(kind("routes"), "r").expect("route");
    let b = doc.find(kind("services"), "b").expect("b");
    let b_id = doc.entries[b].id.clone();
    let id = doc
        .replace(
            r,
            None,
            body(json!({"name": "r", "paths": ["/r"], "service": {"id": b_id}})),
        )
        .expect("moved");
    let r = doc.find(kind("routes"), &id).expect("still there");
    assert_eq!(doc.render(r)["service"]["id"], json!(b_id));
    assert_eq!(doc.render(r)["created_at"], json!(5));
    assert_eq!(doc.list(kind("plugins"), Some(r)).len(), 1, "{}", doc.root);
    assert!(valid(&doc).is_empty(), "{:?}", valid(&doc));
}

#[test]
fn deletes_follow_kongs_on_delete() {
    let cert = json!({"id": "00000000-0000-4000-8000-00000000000c", "cert": "C", "key": "K",
        "snis": [{"name": "a.example.com"}]});
    let mut doc = doc_of(json!({"_format_version": "3.0",
        "certificates": [cert],
        "services": [{"name": "s", "host": "s.internal",
            "client_certificate": "00000000-0000-4000-8000-00000000000c",
            "plugins": [{"name": "cors"}]}],
        "consumers": [{"username": "u", "keyauth_credentials": [{"key": "k"}]}]
    }));
    // A service names the certificate: refused, nothing changed (Kong's
    // `client_certificate` has no `on_delete`).
    let c = doc
        .find(kind("certificates"), "00000000-0000-4000-8000-00000000000c")
        .expect("cert");
    let before = doc.root.clone();
    let e = doc.remove(c).expect_err("restricted");
    assert_eq!(e.status, 400);
    assert!(e.message.contains("'services'"), "{}", e.message);
    assert_eq!(doc.root, before);
    // A consumer takes its credentials with it; a service its plugins.
    let u = doc.find(kind("consumers"), "u").expect("consumer");
    doc.remove(u).expect("cascade");
    assert!(doc.list(kind("key-auths"), None).is_empty());
    let s = doc.find(kind("services"), "s").expect("service");
    doc.remove(s).expect("cascade");
    assert!(doc.list(kind("plugins"), None).is_empty());
    // Now the certificate goes, with its SNIs.
    let c = doc
        .find(kind("certificates"), "00000000-0000-4000-8000-00000000000c")
        .expect("cert");
    doc.remove(c).expect("free now");
    assert!(doc.list(kind("snis"), None).is_empty());
}

#[test]
fn unnamed_siblings_get_ids_of_their_own() {
    let doc = doc_of(
        json!({"_format_version": "3.0", "services": [{"name": "s", "host": "h"}],
        "routes": [{"service": "s", "paths": ["/a"]}, {"service": "s", "paths": ["/b"]}]}),
    );
    let routes = doc.list(kind("routes"), None);
    assert_eq!(routes.len(), 2);
    assert_ne!(doc.entries[routes[0]].id, doc.entries[routes[1]].id);
}

#[test]
fn a_path_names_a_consumer_by_username_only() {
    let doc = doc_of(json!({"_format_version": "3.0", "consumers": [
        {"username": "x", "custom_id": "bob"}, {"username": "bob"}
    ]}));
    let i = doc.find(kind("consumers"), "bob").expect("bob");
    assert_eq!(doc.render(i)["username"], json!("bob"));
}

#[test]
fn memberships_are_read_and_removed_wherever_written() {
    let mut doc = doc_of(json!({"_format_version": "3.0",
        "consumers": [{"username": "a", "groups": [{"name": "gold"}]}, {"username": "b"}, {"username": "c"}],
        "consumer_groups": [{"name": "gold", "consumers": [{"username": "b"}]}],
        "consumer_group_consumers": [{"consumer": "c", "consumer_group": "gold"}]
    }));
    let g = doc.find(kind("consumer_groups"), "gold").expect("gold");
    assert_eq!(doc.memberships().len(), 3);
    let b = doc.find(kind("consumers"), "b").expect("b");
    doc.remove_memberships(|c, gi| c == b && gi == g);
    let left: Vec<String> = doc
        .memberships()
        .into_iter()
        .map(|(c, _)| doc.render(c)["username"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(left, ["a", "c"]);
    doc.remove_memberships(|_, _| true);
    assert!(doc.memberships().is_empty(), "{}", doc.root);
    assert!(valid(&doc).is_empty(), "{:?}", valid(&doc));
}
