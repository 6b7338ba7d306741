//! decK's Konnect mode, played over HTTPS with a team's token (issue 25):
//! look the group up by name, list every entity kind page by page, diff
//! against a decK file, and create, update and delete entity by entity, as
//! `deck gateway sync --konnect-addr … --konnect-token …` does
//! (go-database-reconciler: current state from the API, target state from
//! the file, matched by name or natural key, creates parents first and
//! deletes children first).
//!
//! The result must equal what a whole-config PUT of the same file gives,
//! and a second sync with nothing to change must write nothing.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::common::{Client, Daemon, V2, fixtures};

/// An entity family decK syncs: where it lives in the file and in the API,
/// and the field that names it among its siblings.
struct Family {
    /// The collection in the decK file, under `parent` (or at the top).
    file: &'static str,
    /// Its API segment under the parent (or at the top of core-entities).
    api: &'static str,
    key: &'static str,
    parent: Option<&'static str>,
}

/// Parents before children: the order of creates (and, reversed, deletes).
const FAMILIES: &[Family] = &[
    Family {
        file: "services",
        api: "services",
        key: "name",
        parent: None,
    },
    Family {
        file: "routes",
        api: "routes",
        key: "name",
        parent: Some("services"),
    },
    Family {
        file: "plugins",
        api: "plugins",
        key: "name",
        parent: Some("services"),
    },
    Family {
        file: "plugins",
        api: "plugins",
        key: "name",
        parent: Some("routes"),
    },
    Family {
        file: "consumers",
        api: "consumers",
        key: "username",
        parent: None,
    },
    Family {
        file: "keyauth_credentials",
        api: "key-auth",
        key: "key",
        parent: Some("consumers"),
    },
    Family {
        file: "acls",
        api: "acls",
        key: "group",
        parent: Some("consumers"),
    },
    Family {
        file: "upstreams",
        api: "upstreams",
        key: "name",
        parent: None,
    },
    Family {
        file: "targets",
        api: "targets",
        key: "target",
        parent: Some("upstreams"),
    },
    Family {
        file: "plugins",
        api: "plugins",
        key: "name",
        parent: None,
    },
];

/// One entity, in the file or in the group: its family, its parent's key
/// and its own, and its fields.
#[derive(Clone, Debug)]
struct Entity {
    family: usize,
    parent_key: Option<String>,
    key: String,
    /// The API's id (current state only).
    id: Option<String>,
    /// The parent's API id (current state only).
    parent_id: Option<String>,
    fields: Map<String, Value>,
}

/// The file's entities, parents first.
fn target_state(file: &str) -> Vec<Entity> {
    let text = std::fs::read(fixtures().join("deck").join(file)).expect("fixture");
    let doc = rgmerge::config::parse(&text, rgmerge::config::Format::Yaml).expect("yaml");
    let mut out = Vec::new();
    for (fi, f) in FAMILIES.iter().enumerate() {
        let owners: Vec<(Option<String>, &Value)> = match f.parent {
            None => vec![(None, &doc)],
            Some(p) => {
                // The parent collection's items, wherever they sit in the file.
                let mut owners = Vec::new();
                for item in items(&doc, p) {
                    owners.push((Some(key_of(item, p)), item));
                }
                for svc in items(&doc, "services") {
                    if p == "routes" {
                        for r in items(svc, "routes") {
                            owners.push((Some(key_of(r, "routes")), r));
                        }
                    }
                }
                owners
            }
        };
        for (parent_key, owner) in owners {
            for item in items(owner, f.file) {
                let mut fields = item.as_object().cloned().unwrap_or_default();
                // What is nested under it is synced as entities of its own.
                for n in FAMILIES {
                    fields.remove(n.file);
                }
                out.push(Entity {
                    family: fi,
                    parent_key: parent_key.clone(),
                    key: item[f.key].as_str().expect("key").to_string(),
                    id: None,
                    parent_id: None,
                    fields,
                });
            }
        }
    }
    out
}

fn items<'a>(v: &'a Value, coll: &str) -> Vec<&'a Value> {
    v.get(coll)
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn key_of(item: &Value, coll: &str) -> String {
    let f = FAMILIES.iter().find(|f| f.file == coll).expect("family");
    item[f.key].as_str().unwrap_or_default().to_string()
}

/// A decK-like client of one group, counting what it writes.
struct Sync<'a> {
    api: &'a Client,
    base: String,
    writes: usize,
    gets: usize,
}

impl Sync<'_> {
    /// Every page of a list (two at a time, so paging is exercised).
    async fn list(&mut self, path: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut url = format!("{path}?size=2");
        loop {
            self.gets += 1;
            let page = self.api.get(&url).await.expect(200).json();
            out.extend(page["data"].as_array().cloned().unwrap_or_default());
            match page["next"].as_str() {
                Some(next) => url = next.to_string(),
                None => break,
            }
        }
        out
    }

    /// The group's entities, parents first.
    async fn current_state(&mut self) -> Vec<Entity> {
        let mut out: Vec<Entity> = Vec::new();
        for (fi, f) in FAMILIES.iter().enumerate() {
            let parents: Vec<(Option<String>, Option<String>, String)> = match f.parent {
                None => vec![(None, None, format!("{}/{}", self.base, f.api))],
                Some(p) => out
                    .iter()
                    .filter(|e| FAMILIES[e.family].file == p)
                    .map(|e| {
                        let id = e.id.clone().expect("id");
                        (
                            Some(e.key.clone()),
                            Some(id.clone()),
                            format!("{}/{p}/{id}/{}", self.base, f.api),
                        )
                    })
                    .collect(),
            };
            for (parent_key, parent_id, url) in parents {
                for v in self.list(&url).await {
                    // A global plugin is one with no scope at all.
                    if f.parent.is_none()
                        && f.api == "plugins"
                        && ["service", "route", "consumer", "consumer_group"]
                            .iter()
                            .any(|s| v.get(*s).is_some_and(|x| !x.is_null()))
                    {
                        continue;
                    }
                    // Nested lists include entities naming the parent by key.
                    if f.parent == Some("services")
                        && f.api == "plugins"
                        && v.get("route").is_some_and(|x| !x.is_null())
                    {
                        continue;
                    }
                    out.push(Entity {
                        family: fi,
                        parent_key: parent_key.clone(),
                        key: v[f.key].as_str().unwrap_or_default().to_string(),
                        id: v["id"].as_str().map(str::to_string),
                        parent_id: parent_id.clone(),
                        fields: v.as_object().cloned().unwrap_or_default(),
                    });
                }
            }
        }
        out
    }

    /// decK's diff and sync: creates, updates, then deletes children first.
    async fn sync(&mut self, file: &str) {
        let current = self.current_state().await;
        let target = target_state(file);
        // Parent ids by (family api, key), as entities are created.
        let mut ids: BTreeMap<(&str, String), String> = current
            .iter()
            .filter_map(|e| Some(((FAMILIES[e.family].file, e.key.clone()), e.id.clone()?)))
            .collect();
        for t in &target {
            let f = &FAMILIES[t.family];
            let found = current
                .iter()
                .find(|c| c.family == t.family && c.key == t.key && c.parent_key == t.parent_key);
            let collection = match (f.parent, &t.parent_key) {
                (Some(p), Some(pk)) => {
                    let pid = ids.get(&(p, pk.clone())).expect("parent created first");
                    format!("{}/{p}/{pid}/{}", self.base, f.api)
                }
                _ => format!("{}/{}", self.base, f.api),
            };
            match found {
                None => {
                    self.writes += 1;
                    let made = self
                        .api
                        .post_json(&collection, &Value::Object(t.fields.clone()))
                        .await
                        .expect(201)
                        .json();
                    let id = made["id"].as_str().expect("id").to_string();
                    ids.insert((f.file, t.key.clone()), id);
                }
                Some(c) if !subset(&t.fields, &c.fields) => {
                    self.writes += 1;
                    let id = c.id.clone().expect("id");
                    self.api
                        .put_json(
                            &format!("{collection}/{id}"),
                            &Value::Object(t.fields.clone()),
                        )
                        .await
                        .expect(200);
                }
                Some(_) => {}
            }
        }
        for c in current.iter().rev() {
            let gone = !target
                .iter()
                .any(|t| t.family == c.family && t.key == c.key && t.parent_key == c.parent_key);
            if gone {
                self.writes += 1;
                let f = &FAMILIES[c.family];
                let id = c.id.clone().expect("id");
                let path = match (f.parent, &c.parent_id) {
                    (Some(p), Some(pid)) => format!("{}/{p}/{pid}/{}/{id}", self.base, f.api),
                    _ => format!("{}/{}/{id}", self.base, f.api),
                };
                self.api.delete(&path).await.expect(204);
            }
        }
    }
}

/// Every field the file sets has that value in the group (decK compares
/// after filling Kong's defaults in, which the API has done).
fn subset(want: &Map<String, Value>, have: &Map<String, Value>) -> bool {
    want.iter().all(|(k, v)| match (v, have.get(k)) {
        (Value::Object(w), Some(Value::Object(h))) => subset(w, h),
        (v, Some(h)) => v == h,
        (_, None) => false,
    })
}

/// The group's entities without ids and timestamps, foreign keys by name:
/// what two groups holding the same file must agree on.
async fn normalized(api: &Client, group: &str) -> Vec<String> {
    let mut sync = Sync {
        api,
        base: format!("{V2}/{group}/core-entities"),
        writes: 0,
        gets: 0,
    };
    let mut out: Vec<String> = sync
        .current_state()
        .await
        .into_iter()
        .map(|mut e| {
            for k in [
                "id",
                "created_at",
                "updated_at",
                "service",
                "route",
                "consumer",
                "upstream",
            ] {
                e.fields.remove(k);
            }
            format!(
                "{} {:?}/{} {}",
                FAMILIES[e.family].api,
                e.parent_key,
                e.key,
                Value::Object(e.fields)
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deck_sync_entity_by_entity_equals_a_whole_config_put() {
    let d = Daemon::builder().api().start();
    let socket = d.client();
    let team = socket.standard("team").await;
    let reference = socket.standard("reference").await;
    let token = socket.team_token("ci", &[(&team, "editor")]).await;
    let net = d.https_client().with_bearer(&token);

    // decK looks its control plane up by name.
    let found = net
        .get(&format!("{V2}?filter[name][eq]=team"))
        .await
        .expect(200)
        .json();
    let id = found["data"][0]["id"].as_str().expect("id").to_string();
    assert_eq!(id, team);

    let mut sync = Sync {
        api: &net,
        base: format!("{V2}/{id}/core-entities"),
        writes: 0,
        gets: 0,
    };
    sync.sync("team-v1.yaml").await;
    let first = sync.writes;
    assert!(first >= 15, "v1 creates every entity: {first} writes");
    sync.writes = 0;
    sync.sync("team-v2.yaml").await;
    assert!(
        sync.writes >= 6,
        "v2 creates, updates and deletes: {} writes",
        sync.writes
    );

    // The same file PUT whole into another group gives the same entities.
    let v2 = std::fs::read_to_string(fixtures().join("deck/team-v2.yaml")).expect("fixture");
    socket.put_config(&reference, &v2).await.expect(200);
    let by_entity = normalized(&socket, &team).await;
    let whole = normalized(&socket, &reference).await;
    assert_eq!(by_entity, whole, "entity by entity == whole config");
    assert!(by_entity.len() >= 12, "{by_entity:#?}");

    // Nothing to change: zero writes, and the config's version stays.
    let version = socket
        .get_json(&format!("{V2}/{team}/snapshot/history"))
        .await;
    sync.writes = 0;
    sync.sync("team-v2.yaml").await;
    assert_eq!(sync.writes, 0, "a second sync writes nothing");
    assert_eq!(
        socket
            .get_json(&format!("{V2}/{team}/snapshot/history"))
            .await,
        version
    );
    assert!(sync.gets > 0);

    // The token's rights hold entity by entity: an editor of `team` can't
    // write `reference`.
    net.post_json(
        &format!("{V2}/{reference}/core-entities/services"),
        &json!({"name": "x", "host": "x.internal"}),
    )
    .await
    .expect(403);
    d.assert_no_panic();
}

/// Concurrent entity writes to one group never lose each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_entity_writes_all_land() {
    let d = Daemon::builder().start();
    let c = d.client();
    let g = c.standard("busy").await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let c = c.clone();
        let base = format!("{V2}/{g}/core-entities/services");
        tasks.push(tokio::spawn(async move {
            c.post_json(
                &base,
                &json!({"name": format!("s{i}"), "host": format!("s{i}.internal")}),
            )
            .await
            .expect(201);
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let all = c
        .get_json(&format!("{V2}/{g}/core-entities/services?size=100"))
        .await;
    assert_eq!(all["data"].as_array().map(Vec::len), Some(24), "{all}");
    d.assert_no_panic();
}
