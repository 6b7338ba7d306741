//! The route table: every (method, path) of the API, named once with its
//! handler, what it needs ([`Need`]) and the Konnect operation it serves, as
//! ripgrep's `flags/defs.rs` names each flag once. The router
//! ([`add_routes`]), access control ([`super::auth::route_of`]) and the
//! conformance test all read it, so a route can't be served without a right,
//! or protected without being served.
//!
//! Path parameters are named by position, not by the spec's names
//! (`{ServiceId}`, `{ConsumerIdForNestedEntities}`, …): the router needs one
//! name per position. `{id}` is always the control plane.

use axum::Router;
use axum::routing::{MethodFilter, on};

use super::{
    AppState, admin, backup, certificates, config, core_entities, details, groups, history, http,
    memberships, nodes, snapshot,
};
use crate::registry::Right;
use crate::registry::Right::{Administer, Edit, Heartbeat, ReadSnapshot, View};

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Anyone, even unidentified.
    Open,
    /// Any identified caller (the answer may depend on who: a list is
    /// filtered to the groups the caller can view).
    Known,
    /// An org admin.
    OrgAdmin,
    /// This right on the group the `{id}` segment names.
    On(Right),
    /// Administer the composite `{id}`, and view every group the body names
    /// (adding members).
    Members,
}

/// One route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub template: &'static str,
    pub need: Need,
    /// The handler's path in `server` (`core_entities::list`).
    pub handler: &'static str,
    /// The `operationId` in `../shared/konnect-api/`; `None` for our
    /// extensions (which sit at paths neither spec uses).
    pub operation: Option<&'static str>,
    /// Counts against `--max-in-flight`. Only the snapshot long-poll doesn't:
    /// thousands of sidecars waiting must not lock writers out.
    pub limited: bool,
}

/// `/v2/control-planes` followed by `$rest`.
macro_rules! cp {
    ($rest:literal) => {
        concat!("/v2/control-planes", $rest)
    };
}

/// `/v2/control-planes/{id}/core-entities` followed by `$rest`.
macro_rules! ce {
    ($rest:literal) => {
        concat!("/v2/control-planes/{id}/core-entities", $rest)
    };
}

/// Declares the table and the router from one list. An entry:
/// `METHOD path => handler, need, operation [, unlimited];`.
macro_rules! table {
    ($($method:ident $path:expr => $handler:path, $need:expr, $op:expr $(, $unlimited:ident)?;)*) => {
        /// Every route of the API.
        pub const ROUTES: &[Route] = &[$(Route {
            method: stringify!($method),
            template: $path,
            need: $need,
            handler: stringify!($handler),
            operation: $op,
            limited: table!(@limited $($unlimited)?),
        }),*];

        /// Adds every route to the router that counts against the in-flight
        /// limit, or to the one that doesn't.
        pub(super) fn add_routes(
            mut limited: Router<AppState>,
            mut open: Router<AppState>,
        ) -> (Router<AppState>, Router<AppState>) {
            $(
                let filter = MethodFilter::$method;
                if table!(@limited $($unlimited)?) {
                    limited = limited.route($path, on(filter, $handler));
                } else {
                    open = open.route($path, on(filter, $handler));
                }
            )*
            (limited, open)
        }
    };
    (@limited) => { true };
    (@limited unlimited) => { false };
}

use Need::{Known, Members, On, Open, OrgAdmin};

table! {
    GET "/healthz" => http::healthz, Open, None;
    GET "/metrics" => http::metrics, Known, None;
    GET "/v2/me" => admin::me, Known, None;

    // ---- control-planes v2 ----
    GET cp!("") => groups::list, Known, Some("list-control-planes");
    POST cp!("") => groups::create, OrgAdmin, Some("create-control-plane");
    GET cp!("/{id}") => groups::get, On(View), Some("get-control-plane");
    PATCH cp!("/{id}") => groups::update, On(Administer), Some("update-control-plane");
    DELETE cp!("/{id}") => groups::delete, On(Administer), Some("delete-control-plane");
    GET cp!("/{id}/group-memberships") => memberships::list, On(View), Some("get-control-planes-id-group-memberships");
    PUT cp!("/{id}/group-memberships") => memberships::upsert, Members, Some("put-control-planes-id-group-memberships");
    POST cp!("/{id}/group-memberships/add") => memberships::add, Members, Some("post-control-planes-id-group-memberships-add");
    POST cp!("/{id}/group-memberships/remove") => memberships::remove, On(Administer), Some("post-control-planes-id-group-memberships-remove");
    GET cp!("/{id}/group-status") => memberships::status, On(View), Some("get-control-planes-id-group-status");
    GET cp!("/{id}/group-member-status") => memberships::member_status, On(View), Some("get-control-planes-id-group-member-status");

    // ---- control-planes-config v2: DP nodes and certificates ----
    GET cp!("/{id}/nodes") => nodes::list, On(View), Some("list-dataplane-nodes");
    GET cp!("/{id}/nodes/eol") => nodes::eol, On(View), Some("get-nodes-eol");
    DELETE cp!("/{id}/nodes/eol") => nodes::delete_eol, On(Administer), None;
    GET cp!("/{id}/nodes/{node_id}") => nodes::get, On(View), Some("get-nodes-node_id");
    DELETE cp!("/{id}/nodes/{node_id}") => nodes::delete, On(Administer), Some("delete-nodes-node_id");
    GET cp!("/{id}/expected-config-hash") => nodes::expected_config_hash, On(View), Some("get-expected-config-hash");
    GET cp!("/{id}/expected-config-version") => nodes::expected_config_version, On(View), Some("get-expected-config-version");
    GET cp!("/{id}/dp-client-certificates") => certificates::list, On(View), Some("list-dp-client-certificates");
    POST cp!("/{id}/dp-client-certificates") => certificates::create, On(Administer), Some("create-dataplane-certificate");
    GET cp!("/{id}/dp-client-certificates/{cert_id}") => certificates::get, On(View), Some("get-dataplane-certificate");
    PUT cp!("/{id}/dp-client-certificates/{cert_id}") => certificates::update, On(Administer), Some("update-dataplane-certificate");
    DELETE cp!("/{id}/dp-client-certificates/{cert_id}") => certificates::delete, On(Administer), Some("delete-dataplane-certificate");

    // ---- control-planes-config v2: config stores (need Konnect's secret store) ----
    GET cp!("/{id}/config-stores") => core_entities::unsupported, On(View), Some("list-config-stores");
    POST cp!("/{id}/config-stores") => core_entities::unsupported, On(Edit), Some("create-config-store");
    GET cp!("/{id}/config-stores/{eid}") => core_entities::unsupported, On(View), Some("get-config-store");
    PUT cp!("/{id}/config-stores/{eid}") => core_entities::unsupported, On(Edit), Some("update-config-store");
    DELETE cp!("/{id}/config-stores/{eid}") => core_entities::unsupported, On(Edit), Some("delete-config-store");
    GET cp!("/{id}/config-stores/{eid}/secrets") => core_entities::unsupported, On(View), Some("list-config-store-secrets");
    POST cp!("/{id}/config-stores/{eid}/secrets") => core_entities::unsupported, On(Edit), Some("create-config-store-secret");
    GET cp!("/{id}/config-stores/{eid}/secrets/{cid}") => core_entities::unsupported, On(View), Some("get-config-store-secret");
    PUT cp!("/{id}/config-stores/{eid}/secrets/{cid}") => core_entities::unsupported, On(Edit), Some("update-config-store-secret");
    DELETE cp!("/{id}/config-stores/{eid}/secrets/{cid}") => core_entities::unsupported, On(Edit), Some("delete-config-store-secret");

    // ---- control-planes-config v2: core entities ----
    GET ce!("/services") => core_entities::list, On(View), Some("list-service");
    POST ce!("/services") => core_entities::create, On(Edit), Some("create-service");
    GET ce!("/services/{eid}") => core_entities::get, On(View), Some("get-service");
    PUT ce!("/services/{eid}") => core_entities::upsert, On(Edit), Some("upsert-service");
    DELETE ce!("/services/{eid}") => core_entities::delete, On(Edit), Some("delete-service");
    GET ce!("/services/{eid}/routes") => core_entities::list, On(View), Some("list-route-with-service");
    POST ce!("/services/{eid}/routes") => core_entities::create, On(Edit), Some("create-route-with-service");
    GET ce!("/services/{eid}/routes/{cid}") => core_entities::get, On(View), Some("get-route-with-service");
    PUT ce!("/services/{eid}/routes/{cid}") => core_entities::upsert, On(Edit), Some("upsert-route-with-service");
    DELETE ce!("/services/{eid}/routes/{cid}") => core_entities::delete, On(Edit), Some("delete-route-with-service");
    GET ce!("/services/{eid}/plugins") => core_entities::list, On(View), Some("list-plugin-with-service");
    POST ce!("/services/{eid}/plugins") => core_entities::create, On(Edit), Some("create-plugin-with-service");
    GET ce!("/services/{eid}/plugins/{cid}") => core_entities::get, On(View), Some("get-plugin-with-service");
    PUT ce!("/services/{eid}/plugins/{cid}") => core_entities::upsert, On(Edit), Some("upsert-plugin-with-service");
    DELETE ce!("/services/{eid}/plugins/{cid}") => core_entities::delete, On(Edit), Some("delete-plugin-with-service");
    GET ce!("/services/{eid}/degraphql/routes") => core_entities::list, On(View), Some("list-degraphql_route-with-service");
    POST ce!("/services/{eid}/degraphql/routes") => core_entities::create, On(Edit), Some("create-degraphql_route-with-service");
    GET ce!("/services/{eid}/degraphql/routes/{cid}") => core_entities::get, On(View), Some("get-degraphql_route-with-service");
    PUT ce!("/services/{eid}/degraphql/routes/{cid}") => core_entities::upsert, On(Edit), Some("upsert-degraphql_route-with-service");
    DELETE ce!("/services/{eid}/degraphql/routes/{cid}") => core_entities::delete, On(Edit), Some("delete-degraphql_route-with-service");
    GET ce!("/services/{eid}/graphql-rate-limiting-advanced/costs") => core_entities::list, On(View), Some("list-graphql-rate-limiting-advanced-cost-with-service");
    POST ce!("/services/{eid}/graphql-rate-limiting-advanced/costs") => core_entities::create, On(Edit), Some("create-graphql-rate-limiting-advanced-cost-with-service");
    GET ce!("/services/{eid}/graphql-rate-limiting-advanced/costs/{cid}") => core_entities::get, On(View), Some("get-graphql-rate-limiting-advanced-cost-with-service");
    PUT ce!("/services/{eid}/graphql-rate-limiting-advanced/costs/{cid}") => core_entities::upsert, On(Edit), Some("upsert-graphql-rate-limiting-advanced-cost-with-service");
    DELETE ce!("/services/{eid}/graphql-rate-limiting-advanced/costs/{cid}") => core_entities::delete, On(Edit), Some("delete-graphql-rate-limiting-advanced-cost-with-service");

    GET ce!("/routes") => core_entities::list, On(View), Some("list-route");
    POST ce!("/routes") => core_entities::create, On(Edit), Some("create-route");
    GET ce!("/routes/{eid}") => core_entities::get, On(View), Some("get-route");
    PUT ce!("/routes/{eid}") => core_entities::upsert, On(Edit), Some("upsert-route");
    DELETE ce!("/routes/{eid}") => core_entities::delete, On(Edit), Some("delete-route");
    GET ce!("/routes/{eid}/plugins") => core_entities::list, On(View), Some("list-plugin-with-route");
    POST ce!("/routes/{eid}/plugins") => core_entities::create, On(Edit), Some("create-plugin-with-route");
    GET ce!("/routes/{eid}/plugins/{cid}") => core_entities::get, On(View), Some("get-plugin-with-route");
    PUT ce!("/routes/{eid}/plugins/{cid}") => core_entities::upsert, On(Edit), Some("upsert-plugin-with-route");
    DELETE ce!("/routes/{eid}/plugins/{cid}") => core_entities::delete, On(Edit), Some("delete-plugin-with-route");

    GET ce!("/plugins") => core_entities::list, On(View), Some("list-plugin");
    POST ce!("/plugins") => core_entities::create, On(Edit), Some("create-plugin");
    GET ce!("/plugins/{eid}") => core_entities::get, On(View), Some("get-plugin");
    PUT ce!("/plugins/{eid}") => core_entities::upsert, On(Edit), Some("upsert-plugin");
    DELETE ce!("/plugins/{eid}") => core_entities::delete, On(Edit), Some("delete-plugin");

    GET ce!("/consumers") => core_entities::list, On(View), Some("list-consumer");
    POST ce!("/consumers") => core_entities::create, On(Edit), Some("create-consumer");
    GET ce!("/consumers/{eid}") => core_entities::get, On(View), Some("get-consumer");
    PUT ce!("/consumers/{eid}") => core_entities::upsert, On(Edit), Some("upsert-consumer");
    DELETE ce!("/consumers/{eid}") => core_entities::delete, On(Edit), Some("delete-consumer");
    GET ce!("/consumers/{eid}/plugins") => core_entities::list, On(View), Some("list-plugin-with-consumer");
    POST ce!("/consumers/{eid}/plugins") => core_entities::create, On(Edit), Some("create-plugin-with-consumer");
    GET ce!("/consumers/{eid}/plugins/{cid}") => core_entities::get, On(View), Some("get-plugin-with-consumer");
    PUT ce!("/consumers/{eid}/plugins/{cid}") => core_entities::upsert, On(Edit), Some("upsert-plugin-with-consumer");
    DELETE ce!("/consumers/{eid}/plugins/{cid}") => core_entities::delete, On(Edit), Some("delete-plugin-with-consumer");
    GET ce!("/consumers/{eid}/acls") => core_entities::list, On(View), Some("list-acl-with-consumer");
    POST ce!("/consumers/{eid}/acls") => core_entities::create, On(Edit), Some("create-acl-with-consumer");
    GET ce!("/consumers/{eid}/acls/{cid}") => core_entities::get, On(View), Some("get-acl-with-consumer");
    PUT ce!("/consumers/{eid}/acls/{cid}") => core_entities::upsert, On(Edit), Some("upsert-acl-with-consumer");
    DELETE ce!("/consumers/{eid}/acls/{cid}") => core_entities::delete, On(Edit), Some("delete-acl-with-consumer");
    GET ce!("/consumers/{eid}/basic-auth") => core_entities::list, On(View), Some("list-basic-auth-with-consumer");
    POST ce!("/consumers/{eid}/basic-auth") => core_entities::create, On(Edit), Some("create-basic-auth-with-consumer");
    GET ce!("/consumers/{eid}/basic-auth/{cid}") => core_entities::get, On(View), Some("get-basic-auth-with-consumer");
    PUT ce!("/consumers/{eid}/basic-auth/{cid}") => core_entities::upsert, On(Edit), Some("upsert-basic-auth-with-consumer");
    DELETE ce!("/consumers/{eid}/basic-auth/{cid}") => core_entities::delete, On(Edit), Some("delete-basic-auth-with-consumer");
    GET ce!("/consumers/{eid}/hmac-auth") => core_entities::list, On(View), Some("list-hmac-auth-with-consumer");
    POST ce!("/consumers/{eid}/hmac-auth") => core_entities::create, On(Edit), Some("create-hmac-auth-with-consumer");
    GET ce!("/consumers/{eid}/hmac-auth/{cid}") => core_entities::get, On(View), Some("get-hmac-auth-with-consumer");
    PUT ce!("/consumers/{eid}/hmac-auth/{cid}") => core_entities::upsert, On(Edit), Some("upsert-hmac-auth-with-consumer");
    DELETE ce!("/consumers/{eid}/hmac-auth/{cid}") => core_entities::delete, On(Edit), Some("delete-hmac-auth-with-consumer");
    GET ce!("/consumers/{eid}/jwt") => core_entities::list, On(View), Some("list-jwt-with-consumer");
    POST ce!("/consumers/{eid}/jwt") => core_entities::create, On(Edit), Some("create-jwt-with-consumer");
    GET ce!("/consumers/{eid}/jwt/{cid}") => core_entities::get, On(View), Some("get-jwt-with-consumer");
    PUT ce!("/consumers/{eid}/jwt/{cid}") => core_entities::upsert, On(Edit), Some("upsert-jwt-with-consumer");
    DELETE ce!("/consumers/{eid}/jwt/{cid}") => core_entities::delete, On(Edit), Some("delete-jwt-with-consumer");
    GET ce!("/consumers/{eid}/key-auth") => core_entities::list, On(View), Some("list-key-auth-with-consumer");
    POST ce!("/consumers/{eid}/key-auth") => core_entities::create, On(Edit), Some("create-key-auth-with-consumer");
    GET ce!("/consumers/{eid}/key-auth/{cid}") => core_entities::get, On(View), Some("get-key-auth-with-consumer");
    PUT ce!("/consumers/{eid}/key-auth/{cid}") => core_entities::upsert, On(Edit), Some("upsert-key-auth-with-consumer");
    DELETE ce!("/consumers/{eid}/key-auth/{cid}") => core_entities::delete, On(Edit), Some("delete-key-auth-with-consumer");
    GET ce!("/consumers/{eid}/mtls-auth") => core_entities::list, On(View), Some("list-mtls-auth-with-consumer");
    POST ce!("/consumers/{eid}/mtls-auth") => core_entities::create, On(Edit), Some("create-mtls-auth-with-consumer");
    GET ce!("/consumers/{eid}/mtls-auth/{cid}") => core_entities::get, On(View), Some("get-mtls-auth-with-consumer");
    PUT ce!("/consumers/{eid}/mtls-auth/{cid}") => core_entities::upsert, On(Edit), Some("upsert-mtls-auth-with-consumer");
    DELETE ce!("/consumers/{eid}/mtls-auth/{cid}") => core_entities::delete, On(Edit), Some("delete-mtls-auth-with-consumer");
    GET ce!("/consumers/{eid}/consumer_groups") => core_entities::memberships_of, On(View), Some("list-consumer-groups-for-consumer");
    POST ce!("/consumers/{eid}/consumer_groups") => core_entities::add_consumer_to_group, On(Edit), Some("add-consumer-to-specific-consumer-group");
    DELETE ce!("/consumers/{eid}/consumer_groups") => core_entities::remove_consumer_from_groups, On(Edit), Some("remove-consumer-from-all-consumer-groups");
    DELETE ce!("/consumers/{eid}/consumer_groups/{cid}") => core_entities::remove_consumer_from_groups, On(Edit), Some("remove-consumer-from-consumer-group");

    GET ce!("/acls") => core_entities::list, On(View), Some("list-acl");
    GET ce!("/acls/{eid}") => core_entities::get, On(View), Some("get-acl");
    GET ce!("/basic-auths") => core_entities::list, On(View), Some("list-basic-auth");
    GET ce!("/basic-auths/{eid}") => core_entities::get, On(View), Some("get-basic-auth");
    GET ce!("/hmac-auths") => core_entities::list, On(View), Some("list-hmac-auth");
    GET ce!("/hmac-auths/{eid}") => core_entities::get, On(View), Some("get-hmac-auth");
    GET ce!("/jwts") => core_entities::list, On(View), Some("list-jwt");
    GET ce!("/jwts/{eid}") => core_entities::get, On(View), Some("get-jwt");
    GET ce!("/key-auths") => core_entities::list, On(View), Some("list-key-auth");
    GET ce!("/key-auths/{eid}") => core_entities::get, On(View), Some("get-key-auth");
    GET ce!("/mtls-auths") => core_entities::list, On(View), Some("list-mtls-auth");
    GET ce!("/mtls-auths/{eid}") => core_entities::get, On(View), Some("get-mtls-auth");

    GET ce!("/consumer_groups") => core_entities::list, On(View), Some("list-consumer_group");
    POST ce!("/consumer_groups") => core_entities::create, On(Edit), Some("create-consumer_group");
    GET ce!("/consumer_groups/{eid}") => core_entities::get, On(View), Some("get-consumer_group");
    PUT ce!("/consumer_groups/{eid}") => core_entities::upsert, On(Edit), Some("upsert-consumer_group");
    DELETE ce!("/consumer_groups/{eid}") => core_entities::delete, On(Edit), Some("delete-consumer_group");
    GET ce!("/consumer_groups/{eid}/plugins") => core_entities::list, On(View), Some("list-plugin-with-consumer_group");
    POST ce!("/consumer_groups/{eid}/plugins") => core_entities::create, On(Edit), Some("create-plugin-with-consumer_group");
    GET ce!("/consumer_groups/{eid}/plugins/{cid}") => core_entities::get, On(View), Some("get-plugin-with-consumer_group");
    PUT ce!("/consumer_groups/{eid}/plugins/{cid}") => core_entities::upsert, On(Edit), Some("upsert-plugin-with-consumer_group");
    DELETE ce!("/consumer_groups/{eid}/plugins/{cid}") => core_entities::delete, On(Edit), Some("delete-plugin-with-consumer_group");
    GET ce!("/consumer_groups/{eid}/consumers") => core_entities::memberships_of, On(View), Some("list-consumers-for-consumer-group");
    POST ce!("/consumer_groups/{eid}/consumers") => core_entities::add_consumer_to_group, On(Edit), Some("add-consumer-to-group");
    DELETE ce!("/consumer_groups/{eid}/consumers") => core_entities::remove_consumer_from_groups, On(Edit), Some("remove-all-consumers-from-consumer-group");
    DELETE ce!("/consumer_groups/{eid}/consumers/{cid}") => core_entities::remove_consumer_from_groups, On(Edit), Some("remove-consumer-from-group");

    GET ce!("/certificates") => core_entities::list, On(View), Some("list-certificate");
    POST ce!("/certificates") => core_entities::create, On(Edit), Some("create-certificate");
    GET ce!("/certificates/{eid}") => core_entities::get, On(View), Some("get-certificate");
    PUT ce!("/certificates/{eid}") => core_entities::upsert, On(Edit), Some("upsert-certificate");
    DELETE ce!("/certificates/{eid}") => core_entities::delete, On(Edit), Some("delete-certificate");
    GET ce!("/certificates/{eid}/snis") => core_entities::list, On(View), Some("list-sni-with-certificate");
    POST ce!("/certificates/{eid}/snis") => core_entities::create, On(Edit), Some("create-sni-with-certificate");
    GET ce!("/certificates/{eid}/snis/{cid}") => core_entities::get, On(View), Some("get-sni-with-certificate");
    PUT ce!("/certificates/{eid}/snis/{cid}") => core_entities::upsert, On(Edit), Some("upsert-sni-with-certificate");
    DELETE ce!("/certificates/{eid}/snis/{cid}") => core_entities::delete, On(Edit), Some("delete-sni-with-certificate");
    GET ce!("/snis") => core_entities::list, On(View), Some("list-sni");
    POST ce!("/snis") => core_entities::create, On(Edit), Some("create-sni");
    GET ce!("/snis/{eid}") => core_entities::get, On(View), Some("get-sni");
    PUT ce!("/snis/{eid}") => core_entities::upsert, On(Edit), Some("upsert-sni");
    DELETE ce!("/snis/{eid}") => core_entities::delete, On(Edit), Some("delete-sni");
    GET ce!("/ca_certificates") => core_entities::list, On(View), Some("list-ca_certificate");
    POST ce!("/ca_certificates") => core_entities::create, On(Edit), Some("create-ca_certificate");
    GET ce!("/ca_certificates/{eid}") => core_entities::get, On(View), Some("get-ca_certificate");
    PUT ce!("/ca_certificates/{eid}") => core_entities::upsert, On(Edit), Some("upsert-ca_certificate");
    DELETE ce!("/ca_certificates/{eid}") => core_entities::delete, On(Edit), Some("delete-ca_certificate");

    GET ce!("/upstreams") => core_entities::list, On(View), Some("list-upstream");
    POST ce!("/upstreams") => core_entities::create, On(Edit), Some("create-upstream");
    GET ce!("/upstreams/{eid}") => core_entities::get, On(View), Some("get-upstream");
    PUT ce!("/upstreams/{eid}") => core_entities::upsert, On(Edit), Some("upsert-upstream");
    DELETE ce!("/upstreams/{eid}") => core_entities::delete, On(Edit), Some("delete-upstream");
    GET ce!("/upstreams/{eid}/targets") => core_entities::list, On(View), Some("list-target-with-upstream");
    POST ce!("/upstreams/{eid}/targets") => core_entities::create, On(Edit), Some("create-target-with-upstream");
    GET ce!("/upstreams/{eid}/targets/{cid}") => core_entities::get, On(View), Some("get-target-with-upstream");
    PUT ce!("/upstreams/{eid}/targets/{cid}") => core_entities::upsert, On(Edit), Some("upsert-target-with-upstream");
    DELETE ce!("/upstreams/{eid}/targets/{cid}") => core_entities::delete, On(Edit), Some("delete-target-with-upstream");
    GET ce!("/targets") => core_entities::list, On(View), Some("list-targets");

    GET ce!("/vaults") => core_entities::list, On(View), Some("list-vault");
    POST ce!("/vaults") => core_entities::create, On(Edit), Some("create-vault");
    GET ce!("/vaults/{eid}") => core_entities::get, On(View), Some("get-vault");
    PUT ce!("/vaults/{eid}") => core_entities::upsert, On(Edit), Some("upsert-vault");
    DELETE ce!("/vaults/{eid}") => core_entities::delete, On(Edit), Some("delete-vault");

    GET ce!("/keys") => core_entities::list, On(View), Some("list-key");
    POST ce!("/keys") => core_entities::create, On(Edit), Some("create-key");
    GET ce!("/keys/{eid}") => core_entities::get, On(View), Some("get-key");
    PUT ce!("/keys/{eid}") => core_entities::upsert, On(Edit), Some("upsert-key");
    DELETE ce!("/keys/{eid}") => core_entities::delete, On(Edit), Some("delete-key");
    GET ce!("/key-sets") => core_entities::list, On(View), Some("list-key-set");
    POST ce!("/key-sets") => core_entities::create, On(Edit), Some("create-key-set");
    GET ce!("/key-sets/{eid}") => core_entities::get, On(View), Some("get-key-set");
    PUT ce!("/key-sets/{eid}") => core_entities::upsert, On(Edit), Some("upsert-key-set");
    DELETE ce!("/key-sets/{eid}") => core_entities::delete, On(Edit), Some("delete-key-set");
    GET ce!("/key-sets/{eid}/keys") => core_entities::list, On(View), Some("list-key-with-key-set");
    POST ce!("/key-sets/{eid}/keys") => core_entities::create, On(Edit), Some("create-key-with-key-set");
    GET ce!("/key-sets/{eid}/keys/{cid}") => core_entities::get, On(View), Some("get-key-with-key-set");
    PUT ce!("/key-sets/{eid}/keys/{cid}") => core_entities::upsert, On(Edit), Some("upsert-key-with-key-set");
    DELETE ce!("/key-sets/{eid}/keys/{cid}") => core_entities::delete, On(Edit), Some("delete-key-with-key-set");

    GET ce!("/partials") => core_entities::list, On(View), Some("list-partial");
    POST ce!("/partials") => core_entities::create, On(Edit), Some("create-partial");
    GET ce!("/partials/{eid}") => core_entities::get, On(View), Some("get-partial");
    PUT ce!("/partials/{eid}") => core_entities::upsert, On(Edit), Some("upsert-partial");
    DELETE ce!("/partials/{eid}") => core_entities::delete, On(Edit), Some("delete-partial");
    GET ce!("/partials/{eid}/links") => core_entities::partial_links, On(View), Some("list-partial-link");

    GET ce!("/degraphql_routes") => core_entities::list, On(View), Some("list-degraphql_route");
    GET ce!("/degraphql_routes/{eid}") => core_entities::get, On(View), Some("get-degraphql_route");
    GET ce!("/graphql-rate-limiting-advanced/costs") => core_entities::list, On(View), Some("list-graphql-rate-limiting-advanced-cost");
    GET ce!("/graphql-rate-limiting-advanced/costs/{eid}") => core_entities::get, On(View), Some("get-graphql-rate-limiting-advanced-cost");

    // Code we can't run: custom plugins and plugin-schema uploads.
    GET ce!("/custom-plugins") => core_entities::list, On(View), Some("list-custom-plugin");
    POST ce!("/custom-plugins") => core_entities::unsupported, On(Edit), Some("create-custom-plugin");
    GET ce!("/custom-plugins/{eid}") => core_entities::get, On(View), Some("get-custom-plugin");
    PUT ce!("/custom-plugins/{eid}") => core_entities::unsupported, On(Edit), Some("upsert-custom-plugin");
    DELETE ce!("/custom-plugins/{eid}") => core_entities::unsupported, On(Edit), Some("delete-custom-plugin");
    GET ce!("/plugin-schemas") => core_entities::unsupported, On(View), Some("list-plugin-schemas");
    POST ce!("/plugin-schemas") => core_entities::unsupported, On(Edit), Some("create-plugin-schemas");
    GET ce!("/plugin-schemas/{eid}") => core_entities::unsupported, On(View), Some("get-plugin-schema");
    PUT ce!("/plugin-schemas/{eid}") => core_entities::unsupported, On(Edit), Some("update-plugin-schemas");
    DELETE ce!("/plugin-schemas/{eid}") => core_entities::unsupported, On(Edit), Some("delete-plugin-schemas");

    // Schemas, from the rules the validator uses.
    GET ce!("/schemas/plugins/{eid}") => core_entities::plugin_schema, On(View), Some("fetch-plugin-schema");
    GET ce!("/schemas/partials/{eid}") => core_entities::partial_schema, On(View), Some("fetch-partial-schema");
    POST ce!("/schemas/{eid}/validate") => core_entities::validate, On(View), Some("validate-entity-schema");
    // The same operation where a path of its own (`schemas/plugins/{name}`) would take it.
    POST ce!("/schemas/plugins/validate") => core_entities::validate, On(View), None;
    POST ce!("/schemas/partials/validate") => core_entities::validate, On(View), None;

    // ---- ours ----
    GET cp!("/{id}/details") => details::get, On(View), None;
    GET cp!("/{id}/config") => config::get, On(View), None;
    PUT cp!("/{id}/config") => config::put, On(Edit), None;
    GET cp!("/{id}/snapshot") => snapshot::get, On(ReadSnapshot), None, unlimited;
    GET cp!("/{id}/snapshot/provenance") => snapshot::provenance, On(View), None;
    GET cp!("/{id}/snapshot/history") => history::list, On(View), None;
    PUT cp!("/{id}/snapshot/pin") => history::pin, On(Administer), None;
    DELETE cp!("/{id}/snapshot/pin") => history::unpin, On(Administer), None;
    POST cp!("/{id}/nodes") => nodes::heartbeat, On(Heartbeat), None;
    GET "/v2/teams" => admin::list_teams, OrgAdmin, None;
    POST "/v2/teams" => admin::create_team, OrgAdmin, None;
    GET "/v2/teams/{team}" => admin::get_team, OrgAdmin, None;
    DELETE "/v2/teams/{team}" => admin::delete_team, OrgAdmin, None;
    POST "/v2/teams/{team}/credentials" => admin::add_credential, OrgAdmin, None;
    DELETE "/v2/teams/{team}/credentials/{credential}" => admin::remove_credential, OrgAdmin, None;
    GET "/v2/teams/{team}/tokens" => admin::list_tokens, OrgAdmin, None;
    POST "/v2/teams/{team}/tokens" => admin::issue_token, OrgAdmin, None;
    DELETE "/v2/teams/{team}/tokens/{token_id}" => admin::revoke_token, OrgAdmin, None;
    GET "/v2/teams/{team}/grants" => admin::list_grants, OrgAdmin, None;
    PUT "/v2/teams/{team}/grants" => admin::set_grant, OrgAdmin, None;
    DELETE "/v2/teams/{team}/grants/{group}" => admin::remove_grant, OrgAdmin, None;
    GET "/v2/audit-log" => admin::audit_log, OrgAdmin, None;
    // A whole backup holds every team's token hashes: org admins only.
    GET "/v2/backup" => backup::get, OrgAdmin, None;
}

impl Route {
    /// The handler's own name (`list` of `core_entities::list`).
    pub fn handler_name(&self) -> &'static str {
        self.handler
            .rsplit("::")
            .next()
            .unwrap_or(self.handler)
            .trim()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_method_and_template_once() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.method, r.template)),
                "{} {} twice",
                r.method,
                r.template
            );
        }
    }

    #[test]
    fn each_operation_once() {
        let mut seen = std::collections::HashSet::new();
        for op in ROUTES.iter().filter_map(|r| r.operation) {
            assert!(seen.insert(op), "{op} twice");
        }
    }
}
