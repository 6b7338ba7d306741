//! The core-entities operations of the Control Planes Configuration API
//! (issue 25): every operation called, every answer checked against the
//! spec, and what came back checked against what was written.
//!
//! A standard group `team` is written entity by entity; a composite
//! `shared` with `team` as its member is read-only and lists what it serves.

use serde_json::{Value, json};

use super::{Ctx, Reply, Step, V2, add_members, call, create, ensure, error};

const CE: &str = "/v2/control-planes/{team}/core-entities";

fn ce(rest: &str) -> String {
    format!("{CE}{rest}")
}

/// `pointer`'s `id` is the entity saved as `{key}`.
fn id_is(
    pointer: &'static str,
    key: &'static str,
) -> impl Fn(&mut Ctx, &Reply) -> Result<(), String> {
    move |ctx, r| {
        let want = ctx.get(key)?.to_string();
        let got = r.at(pointer)?;
        ensure(got == &json!(want), || {
            format!("{pointer} is {got}, expected {{{key}}}")
        })
    }
}

/// The list at `/data` holds exactly these saved ids.
fn data_ids(keys: &'static [&'static str]) -> impl Fn(&mut Ctx, &Reply) -> Result<(), String> {
    move |ctx, r| {
        let mut got = r.strings("/data", "id")?;
        let mut want = keys
            .iter()
            .map(|k| ctx.get(k).map(str::to_string))
            .collect::<Result<Vec<_>, _>>()?;
        got.sort();
        want.sort();
        ensure(got == want, || {
            format!("/data ids are {got:?}, expected {keys:?}")
        })
    }
}

/// The five operations of one kind of entity at `base` (a collection path),
/// saved as `{key}`: create, get, list, upsert, and (later) delete.
struct Family {
    suffix: &'static str,
    base: String,
    key: &'static str,
}

impl Family {
    fn new(suffix: &'static str, base: impl Into<String>, key: &'static str) -> Family {
        Family {
            suffix,
            base: base.into(),
            key,
        }
    }
    fn one(&self) -> String {
        format!("{}/{{{}}}", self.base, self.key)
    }
    fn op(&self, verb: &str) -> &'static str {
        Box::leak(format!("{verb}-{}", self.suffix).into_boxed_str())
    }
    /// Create, read back, list, replace.
    fn write(&self, create: Value, replace: Value, check: (&'static str, Value)) -> Vec<Step> {
        vec![
            call(self.op("create"), "POST", self.base.clone(), 201)
                .json(create)
                .save(self.key, "/id"),
            call(self.op("get"), "GET", self.one(), 200).check(id_is("/id", self.key)),
            call(self.op("list"), "GET", self.base.clone(), 200)
                .check(move |ctx, r| {
                    let ids = r.strings("/data", "id")?;
                    let _ = ctx;
                    ensure(!ids.is_empty(), || "the list is empty".into())
                })
                .eq("/next", Value::Null),
            call(self.op("upsert"), "PUT", self.one(), 200)
                .json(replace)
                .check(id_is("/id", self.key))
                .eq(check.0, check.1),
        ]
    }
    /// Delete, then it is gone; deleting again still answers 204.
    fn delete(&self) -> Vec<Step> {
        vec![
            call(self.op("delete"), "DELETE", self.one(), 204),
            error(self.op("get"), "GET", self.one(), 404),
            call(self.op("delete"), "DELETE", self.one(), 204),
        ]
    }
}

pub fn steps() -> Vec<Step> {
    let mut s = vec![
        create("team", "CLUSTER_TYPE_CONTROL_PLANE"),
        create("shared", "CLUSTER_TYPE_CONTROL_PLANE_GROUP"),
        add_members("shared", &["team"]),
    ];

    // ---- services, with routes, plugins and the GraphQL entities under them ----
    let services = Family::new("service", ce("/services"), "svc");
    s.extend(services.write(
        json!({"name": "svc", "host": "svc.internal", "tags": ["t1"]}),
        json!({"name": "svc", "host": "svc.internal", "port": 8080, "tags": ["t1"]}),
        ("/port", json!(8080)),
    ));
    s.extend([
        // Kong's defaults, filled in.
        call("get-service", "GET", ce("/services/{svc}"), 200)
            .eq("/protocol", json!("http"))
            .eq("/retries", json!(5))
            .eq("/connect_timeout", json!(60000)),
        // By name too, as Kong's endpoint key.
        call("get-service", "GET", ce("/services/{lit_svc}"), 200).check(id_is("/id", "svc")),
        call("list-service", "GET", ce("/services?tags=t1"), 200).check(data_ids(&["svc"])),
        call("list-service", "GET", ce("/services?tags=nope"), 200).check(data_ids(&[])),
        call(
            "list-service",
            "GET",
            ce("/services?filter[name][eq]=svc"),
            200,
        )
        .check(data_ids(&["svc"])),
        call(
            "list-service",
            "GET",
            ce("/services?filter[name][contains]=zz"),
            200,
        )
        .check(data_ids(&[])),
        error("create-service", "POST", ce("/services"), 409)
            .json(json!({"name": "svc", "host": "again.internal"})),
        error("create-service", "POST", ce("/services"), 400)
            .json(json!({"name": "odd", "host": "odd.internal", "bogus": 1}))
            .invalid()
            .eq("/fields/bogus", json!("unknown field")),
        error("create-service", "POST", ce("/services"), 400)
            .json(json!({"name": "bad-port", "host": "h.internal", "port": 70000})),
        error("get-service", "GET", ce("/services/{unknown}"), 404),
        // A dry run answers as the write would, and changes nothing.
        call("create-service", "POST", ce("/services?dry_run=true"), 201)
            .json(json!({"name": "dry", "host": "dry.internal"}))
            .invalid(),
        error("get-service", "GET", ce("/services/{lit_dry}"), 404),
    ]);
    let routes_in = Family::new("route-with-service", ce("/services/{svc}/routes"), "r_in");
    s.extend(routes_in.write(
        json!({"name": "r-in", "paths": ["/in"]}),
        json!({"name": "r-in", "paths": ["/in2"]}),
        ("/paths", json!(["/in2"])),
    ));
    let routes = Family::new("route", ce("/routes"), "r_top");
    s.extend(routes.write(
        json!({"name": "r-top", "paths": ["/top"], "service": {"id": "{svc}"}}),
        json!({"name": "r-top", "paths": ["/top2"], "service": {"id": "{svc}"}}),
        ("/service/id", json!("{svc}")),
    ));
    s.extend([
        call(
            "list-route-with-service",
            "GET",
            ce("/services/{svc}/routes"),
            200,
        )
        .check(data_ids(&["r_in", "r_top"])),
        // An expression route answers as Kong's `RouteExpression`.
        call("create-route", "POST", ce("/routes"), 201)
            .json(json!({"name": "r-expr", "expression": "http.path == \"/expr\"", "service": {"id": "{svc}"}}))
            .save("r_expr", "/id")
            .eq("/priority", json!(0)),
        call("delete-route", "DELETE", ce("/routes/{r_expr}"), 204),
    ]);
    let svc_plugins = Family::new(
        "plugin-with-service",
        ce("/services/{svc}/plugins"),
        "p_svc",
    );
    s.extend(svc_plugins.write(
        json!({"name": "key-auth"}),
        json!({"name": "key-auth", "config": {"key_names": ["token"]}}),
        ("/config/key_names", json!(["token"])),
    ));
    s.push(
        call(
            "get-plugin-with-service",
            "GET",
            ce("/services/{svc}/plugins/{p_svc}"),
            200,
        )
        // Kong's defaults of the plugin's schema, filled in.
        .eq("/config/hide_credentials", json!(false))
        .eq("/service/id", json!("{svc}")),
    );
    let route_plugins = Family::new(
        "plugin-with-route",
        ce("/routes/{r_top}/plugins"),
        "p_route",
    );
    s.extend(route_plugins.write(
        json!({"name": "cors"}),
        json!({"name": "cors", "config": {"max_age": 60}}),
        ("/config/max_age", json!(60)),
    ));
    let plugins = Family::new("plugin", ce("/plugins"), "p_global");
    s.extend(plugins.write(
        json!({"name": "correlation-id"}),
        json!({"name": "correlation-id", "enabled": false}),
        ("/enabled", json!(false)),
    ));
    s.push(
        error("create-plugin", "POST", ce("/plugins"), 400)
            .json(json!({"name": "rate-limiting", "config": {"minute": "many"}})),
    );
    let degraphql_in = Family::new(
        "degraphql_route-with-service",
        ce("/services/{svc}/degraphql/routes"),
        "dg",
    );
    s.extend(degraphql_in.write(
        json!({"uri": "/hello", "query": "{gql}"}),
        json!({"uri": "/hello2", "query": "{gql}"}),
        ("/uri", json!("/hello2")),
    ));
    s.extend([
        call("list-degraphql_route", "GET", ce("/degraphql_routes"), 200).check(data_ids(&["dg"])),
        call(
            "get-degraphql_route",
            "GET",
            ce("/degraphql_routes/{dg}"),
            200,
        ),
    ]);
    let costs = Family::new(
        "graphql-rate-limiting-advanced-cost-with-service",
        ce("/services/{svc}/graphql-rate-limiting-advanced/costs"),
        "cost",
    );
    s.extend(costs.write(
        json!({"type_path": "Query.hello"}),
        json!({"type_path": "Query.hello", "add_constant": 2}),
        ("/add_constant", json!(2)),
    ));
    s.extend([
        call(
            "list-graphql-rate-limiting-advanced-cost",
            "GET",
            ce("/graphql-rate-limiting-advanced/costs"),
            200,
        )
        .check(data_ids(&["cost"])),
        call(
            "get-graphql-rate-limiting-advanced-cost",
            "GET",
            ce("/graphql-rate-limiting-advanced/costs/{cost}"),
            200,
        ),
    ]);

    // ---- consumers, their credentials and plugins; consumer groups ----
    let consumers = Family::new("consumer", ce("/consumers"), "alice");
    s.extend(consumers.write(
        json!({"username": "alice"}),
        json!({"username": "alice", "custom_id": "a-1"}),
        ("/custom_id", json!("a-1")),
    ));
    for (name, key) in [("bob", "bob"), ("carol", "carol")] {
        s.push(
            call("create-consumer", "POST", ce("/consumers"), 201)
                .json(json!({"username": name}))
                .save(key, "/id"),
        );
    }
    // Pages: `next` until the last page, where it is null.
    s.extend([
        call("list-consumer", "GET", ce("/consumers?size=2"), 200).check(|ctx, r| {
            ensure(r.list("/data")?.len() == 2, || "page 1 holds 2".into())?;
            let offset = r.at("/offset")?.as_str().unwrap_or_default().to_string();
            ctx.set("offset", &offset);
            ensure(r.at("/next")?.is_string(), || "page 1 has a next".into())
        }),
        call(
            "list-consumer",
            "GET",
            ce("/consumers?size=2&offset={offset}"),
            200,
        )
        .check(|_, r| ensure(r.list("/data")?.len() == 1, || "page 2 holds 1".into()))
        .eq("/next", Value::Null),
        call("list-consumer", "GET", ce("/consumers?custom_id=a-1"), 200)
            .check(data_ids(&["alice"])),
    ]);
    let cred = |suffix: &'static str, seg: &str, key: &'static str| {
        Family::new(suffix, ce(&format!("/consumers/{{alice}}/{seg}")), key)
    };
    let acls = cred("acl-with-consumer", "acls", "acl");
    s.extend(acls.write(
        json!({"group": "admins"}),
        json!({"group": "operators"}),
        ("/group", json!("operators")),
    ));
    let basic = cred("basic-auth-with-consumer", "basic-auth", "basic");
    s.extend(basic.write(
        json!({"username": "alice-basic", "password": "pw-1"}),
        json!({"username": "alice-basic", "password": "pw-2"}),
        ("/username", json!("alice-basic")),
    ));
    let hmac = cred("hmac-auth-with-consumer", "hmac-auth", "hmac");
    s.extend(hmac.write(
        json!({"username": "alice-hmac"}),
        json!({"username": "alice-hmac", "secret": "s3cret"}),
        ("/secret", json!("s3cret")),
    ));
    let jwt = cred("jwt-with-consumer", "jwt", "jwt");
    s.extend(jwt.write(
        json!({"key": "alice-jwt"}),
        json!({"key": "alice-jwt", "secret": "jwt-secret"}),
        ("/algorithm", json!("HS256")),
    ));
    let keyauth = cred("key-auth-with-consumer", "key-auth", "keyauth");
    s.extend(keyauth.write(
        json!({"key": "alice-key"}),
        json!({"key": "alice-key-2"}),
        ("/key", json!("alice-key-2")),
    ));
    let mtls = cred("mtls-auth-with-consumer", "mtls-auth", "mtls");
    s.extend(mtls.write(
        json!({"subject_name": "alice.example.com"}),
        json!({"subject_name": "alice2.example.com"}),
        ("/subject_name", json!("alice2.example.com")),
    ));
    let consumer_plugins = cred("plugin-with-consumer", "plugins", "p_consumer");
    s.extend(consumer_plugins.write(
        json!({"name": "rate-limiting", "config": {"minute": 5}}),
        json!({"name": "rate-limiting", "config": {"minute": 10}}),
        ("/config/minute", json!(10)),
    ));
    for (op, seg, key) in [
        ("acl", "acls", "acl"),
        ("basic-auth", "basic-auths", "basic"),
        ("hmac-auth", "hmac-auths", "hmac"),
        ("jwt", "jwts", "jwt"),
        ("key-auth", "key-auths", "keyauth"),
        ("mtls-auth", "mtls-auths", "mtls"),
    ] {
        let list: &'static str = Box::leak(format!("list-{op}").into_boxed_str());
        let get: &'static str = Box::leak(format!("get-{op}").into_boxed_str());
        let keys: &'static [&'static str] = Box::leak(vec![key].into_boxed_slice());
        s.extend([
            call(list, "GET", ce(&format!("/{seg}")), 200).check(data_ids(keys)),
            call(get, "GET", ce(&format!("/{seg}/{{{key}}}")), 200)
                .eq("/consumer/id", json!("{alice}")),
        ]);
    }
    let groups = Family::new("consumer_group", ce("/consumer_groups"), "gold");
    s.extend([
        call("create-consumer_group", "POST", ce("/consumer_groups"), 201)
            .json(json!({"name": "gold"}))
            .save("gold", "/id"),
        // Wrapped, as Konnect answers this one.
        call(
            "get-consumer_group",
            "GET",
            ce("/consumer_groups/{gold}"),
            200,
        )
        .check(id_is("/consumer_group/id", "gold")),
        call("list-consumer_group", "GET", ce("/consumer_groups"), 200).check(data_ids(&["gold"])),
        call(
            "upsert-consumer_group",
            "PUT",
            ce("/consumer_groups/{gold}"),
            200,
        )
        .json(json!({"name": "gold", "tags": ["vip"]}))
        .eq("/tags", json!(["vip"])),
    ]);
    let group_plugins = Family::new(
        "plugin-with-consumer_group",
        ce("/consumer_groups/{gold}/plugins"),
        "p_group",
    );
    s.extend(group_plugins.write(
        json!({"name": "request-termination", "config": {"status_code": 403}}),
        json!({"name": "request-termination", "config": {"status_code": 429}}),
        ("/config/status_code", json!(429)),
    ));
    s.extend([
        call(
            "add-consumer-to-group",
            "POST",
            ce("/consumer_groups/{gold}/consumers"),
            201,
        )
        .json(json!({"consumer": "{alice}"}))
        .check(id_is("/consumers/0/id", "alice")),
        call(
            "add-consumer-to-specific-consumer-group",
            "POST",
            ce("/consumers/{bob}/consumer_groups"),
            201,
        )
        .json(json!({"group": "{gold}"}))
        .check(id_is("/consumer_groups/0/id", "gold")),
        call(
            "list-consumers-for-consumer-group",
            "GET",
            ce("/consumer_groups/{gold}/consumers"),
            200,
        )
        .check(data_ids(&["alice", "bob"])),
        call(
            "list-consumer-groups-for-consumer",
            "GET",
            ce("/consumers/{alice}/consumer_groups"),
            200,
        )
        .check(data_ids(&["gold"])),
        call(
            "get-consumer_group",
            "GET",
            ce("/consumer_groups/{gold}?list_consumers=true"),
            200,
        ),
        call(
            "remove-consumer-from-group",
            "DELETE",
            ce("/consumer_groups/{gold}/consumers/{alice}"),
            204,
        ),
        call(
            "remove-consumer-from-consumer-group",
            "DELETE",
            ce("/consumers/{bob}/consumer_groups/{gold}"),
            204,
        ),
        call(
            "list-consumers-for-consumer-group",
            "GET",
            ce("/consumer_groups/{gold}/consumers"),
            200,
        )
        .check(data_ids(&[])),
        call(
            "add-consumer-to-group",
            "POST",
            ce("/consumer_groups/{gold}/consumers"),
            201,
        )
        .json(json!({"consumer": "{carol}"})),
        call(
            "remove-all-consumers-from-consumer-group",
            "DELETE",
            ce("/consumer_groups/{gold}/consumers"),
            204,
        ),
        call(
            "add-consumer-to-specific-consumer-group",
            "POST",
            ce("/consumers/{carol}/consumer_groups"),
            201,
        )
        .json(json!({"group": "{gold}"})),
        call(
            "remove-consumer-from-all-consumer-groups",
            "DELETE",
            ce("/consumers/{carol}/consumer_groups"),
            204,
        ),
        call(
            "list-consumer-groups-for-consumer",
            "GET",
            ce("/consumers/{carol}/consumer_groups"),
            200,
        )
        .check(data_ids(&[])),
    ]);

    // ---- certificates and SNIs; CA certificates ----
    let certs = Family::new("certificate", ce("/certificates"), "cert");
    s.extend(certs.write(
        json!({"cert": "{tls_cert}", "key": "{tls_key}"}),
        json!({"cert": "{tls_cert}", "key": "{tls_key}", "tags": ["edge"]}),
        ("/tags", json!(["edge"])),
    ));
    let snis_in = Family::new(
        "sni-with-certificate",
        ce("/certificates/{cert}/snis"),
        "sni_in",
    );
    s.extend(snis_in.write(
        json!({"name": "a.example.com"}),
        json!({"name": "a.example.com", "tags": ["x"]}),
        ("/certificate/id", json!("{cert}")),
    ));
    let snis = Family::new("sni", ce("/snis"), "sni_top");
    s.extend(snis.write(
        json!({"name": "b.example.com", "certificate": {"id": "{cert}"}}),
        json!({"name": "b.example.com", "certificate": {"id": "{cert}"}, "tags": ["y"]}),
        ("/tags", json!(["y"])),
    ));
    let cas = Family::new("ca_certificate", ce("/ca_certificates"), "ca");
    s.extend(cas.write(
        json!({"cert": "{ca_cert}"}),
        json!({"cert": "{ca_cert}", "tags": ["root"]}),
        ("/tags", json!(["root"])),
    ));

    // ---- upstreams and targets ----
    let upstreams = Family::new("upstream", ce("/upstreams"), "up");
    s.extend(upstreams.write(
        json!({"name": "up"}),
        json!({"name": "up", "slots": 100}),
        ("/algorithm", json!("round-robin")),
    ));
    let targets = Family::new(
        "target-with-upstream",
        ce("/upstreams/{up}/targets"),
        "target",
    );
    s.extend(targets.write(
        json!({"target": "10.0.0.1:80"}),
        json!({"target": "10.0.0.1:80", "weight": 50}),
        ("/weight", json!(50)),
    ));
    s.push(call("list-targets", "GET", ce("/targets"), 200).check(data_ids(&["target"])));

    // ---- vaults, keys and key sets, partials ----
    let vaults = Family::new("vault", ce("/vaults"), "vault");
    s.extend(vaults.write(
        json!({"name": "env", "prefix": "team-env"}),
        json!({"name": "env", "prefix": "team-env", "description": "env vars"}),
        ("/description", json!("env vars")),
    ));
    let sets = Family::new("key-set", ce("/key-sets"), "ks");
    s.extend(sets.write(
        json!({"name": "ks"}),
        json!({"name": "ks", "tags": ["jwks"]}),
        ("/tags", json!(["jwks"])),
    ));
    let keys_in = Family::new("key-with-key-set", ce("/key-sets/{ks}/keys"), "key_in");
    s.extend(keys_in.write(
        json!({"name": "k-in", "kid": "kid-in", "jwk": "{jwk_in}"}),
        json!({"name": "k-in", "kid": "kid-in", "jwk": "{jwk_in}", "tags": ["a"]}),
        ("/set/id", json!("{ks}")),
    ));
    let keys = Family::new("key", ce("/keys"), "key_top");
    s.extend(keys.write(
        json!({"name": "k-top", "kid": "kid-top", "jwk": "{jwk_top}"}),
        json!({"name": "k-top", "kid": "kid-top", "jwk": "{jwk_top}", "tags": ["b"]}),
        ("/tags", json!(["b"])),
    ));
    let partials = Family::new("partial", ce("/partials"), "partial");
    s.extend(partials.write(
        json!({"name": "redis-1", "type": "redis-ce", "config": {"host": "redis.internal", "port": 6379}}),
        json!({"name": "redis-1", "type": "redis-ce", "config": {"host": "redis2.internal", "port": 6379}}),
        ("/config/host", json!("redis2.internal")),
    ));
    s.push(
        call(
            "list-partial-link",
            "GET",
            ce("/partials/{partial}/links"),
            200,
        )
        .eq("/count", json!(0)),
    );

    // ---- schemas ----
    s.extend([
        call(
            "fetch-plugin-schema",
            "GET",
            ce("/schemas/plugins/{lit_key_auth}"),
            200,
        )
        .check(|_, r| ensure(!r.list("/fields")?.is_empty(), || "no fields".into())),
        // An Enterprise plugin, from Kong's published schema.
        call(
            "fetch-plugin-schema",
            "GET",
            ce("/schemas/plugins/{lit_rla}"),
            200,
        )
        .check(|_, r| ensure(!r.list("/fields")?.is_empty(), || "no fields".into())),
        error(
            "fetch-plugin-schema",
            "GET",
            ce("/schemas/plugins/{lit_nope}"),
            404,
        ),
        call(
            "fetch-partial-schema",
            "GET",
            ce("/schemas/partials/{lit_redis}"),
            200,
        ),
        call(
            "validate-entity-schema",
            "POST",
            ce("/schemas/{lit_services}/validate"),
            200,
        )
        .json(json!({"name": "v", "host": "v.internal"})),
        error(
            "validate-entity-schema",
            "POST",
            ce("/schemas/{lit_services}/validate"),
            400,
        )
        .json(json!({"name": "v", "host": "v.internal", "port": "eighty"})),
        call(
            "validate-entity-schema",
            "POST",
            ce("/schemas/{lit_plugins}/validate"),
            200,
        )
        .json(json!({"name": "key-auth", "config": {"key_names": ["k"]}})),
        error(
            "validate-entity-schema",
            "POST",
            ce("/schemas/{lit_plugins}/validate"),
            400,
        )
        .json(json!({"name": "key-auth", "config": {"bogus": 1}})),
    ]);

    // ---- what needs code rgmerge can't run ----
    s.extend([
        call("list-custom-plugin", "GET", ce("/custom-plugins"), 200).check(data_ids(&[])),
        error("create-custom-plugin", "POST", ce("/custom-plugins"), 400)
            .json(json!({"name": "mine", "handler": "return 1", "schema": "return 1"})),
        error(
            "get-custom-plugin",
            "GET",
            ce("/custom-plugins/{unknown}"),
            404,
        ),
        error(
            "upsert-custom-plugin",
            "PUT",
            ce("/custom-plugins/{unknown}"),
            400,
        )
        .json(json!({"name": "mine", "handler": "return 1", "schema": "return 1"})),
        error(
            "delete-custom-plugin",
            "DELETE",
            ce("/custom-plugins/{unknown}"),
            400,
        ),
        error("list-plugin-schemas", "GET", ce("/plugin-schemas"), 400),
        error("create-plugin-schemas", "POST", ce("/plugin-schemas"), 400)
            .json(json!({"lua_schema": "return 1"})),
        error(
            "get-plugin-schema",
            "GET",
            ce("/plugin-schemas/{lit_mine}"),
            400,
        ),
        error(
            "update-plugin-schemas",
            "PUT",
            ce("/plugin-schemas/{lit_mine}"),
            400,
        )
        .json(json!({"lua_schema": "return 1"})),
        error(
            "delete-plugin-schemas",
            "DELETE",
            ce("/plugin-schemas/{lit_mine}"),
            400,
        ),
    ]);
    let stores = format!("{V2}/{{team}}/config-stores");
    s.extend([
        error("list-config-stores", "GET", stores.clone(), 400),
        error("create-config-store", "POST", stores.clone(), 400).json(json!({"name": "s"})),
        error(
            "get-config-store",
            "GET",
            format!("{stores}/{{unknown}}"),
            400,
        ),
        error(
            "update-config-store",
            "PUT",
            format!("{stores}/{{unknown}}"),
            400,
        )
        .json(json!({"name": "s"})),
        error(
            "delete-config-store",
            "DELETE",
            format!("{stores}/{{unknown}}"),
            400,
        ),
        error(
            "list-config-store-secrets",
            "GET",
            format!("{stores}/{{unknown}}/secrets"),
            400,
        ),
        error(
            "create-config-store-secret",
            "POST",
            format!("{stores}/{{unknown}}/secrets"),
            400,
        )
        .json(json!({"key": "k", "value": "v"})),
        error(
            "get-config-store-secret",
            "GET",
            format!("{stores}/{{unknown}}/secrets/{{lit_k}}"),
            400,
        ),
        error(
            "update-config-store-secret",
            "PUT",
            format!("{stores}/{{unknown}}/secrets/{{lit_k}}"),
            400,
        )
        .json(json!({"value": "v"})),
        error(
            "delete-config-store-secret",
            "DELETE",
            format!("{stores}/{{unknown}}/secrets/{{lit_k}}"),
            400,
        ),
    ]);

    // ---- the two operations of this spec outside core-entities no other table calls ----
    s.extend([
        call(
            "get-expected-config-version",
            "GET",
            format!("{V2}/{{team}}/expected-config-version"),
            200,
        ),
        call(
            "create-dataplane-certificate",
            "POST",
            format!("{V2}/{{team}}/dp-client-certificates"),
            201,
        )
        .json(json!({"cert": "{pem1}"}))
        .save("dpc", "/item/id"),
        call(
            "update-dataplane-certificate",
            "PUT",
            format!("{V2}/{{team}}/dp-client-certificates/{{dpc}}"),
            200,
        )
        .json(json!({"cert": "{pem2}"})),
    ]);

    // ---- the composite: read-only, listing what it serves ----
    let shared = "/v2/control-planes/{shared}/core-entities";
    s.extend([
        call("list-service", "GET", format!("{shared}/services"), 200).check(data_ids(&["svc"])),
        call(
            "get-service",
            "GET",
            format!("{shared}/services/{{svc}}"),
            200,
        ),
        error("create-service", "POST", format!("{shared}/services"), 405)
            .json(json!({"name": "x", "host": "x.internal"})),
    ]);

    // ---- deletes, children first where Kong restricts ----
    s.push(
        // A service routes still name: refused, as Kong refuses it.
        error("delete-service", "DELETE", ce("/services/{svc}"), 400),
    );
    for f in [
        &routes_in,
        &routes,
        &svc_plugins,
        &route_plugins,
        &plugins,
        &degraphql_in,
        &costs,
        &acls,
        &basic,
        &hmac,
        &jwt,
        &keyauth,
        &mtls,
        &consumer_plugins,
        &group_plugins,
        &snis_in,
        &snis,
        &targets,
        &keys_in,
        &keys,
    ] {
        s.extend(f.delete());
    }
    for f in [
        &services, &consumers, &groups, &certs, &cas, &upstreams, &vaults, &sets, &partials,
    ] {
        s.extend(f.delete());
    }
    s
}
