//! Kong's declarative form of a member's entities: what Kong's
//! `declarative_config` (and `POST /config`) loads, from decK's form.
//!
//! - a plugin's `_config` (decK) is expanded: the named `_plugin_configs`
//!   entry fills the keys its own `config` does not set, and `_config` goes;
//! - consumers' `groups` and consumer groups' `consumers` (decK) become
//!   Kong's `consumer_group_consumers` (a consumer by username or id, a
//!   group by name or id), each membership once;
//! - `custom_entities` (decK's only form for deGraphQL routes and GraphQL
//!   cost decorations) become Kong's `degraphql_routes` and
//!   `graphql_ratelimiting_cost_decorations`;
//! - `_plugin_configs` is left out (it is read through `_config` only).

use ahash::AHashSet;
use serde_json::{Map, Value};

use super::schema::{Coll, custom_entity_coll};

/// How Kong's form differs from the decK form of a member.
#[derive(Debug, Default)]
pub struct KongForm {
    /// Collections whose Kong form differs, in full (new ones included).
    pub changed: Vec<(Coll, Vec<Value>)>,
    /// Collections Kong's form leaves out.
    pub dropped: Vec<Coll>,
}

/// How the Kong form of `top` differs, or `None` when it is the decK form.
/// Collections that do not change are not copied: their decK chunks serve
/// both forms.
///
/// `deck_only` marks the collections that hold decK-only keys, as bits by
/// `Coll` index (`Model::deck_only`); `u64::MAX` when not known.
pub fn kong_form(
    top: &[(Coll, Vec<Value>)],
    plugin_configs: &[(String, Value)],
    deck_only: u64,
) -> Option<KongForm> {
    let marked = |c: Coll| deck_only & (1 << (c as u64)) != 0;
    let changes = |c: Coll, items: &[Value]| marked(c) && needs_change(c, items);
    if plugin_configs.is_empty() && !top.iter().any(|(c, items)| changes(*c, items)) {
        return None;
    }
    let configs: ahash::AHashMap<&str, &Map<String, Value>> = plugin_configs
        .iter()
        .filter_map(|(n, v)| v.as_object().map(|o| (n.as_str(), o)))
        .collect();
    let mut out: Vec<(Coll, Vec<Value>)> = Vec::with_capacity(top.len() + 2);
    let mut memberships: Vec<Value> = Vec::new();
    // Memberships already stated, in one spelling: consumer by username,
    // group by name (ids mapped to them where the member defines both).
    let mut names: ahash::AHashMap<&str, &str> = ahash::AHashMap::new();
    for (coll, items) in top {
        let name_field = match coll {
            Coll::Consumers => "username",
            Coll::ConsumerGroups => "name",
            _ => continue,
        };
        for i in items {
            if let (Some(id), Some(n)) = (
                i.get("id").and_then(Value::as_str),
                i.get(name_field).and_then(Value::as_str),
            ) {
                names.insert(id, n);
            }
        }
    }
    let canon = |s: &str| {
        names
            .get(s)
            .map_or_else(|| s.to_string(), |n| n.to_string())
    };
    let mut seen: AHashSet<(String, String)> = AHashSet::new();
    for (coll, items) in top {
        if *coll == Coll::ConsumerGroupConsumers {
            for i in items {
                let key = |f: &str| match i.get(f) {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Object(o)) => ["id", "name", "username"]
                        .iter()
                        .find_map(|k| o.get(*k).and_then(Value::as_str))
                        .map(str::to_string),
                    _ => None,
                };
                if let (Some(c), Some(g)) = (key("consumer"), key("consumer_group")) {
                    seen.insert((canon(&c), canon(&g)));
                }
            }
        }
    }
    let mut extra: Vec<(Coll, Value)> = Vec::new();
    let mut dropped = Vec::new();
    if !plugin_configs.is_empty() {
        dropped.push(Coll::PluginConfigs);
    }
    for (coll, items) in top {
        if !changes(*coll, items) {
            continue;
        }
        let mut kept = Vec::with_capacity(items.len());
        for item in items {
            let mut item = item.clone();
            match coll {
                Coll::CustomEntities => {
                    let as_coll = item
                        .get("type")
                        .and_then(Value::as_str)
                        .and_then(custom_entity_coll);
                    if let (Some(c), Some(Value::Object(fields))) = (as_coll, item.get("fields")) {
                        extra.push((c, Value::Object(fields.clone())));
                        continue;
                    }
                }
                Coll::Consumers => {
                    if let Value::Object(o) = &mut item
                        && let Some(groups) = o.remove("groups")
                    {
                        let consumer = consumer_key(o);
                        for g in groups.as_array().into_iter().flatten() {
                            if let (Some(c), Some(g)) = (&consumer, group_key(g)) {
                                membership(&mut memberships, &mut seen, c, &g, &canon);
                            }
                        }
                    }
                }
                Coll::ConsumerGroups => {
                    if let Value::Object(o) = &mut item
                        && let Some(consumers) = o.remove("consumers")
                    {
                        let group = o
                            .get("name")
                            .or_else(|| o.get("id"))
                            .and_then(Value::as_str)
                            .map(str::to_string);
                        for c in consumers.as_array().into_iter().flatten() {
                            let c = match c {
                                Value::String(s) => Some(s.clone()),
                                Value::Object(co) => consumer_key(co),
                                _ => None,
                            };
                            if let (Some(c), Some(g)) = (c, &group) {
                                membership(&mut memberships, &mut seen, &c, g, &canon);
                            }
                        }
                    }
                }
                _ => {}
            }
            expand_plugins(*coll, &mut item, &configs);
            kept.push(item);
        }
        out.push((*coll, kept));
    }
    if !memberships.is_empty() {
        extra.extend(
            memberships
                .into_iter()
                .map(|m| (Coll::ConsumerGroupConsumers, m)),
        );
    }
    for (coll, v) in extra {
        if !out.iter().any(|(c, _)| *c == coll) {
            // The member's own entities of this collection come first.
            let own = top
                .iter()
                .find(|(c, _)| *c == coll)
                .map(|(_, items)| items.clone())
                .unwrap_or_default();
            out.push((coll, own));
        }
        if let Some((_, items)) = out.iter_mut().find(|(c, _)| *c == coll) {
            items.push(v);
        }
    }
    for (coll, items) in &out {
        if items.is_empty() {
            dropped.push(*coll);
        }
    }
    out.retain(|(_, items)| !items.is_empty());
    Some(KongForm {
        changed: out,
        dropped,
    })
}

fn needs_change(coll: Coll, items: &[Value]) -> bool {
    match coll {
        Coll::CustomEntities => !items.is_empty(),
        Coll::Consumers => items
            .iter()
            .any(|i| i.get("groups").is_some() || has_config_ref(i)),
        Coll::ConsumerGroups => items
            .iter()
            .any(|i| i.get("consumers").is_some() || has_config_ref(i)),
        Coll::Plugins | Coll::Services | Coll::Routes => items.iter().any(has_config_ref),
        _ => false,
    }
}

/// Whether a plugin in this entity (or nested in it) uses `_config`.
fn has_config_ref(v: &Value) -> bool {
    let Value::Object(o) = v else { return false };
    if o.contains_key("_config") {
        return true;
    }
    ["plugins", "routes"].iter().any(|f| {
        o.get(*f)
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(has_config_ref))
    })
}

/// Expands `_config` in this entity if it is a plugin, and in the plugins
/// nested in it (a service's routes' plugins included).
fn expand_plugins(coll: Coll, v: &mut Value, configs: &ahash::AHashMap<&str, &Map<String, Value>>) {
    let Value::Object(o) = v else { return };
    if coll == Coll::Plugins
        && let Some(name) = o.remove("_config")
    {
        if let Some(base) = name.as_str().and_then(|n| configs.get(n)) {
            let config = o
                .entry("config")
                .or_insert_with(|| Value::Object(Map::new()));
            if config.is_null() {
                *config = Value::Object(Map::new());
            }
            if let Value::Object(c) = config {
                for (k, val) in base.iter() {
                    if !c.contains_key(k) {
                        c.insert(k.clone(), val.clone());
                    }
                }
            }
        }
        return;
    }
    for (field, child) in coll.nested() {
        if let Some(Value::Array(items)) = o.get_mut(*field) {
            for item in items {
                expand_plugins(*child, item, configs);
            }
        }
    }
}

/// How Kong's `consumer_group_consumers` names a consumer: its username,
/// else its id (Kong resolves a consumer by either).
fn consumer_key(o: &Map<String, Value>) -> Option<String> {
    ["username", "id"]
        .iter()
        .find_map(|f| o.get(*f).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A group reference of decK (`{name}`, `{id}` or a plain string).
fn group_key(g: &Value) -> Option<String> {
    match g {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => ["name", "id"]
            .iter()
            .find_map(|f| o.get(*f).and_then(Value::as_str))
            .map(str::to_string),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

fn membership(
    out: &mut Vec<Value>,
    seen: &mut AHashSet<(String, String)>,
    consumer: &str,
    group: &str,
    canon: &dyn Fn(&str) -> String,
) {
    if seen.insert((canon(consumer), canon(group))) {
        let mut m = Map::new();
        m.insert("consumer".into(), Value::from(consumer));
        m.insert("consumer_group".into(), Value::from(group));
        out.push(Value::Object(m));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deck_only_keys_become_kong_forms() {
        let top = vec![
            (
                Coll::Consumers,
                vec![json!({"username": "jeff", "groups": [{"name": "gold"}]})],
            ),
            (
                Coll::ConsumerGroups,
                vec![
                    json!({"name": "gold", "consumers": [{"username": "jeff"}], "plugins": [{"name": "rate-limiting-advanced", "_config": "rl"}]}),
                ],
            ),
            (
                Coll::Services,
                vec![
                    json!({"name": "s", "host": "h", "plugins": [{"name": "jwt", "_config": "jwt", "config": {"a": 1}}]}),
                ],
            ),
        ];
        let configs = vec![
            ("rl".to_string(), json!({"limit": [1]})),
            ("jwt".to_string(), json!({"a": 2, "b": 3})),
        ];
        let out = kong_form(&top, &configs, u64::MAX).unwrap();
        assert_eq!(out.dropped, vec![Coll::PluginConfigs]);
        let text = serde_json::to_string(
            &out.changed
                .iter()
                .map(|(c, v)| (c.name(), v))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert!(!text.contains("_config"), "{text}");
        assert!(!text.contains("\"groups\""), "{text}");
        assert!(
            text.contains(r#"{"consumer":"jeff","consumer_group":"gold"}"#),
            "{text}"
        );
        assert_eq!(text.matches("consumer_group\":\"gold").count(), 1, "{text}");
        assert!(text.contains(r#""config":{"a":1,"b":3}"#), "{text}");
        assert!(text.contains(r#""config":{"limit":[1]}"#), "{text}");
        assert!(
            kong_form(
                &[(Coll::Services, vec![json!({"host": "h"})])],
                &[],
                u64::MAX
            )
            .is_none()
        );
    }
}
