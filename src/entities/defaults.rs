//! Plugin configs as Kong answers them: with the defaults of the plugin's
//! schema filled in, and the schema itself in Kong's `GET /schemas/plugins/{name}`
//! form. Both read the validator's own data (`config/kong/plugin_schemas.json`):
//! one source of truth.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::config::kong::schemas::{self, Field, Ty};

/// A `$ref` field as the typedef it names (in either data file).
fn resolve(f: &Field) -> &Field {
    let Some(r) = &f.reference else { return f };
    [schemas::file(), schemas::enterprise_file()]
        .into_iter()
        .flatten()
        .find_map(|file| file.shared.get(r))
        .unwrap_or(f)
}

/// Fills the defaults of plugin `name`'s schema into `config`, as Kong
/// does on every write: absent fields get their default, records are
/// filled field by field.
pub fn fill_plugin(name: &str, config: &mut Map<String, Value>) {
    if let Some(s) = schemas::plugin(name) {
        fill(&s.config, config);
    }
}

fn fill(fields: &BTreeMap<String, Field>, obj: &mut Map<String, Value>) {
    for (k, f) in fields {
        let f = resolve(f);
        if f.only.as_deref() == Some("oss") {
            continue;
        }
        // An explicit null stays null, as Kong keeps it.
        match obj.get_mut(k) {
            None => {
                if let Some(d) = &f.default {
                    obj.insert(k.clone(), d.clone());
                } else if f.ty == Ty::Record
                    && let Some(sub) = &f.fields
                {
                    let mut m = Map::new();
                    fill(sub, &mut m);
                    if !m.is_empty() {
                        obj.insert(k.clone(), Value::Object(m));
                    }
                }
            }
            Some(Value::Object(o)) if f.ty == Ty::Record => {
                if let Some(sub) = &f.fields {
                    fill(sub, o);
                }
            }
            _ => {}
        }
    }
}

/// Plugin `name`'s schema as Kong's Admin API gives it: `{fields: [...]}`,
/// each field a one-key record, `config` last.
pub fn plugin_schema(name: &str) -> Option<Value> {
    let s = schemas::plugin(name)?;
    let foreign = |reference: &str| json!({"type": "foreign", "reference": reference, "eq": null});
    let config = json!({"type": "record", "required": true, "fields": fields_json(&s.config)});
    Some(json!({
        "fields": [
            {"consumer": foreign("consumers")},
            {"protocols": {
                "type": "set",
                "required": true,
                "default": ["grpc", "grpcs", "http", "https"],
                "elements": {"type": "string", "one_of": ["grpc", "grpcs", "http", "https", "tcp", "tls", "udp", "tls_passthrough", "ws", "wss"]}
            }},
            {"consumer_group": foreign("consumer_groups")},
            {"route": foreign("routes")},
            {"service": foreign("services")},
            {"config": config},
        ],
    }))
}

fn fields_json(fields: &BTreeMap<String, Field>) -> Value {
    Value::Array(
        fields
            .iter()
            .filter(|(_, f)| resolve(f).only.as_deref() != Some("oss"))
            .map(|(k, f)| {
                let mut one = Map::new();
                one.insert(k.clone(), field_json(resolve(f)));
                Value::Object(one)
            })
            .collect(),
    )
}

fn field_json(f: &Field) -> Value {
    let mut o = Map::new();
    let ty = match f.ty {
        Ty::Any => None,
        Ty::String => Some("string"),
        Ty::Integer => Some("integer"),
        Ty::Number => Some("number"),
        Ty::Boolean => Some("boolean"),
        Ty::Array => Some("array"),
        Ty::Set => Some("set"),
        Ty::Map => Some("map"),
        Ty::Record => Some("record"),
    };
    if let Some(t) = ty {
        o.insert("type".into(), json!(t));
    }
    if f.required {
        o.insert("required".into(), json!(true));
    }
    if let Some(d) = &f.default {
        o.insert("default".into(), d.clone());
    }
    if f.auto {
        o.insert("auto".into(), json!(true));
    }
    if let Some(v) = &f.one_of {
        o.insert("one_of".into(), json!(v));
    }
    if let Some(b) = f.between {
        o.insert("between".into(), json!(b));
    }
    if let Some(g) = f.gt {
        o.insert("gt".into(), json!(g));
    }
    if let Some(n) = f.len_min {
        o.insert("len_min".into(), json!(n));
    }
    if let Some(n) = f.len_max {
        o.insert("len_max".into(), json!(n));
    }
    if f.referenceable {
        o.insert("referenceable".into(), json!(true));
    }
    if f.is_regex {
        o.insert("is_regex".into(), json!(true));
    }
    for (name, sub) in [
        ("elements", &f.elements),
        ("keys", &f.keys),
        ("values", &f.values),
    ] {
        if let Some(sub) = sub {
            o.insert(name.into(), field_json(resolve(sub)));
        }
    }
    if let Some(sub) = &f.fields {
        o.insert("fields".into(), fields_json(sub));
    }
    Value::Object(o)
}

/// A partial type's schema, where the validator has its fields: `redis-ce`
/// is Kong's shared Redis record (`kong/tools/redis/schema.lua`).
pub fn partial_schema(ty: &str) -> Option<Value> {
    let shared = match ty {
        "redis-ce" => schemas::file()?.shared.get("redis")?,
        _ => return None,
    };
    let fields = shared.fields.as_ref()?;
    Some(json!({
        "fields": [
            {"id": {"type": "string", "uuid": true, "auto": true}},
            {"name": {"type": "string"}},
            {"type": {"type": "string", "required": true}},
            {"tags": {"type": "set", "elements": {"type": "string"}}},
            {"config": {"type": "record", "required": true, "fields": fields_json(fields)}},
        ],
    }))
}
