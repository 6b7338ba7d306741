//! A client of the daemon's API: each request answered with its status,
//! headers and body (`Resp::json` parses it). `Transport` says how it
//! reaches the daemon; a bearer token goes on every request when set.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::V2;

/// How a client reaches the daemon. A new listener (HTTPS with a CA, say)
/// is a new variant and an arm in `Client::over`.
#[derive(Clone, Debug)]
pub enum Transport {
    /// The Unix socket.
    Unix(PathBuf),
    /// Plain HTTP to a base URL (`http://127.0.0.1:PORT`).
    Http(String),
    /// HTTPS to `https://HOST:PORT` at `addr`, trusting the CA in `ca_pem`
    /// (the `--api-listen` listener).
    Https {
        host: String,
        addr: std::net::SocketAddr,
        ca_pem: Vec<u8>,
    },
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Where paths are appended: `http://localhost` on the socket.
    base: String,
    /// Sent as `Authorization: Bearer …` on every request when set.
    bearer: Option<String>,
}

/// An answer.
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        self
    }
    /// Asserts the status and that the JSON body includes `expected`
    /// (`check_json`'s partial matching); returns the whole body.
    #[track_caller]
    pub fn expect_json(self, status: u16, expected: &Value) -> Value {
        let v = self.expect(status).json();
        super::check_json(&v, expected);
        v
    }
    /// The snapshot version header, as a number.
    pub fn version(&self) -> u64 {
        self.header("x-snapshot-version")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no x-snapshot-version: {:?}", self.headers))
    }
    /// The ETag without its quotes.
    pub fn etag(&self) -> String {
        self.header("etag")
            .expect("etag")
            .trim_matches('"')
            .to_string()
    }
}

/// Asserts two snapshot answers are one version with the same bytes.
#[track_caller]
pub fn assert_same_snapshot(before: &Resp, after: &Resp) {
    assert_eq!(
        before.header("x-snapshot-version"),
        after.header("x-snapshot-version"),
        "version"
    );
    assert!(before.body == after.body, "the snapshot's bytes changed");
}

impl Client {
    /// A client over `transport`, without a token.
    pub fn over(transport: Transport) -> Client {
        // reqwest (with rustls for HTTPS) wants a process-wide TLS provider,
        // whatever the transport: the daemon's own, ring.
        let _ = (*rgmerge::cluster::provider()).clone().install_default();
        let (http, base) = match transport {
            Transport::Unix(socket) => (
                reqwest::Client::builder()
                    .unix_socket(socket)
                    .build()
                    .expect("client"),
                "http://localhost".to_string(),
            ),
            Transport::Http(base) => (reqwest::Client::new(), base),
            Transport::Https { host, addr, ca_pem } => {
                use rustls::pki_types::{CertificateDer, pem::PemObject};
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(&ca_pem) {
                    roots.add(c.expect("CA PEM")).expect("CA certificate");
                }
                let tls = rustls::ClientConfig::builder_with_provider(rgmerge::cluster::provider())
                    .with_safe_default_protocol_versions()
                    .expect("TLS versions")
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let http = reqwest::Client::builder()
                    .tls_backend_preconfigured(tls)
                    .resolve(&host, addr)
                    .build()
                    .expect("client");
                (http, format!("https://{host}:{}", addr.port()))
            }
        };
        Client {
            http,
            base,
            bearer: None,
        }
    }

    /// A client of the Unix socket at `socket`.
    pub fn new(socket: &Path) -> Client {
        Client::over(Transport::Unix(socket.to_path_buf()))
    }

    /// This client, authenticating with a bearer token.
    pub fn with_bearer(mut self, token: &str) -> Client {
        self.bearer = Some(token.to_string());
        self
    }

    /// A client of the socket that authenticates with a bearer token.
    pub fn with_token(socket: &Path, token: &str) -> Client {
        Client::new(socket).with_bearer(token)
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        self.try_send(method, path, headers, body)
            .await
            .expect("request")
    }

    /// Like `send`, but a dropped connection is an `Err`, not a panic.
    pub async fn try_send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Resp, reqwest::Error> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.bearer {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await?.to_vec();
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], None).await
    }

    /// GET, asserting 200; the body as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.expect(200).json()
    }

    /// `method` with a JSON body.
    pub async fn send_json(&self, method: &str, path: &str, v: &Value) -> Resp {
        self.send(
            method,
            path,
            &[("content-type", "application/json")],
            Some(v.to_string().into_bytes()),
        )
        .await
    }

    pub async fn post_json(&self, path: &str, v: &Value) -> Resp {
        self.send_json("POST", path, v).await
    }

    pub async fn patch_json(&self, path: &str, v: &Value) -> Resp {
        self.send_json("PATCH", path, v).await
    }

    pub async fn put_json(&self, path: &str, v: &Value) -> Resp {
        self.send_json("PUT", path, v).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send("DELETE", path, &[], None).await
    }

    // ---- one line each: groups, members, configs, nodes

    /// PUTs a YAML config.
    pub async fn put_config(&self, id: &str, yaml: &str) -> Resp {
        self.send(
            "PUT",
            &format!("{V2}/{id}/config"),
            &[("content-type", "application/yaml")],
            Some(yaml.as_bytes().to_vec()),
        )
        .await
    }

    /// PUTs a JSON config.
    pub async fn put_config_json(&self, id: &str, json: &str) -> Resp {
        self.send(
            "PUT",
            &format!("{V2}/{id}/config"),
            &[("content-type", "application/json")],
            Some(json.as_bytes().to_vec()),
        )
        .await
    }

    /// Creates a group of `cluster_type`; its id.
    pub async fn create(&self, name: &str, cluster_type: &str) -> String {
        let r = self
            .post_json(V2, &json!({"name": name, "cluster_type": cluster_type}))
            .await
            .expect(201);
        r.json()["id"].as_str().expect("id").to_string()
    }

    /// Creates a standard group; its id.
    pub async fn standard(&self, name: &str) -> String {
        self.create(name, "CLUSTER_TYPE_CONTROL_PLANE").await
    }

    /// Creates a composite group; its id.
    pub async fn composite(&self, name: &str) -> String {
        self.create(name, "CLUSTER_TYPE_CONTROL_PLANE_GROUP").await
    }

    /// A composite `name` of new standard groups, each `(name, config)`:
    /// the composite is created first, then the members, which join it,
    /// then each member's config is PUT. The composite's id and the members'.
    pub async fn composite_with<const N: usize>(
        &self,
        name: &str,
        members: [(&str, &str); N],
    ) -> (String, [String; N]) {
        let comp = self.composite(name).await;
        let mut ids = Vec::new();
        for (m, _) in &members {
            ids.push(self.standard(m).await);
        }
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.add(&comp, &refs).await.expect(204);
        for ((_, config), id) in members.iter().zip(&ids) {
            self.put_config(id, config).await.expect(200);
        }
        (comp, ids.try_into().expect("N ids"))
    }

    /// A group's current config (200), as text.
    pub async fn config(&self, id: &str) -> String {
        self.get(&format!("{V2}/{id}/config"))
            .await
            .expect(200)
            .text()
    }

    /// Sets a group's labels.
    pub async fn label(&self, id: &str, labels: Value) {
        self.patch_json(&format!("{V2}/{id}"), &json!({ "labels": labels }))
            .await
            .expect(200);
    }

    pub async fn add(&self, composite: &str, members: &[&str]) -> Resp {
        self.memberships(composite, "add", members).await
    }

    pub async fn remove(&self, composite: &str, members: &[&str]) -> Resp {
        self.memberships(composite, "remove", members).await
    }

    async fn memberships(&self, composite: &str, verb: &str, members: &[&str]) -> Resp {
        let body = json!({"members": members.iter().map(|m| json!({"id": m})).collect::<Vec<_>>()});
        self.post_json(&format!("{V2}/{composite}/group-memberships/{verb}"), &body)
            .await
    }

    /// A composite's group-status (200).
    pub async fn status(&self, composite: &str) -> Value {
        self.get(&format!("{V2}/{composite}/group-status"))
            .await
            .expect(200)
            .json()
    }

    /// The served snapshot (200).
    pub async fn snapshot(&self, id: &str) -> Resp {
        self.get(&format!("{V2}/{id}/snapshot")).await.expect(200)
    }

    /// The current snapshot's hash (its ETag without quotes).
    pub async fn etag(&self, id: &str) -> String {
        self.snapshot(id).await.etag()
    }

    pub async fn heartbeat(&self, group: &str, node: &str, hash: &str) -> Resp {
        self.post_json(
            &format!("{V2}/{group}/nodes"),
            &json!({"id": node, "hostname": node, "config_hash": hash}),
        )
        .await
    }

    /// `/healthz` (200), parsed.
    pub async fn health(&self) -> Value {
        self.get("/healthz").await.expect(200).json()
    }

    /// `/metrics` (200) as text.
    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.expect(200).text()
    }

    // ---- one line each: teams, grants, tokens

    /// Creates a team with these uid and gid credentials.
    pub async fn team(&self, name: &str, uids: &[u32], gids: &[u32]) {
        self.post_json(
            "/v2/teams",
            &json!({"name": name, "uids": uids, "gids": gids}),
        )
        .await
        .expect(201);
    }

    /// Grants `team` the `role` on `group`.
    pub async fn grant(&self, team: &str, group: &str, role: &str) {
        self.put_json(
            &format!("/v2/teams/{team}/grants"),
            &json!({"group": group, "role": role}),
        )
        .await
        .expect(200);
    }

    /// Issues a token of `team` (`body`: its name, expiry…): (token, id).
    pub async fn token(&self, team: &str, body: Value) -> (String, String) {
        let r = self
            .post_json(&format!("/v2/teams/{team}/tokens"), &body)
            .await
            .expect(201)
            .json();
        (
            r["token"].as_str().expect("token").to_string(),
            r["id"].as_str().expect("id").to_string(),
        )
    }

    /// A new team holding `grants` (group id, role), and a token of it.
    pub async fn team_token(&self, team: &str, grants: &[(&str, &str)]) -> String {
        self.team(team, &[], &[]).await;
        for (group, role) in grants {
            self.grant(team, group, role).await;
        }
        self.token(team, json!({"name": "test"})).await.0
    }
}
