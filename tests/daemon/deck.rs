//! decK's Konnect mode, played over HTTPS with a team's token (issue 25), the
//! way go-database-reconciler drives go-kong: look the group up by name;
//! list every kind at the top (`GET /routes`, `/key-auths`, `/targets` …)
//! page by page, and place each entity under its parent by its foreign
//! key; diff against a decK file by natural key; then create and update
//! with `PUT …/{id}` (a new UUID for a create, the parent as `{id}` in the
//! body, credentials and targets under their parent's path), parents
//! first, and delete children first.
//!
//! The result must equal what a whole-config PUT of the same file gives,
//! and a second sync with nothing to change must write nothing.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::common::{Client, Daemon, V2, fixtures};

/// An entity family decK syncs.
struct Family {
    /// The collection in the decK file (nested under the parent's, or at the top).
    file: &'static str,
    /// Where go-kong lists it: at the top of core-entities.
    list: &'static str,
    /// The field that names it among its siblings.
    key: &'static str,
    /// The parent's family (`file`) and the foreign key naming it.
    parent: Option<(&'static str, &'static str)>,
    /// Written under the parent's path (`consumers/{c}/key-auth/{id}`)
    /// rather than at the top with the foreign key in the body.
    nested: Option<&'static str>,
}

/// Parents before children: the order of creates (and, reversed, deletes).
const FAMILIES: &[Family] = &[
    fam("services", "services", "name", None, None),
    fam(
        "routes",
        "routes",
        "name",
        Some(("services", "service")),
        None,
    ),
    fam(
        "plugins",
        "plugins",
        "name",
        Some(("services", "service")),
        None,
    ),
    fam(
        "plugins",
        "plugins",
        "name",
        Some(("routes", "route")),
        None,
    ),
    fam("consumers", "consumers", "username", None, None),
    fam(
        "keyauth_credentials",
        "key-auths",
        "key",
        Some(("consumers", "consumer")),
        Some("key-auth"),
    ),
    fam(
        "acls",
        "acls",
        "group",
        Some(("consumers", "consumer")),
        Some("acls"),
    ),
    fam("upstreams", "upstreams", "name", None, None),
    fam(
        "targets",
        "targets",
        "target",
        Some(("upstreams", "upstream")),
        Some("targets"),
    ),
    fam("plugins", "plugins", "name", None, None),
];

const fn fam(
    file: &'static str,
    list: &'static str,
    key: &'static str,
    parent: Option<(&'static str, &'static str)>,
    nested: Option<&'static str>,
) -> Family {
    Family {
        file,
        list,
        key,
        parent,
        nested,
    }
}

/// The foreign keys a plugin may have, most specific first.
const SCOPES: [&str; 3] = ["route", "service", "consumer"];

/// One entity, in the file or in the group.
#[derive(Clone, Debug)]
struct Entity {
    family: usize,
    parent_key: Option<String>,
    key: String,
    /// The API's id (current state only).
    id: Option<String>,
    fields: Map<String, Value>,
}

/// The file's entities, parents first: nested ones under their parent, and
/// top-level routes naming their service.
fn target_state(file: &str) -> Vec<Entity> {
    let text = std::fs::read(fixtures().join("deck").join(file)).expect("fixture");
    let doc = rgmerge::config::parse(&text, rgmerge::config::Format::Yaml).expect("yaml");
    // Every item of a family's collection, with its parent's key.
    let mut placed: Vec<(usize, Option<String>, Value)> = Vec::new();
    for (fi, f) in FAMILIES.iter().enumerate() {
        match f.parent {
            None => {
                for item in items(&doc, f.file) {
                    placed.push((fi, None, item.clone()));
                }
            }
            Some((parent, fk)) => {
                let parents: Vec<(String, Value)> = placed
                    .iter()
                    .filter(|(pi, _, _)| FAMILIES[*pi].file == parent)
                    .map(|(pi, _, v)| {
                        (
                            v[FAMILIES[*pi].key].as_str().unwrap_or("").to_string(),
                            v.clone(),
                        )
                    })
                    .collect();
                for (pk, pv) in parents {
                    for item in items(&pv, f.file) {
                        placed.push((fi, Some(pk.clone()), item.clone()));
                    }
                }
                // A top-level route names its service.
                if f.file == "routes" {
                    for item in items(&doc, "routes") {
                        let pk = item[fk].as_str().map(str::to_string);
                        placed.push((fi, pk, item.clone()));
                    }
                }
            }
        }
    }
    placed
        .into_iter()
        .map(|(family, parent_key, v)| {
            let mut fields = v.as_object().cloned().unwrap_or_default();
            // What is nested under it is synced as entities of its own.
            for n in FAMILIES {
                fields.remove(n.file);
            }
            if let Some((_, fk)) = FAMILIES[family].parent {
                fields.remove(fk);
            }
            Entity {
                family,
                parent_key,
                key: v[FAMILIES[family].key].as_str().expect("key").to_string(),
                id: None,
                fields,
            }
        })
        .collect()
}

fn items(v: &Value, coll: &str) -> Vec<Value> {
    v.get(coll)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A decK-like client of one group, counting what it writes.
struct Sync<'a> {
    api: &'a Client,
    base: String,
    writes: usize,
    gets: usize,
}

impl Sync<'_> {
    /// Every page of a list, following `next` (two at a time, so paging
    /// is exercised).
    async fn list(&mut self, what: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut url = format!("{}/{what}?size=2", self.base);
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

    /// The group's entities, parents first, each placed by its foreign key.
    async fn current_state(&mut self) -> Vec<Entity> {
        let mut out: Vec<Entity> = Vec::new();
        let mut lists: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for f in FAMILIES {
            if !lists.contains_key(f.list) {
                let all = self.list(f.list).await;
                lists.insert(f.list, all);
            }
        }
        for (fi, f) in FAMILIES.iter().enumerate() {
            for v in &lists[f.list] {
                let parent_key = match f.parent {
                    None => {
                        // A global plugin has no scope at all.
                        if f.list == "plugins" && SCOPES.iter().any(|s| !v[*s].is_null()) {
                            continue;
                        }
                        None
                    }
                    Some((parent, fk)) => {
                        // A plugin belongs to its most specific scope.
                        if f.list == "plugins"
                            && SCOPES.iter().find(|s| !v[**s].is_null()) != Some(&fk)
                        {
                            continue;
                        }
                        let pid = v[fk]["id"].as_str().expect("foreign key");
                        let p = out
                            .iter()
                            .find(|e| {
                                FAMILIES[e.family].file == parent && e.id.as_deref() == Some(pid)
                            })
                            .expect("parent listed");
                        Some(p.key.clone())
                    }
                };
                out.push(Entity {
                    family: fi,
                    parent_key,
                    key: v[f.key].as_str().unwrap_or_default().to_string(),
                    id: v["id"].as_str().map(str::to_string),
                    fields: v.as_object().cloned().unwrap_or_default(),
                });
            }
        }
        out
    }

    /// Where an entity is written or deleted, and its body (the parent as
    /// the foreign key, for a top-level write).
    fn place(&self, e: &Entity, id: &str, pid: Option<&String>) -> (String, Map<String, Value>) {
        let f = &FAMILIES[e.family];
        let mut body = e.fields.clone();
        body.insert("id".into(), json!(id));
        match (f.parent, f.nested, pid) {
            (Some((parent, _)), Some(seg), Some(pid)) => {
                (format!("{}/{parent}/{pid}/{seg}/{id}", self.base), body)
            }
            (Some((_, fk)), None, Some(pid)) => {
                body.insert(fk.into(), json!({ "id": pid }));
                (format!("{}/{}/{id}", self.base, f.list), body)
            }
            _ => (format!("{}/{}/{id}", self.base, f.list), body),
        }
    }

    /// decK's diff and sync: creates and updates parents first, then
    /// deletes children first.
    async fn sync(&mut self, file: &str) {
        let current = self.current_state().await;
        let target = target_state(file);
        let same = |t: &Entity, c: &Entity| {
            t.family == c.family && t.key == c.key && t.parent_key == c.parent_key
        };
        // Ids by (family file, key), as entities are created.
        let mut ids: BTreeMap<(&str, String), String> = current
            .iter()
            .filter_map(|e| Some(((FAMILIES[e.family].file, e.key.clone()), e.id.clone()?)))
            .collect();
        for t in &target {
            let f = &FAMILIES[t.family];
            let pid = f.parent.and_then(|(p, _)| {
                let pk = t.parent_key.clone()?;
                ids.get(&(p, pk)).cloned()
            });
            let found = current.iter().find(|c| same(t, c));
            let id = match found {
                Some(c) if subset(&t.fields, &c.fields) => continue,
                Some(c) => c.id.clone().expect("id"),
                None => uuid::Uuid::new_v4().to_string(),
            };
            let (path, body) = self.place(t, &id, pid.as_ref());
            self.writes += 1;
            let r = self
                .api
                .put_json(&path, &Value::Object(body))
                .await
                .expect(200)
                .json();
            assert_eq!(r["id"], json!(id), "{path}");
            ids.insert((f.file, t.key.clone()), id);
        }
        for c in current.iter().rev() {
            if target.iter().any(|t| same(t, c)) {
                continue;
            }
            let f = &FAMILIES[c.family];
            let pid = f
                .parent
                .and_then(|(p, _)| ids.get(&(p, c.parent_key.clone()?)).cloned());
            let (path, _) = self.place(c, c.id.as_deref().expect("id"), pid.as_ref());
            self.writes += 1;
            self.api.delete(&path).await.expect(204);
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
                FAMILIES[e.family].file,
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
    assert!(by_entity.len() >= 14, "{by_entity:#?}");

    // Nothing to change: zero writes, and the group's history stays.
    let history = socket
        .get_json(&format!("{V2}/{team}/snapshot/history"))
        .await;
    sync.writes = 0;
    sync.sync("team-v2.yaml").await;
    assert_eq!(sync.writes, 0, "a second sync writes nothing");
    assert_eq!(
        socket
            .get_json(&format!("{V2}/{team}/snapshot/history"))
            .await,
        history
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
