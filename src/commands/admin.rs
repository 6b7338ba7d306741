//! `rgmerge admin`: manage teams, their credentials, tokens and grants, and
//! read the audit log, by talking to the daemon over its socket as the
//! calling Unix user (or with a bearer token). Only org admins may.

use std::path::PathBuf;

use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct AdminOptions {
    /// The daemon's socket.
    pub socket: PathBuf,
    /// A bearer token; without one the daemon knows the caller by its Unix uid.
    pub token: Option<String>,
    pub action: AdminAction,
}

/// One thing to do; each is one request.
#[derive(Debug, Clone)]
pub enum AdminAction {
    Whoami,
    ListTeams,
    CreateTeam {
        name: String,
        description: Option<String>,
        org_admin: bool,
        uids: Vec<u32>,
        gids: Vec<u32>,
    },
    ShowTeam {
        team: String,
    },
    DeleteTeam {
        team: String,
    },
    AddUid {
        team: String,
        uid: u32,
    },
    AddGid {
        team: String,
        gid: u32,
    },
    RemoveUid {
        team: String,
        uid: u32,
    },
    RemoveGid {
        team: String,
        gid: u32,
    },
    IssueToken {
        team: String,
        name: String,
        expires_in_days: Option<u64>,
    },
    ListTokens {
        team: String,
    },
    RevokeToken {
        team: String,
        id: String,
    },
    ListGrants {
        team: String,
    },
    /// `group` is a control plane id or name.
    SetGrant {
        team: String,
        group: String,
        role: String,
    },
    RemoveGrant {
        team: String,
        group: String,
    },
    Audit {
        group: Option<String>,
        team: Option<String>,
        since: Option<String>,
        until: Option<String>,
        before: Option<u64>,
        limit: Option<usize>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("daemon: {0}")]
    Daemon(String),
    /// The daemon answered with an error status.
    #[error("{status}: {detail}")]
    Refused { status: u16, detail: String },
}

/// A path segment, percent-encoded.
fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn request(action: &AdminAction) -> (&'static str, String, Option<Value>) {
    use AdminAction::*;
    let team = |t: &str| format!("/v2/teams/{}", seg(t));
    match action {
        Whoami => ("GET", "/v2/me".into(), None),
        ListTeams => ("GET", "/v2/teams".into(), None),
        CreateTeam {
            name,
            description,
            org_admin,
            uids,
            gids,
        } => (
            "POST",
            "/v2/teams".into(),
            Some(
                json!({"name": name, "description": description, "org_admin": org_admin, "uids": uids, "gids": gids}),
            ),
        ),
        ShowTeam { team: t } => ("GET", team(t), None),
        DeleteTeam { team: t } => ("DELETE", team(t), None),
        AddUid { team: t, uid } => (
            "POST",
            format!("{}/credentials", team(t)),
            Some(json!({"uid": uid})),
        ),
        AddGid { team: t, gid } => (
            "POST",
            format!("{}/credentials", team(t)),
            Some(json!({"gid": gid})),
        ),
        RemoveUid { team: t, uid } => {
            ("DELETE", format!("{}/credentials/uid:{uid}", team(t)), None)
        }
        RemoveGid { team: t, gid } => {
            ("DELETE", format!("{}/credentials/gid:{gid}", team(t)), None)
        }
        IssueToken {
            team: t,
            name,
            expires_in_days,
        } => {
            let mut body = json!({"name": name});
            if let (Some(d), Some(o)) = (expires_in_days, body.as_object_mut()) {
                o.insert(
                    "expires_in_seconds".into(),
                    json!(d.saturating_mul(24 * 3600)),
                );
            }
            ("POST", format!("{}/tokens", team(t)), Some(body))
        }
        ListTokens { team: t } => ("GET", format!("{}/tokens", team(t)), None),
        RevokeToken { team: t, id } => ("DELETE", format!("{}/tokens/{}", team(t), seg(id)), None),
        ListGrants { team: t } => ("GET", format!("{}/grants", team(t)), None),
        SetGrant {
            team: t,
            group,
            role,
        } => (
            "PUT",
            format!("{}/grants", team(t)),
            Some(json!({"group": group, "role": role})),
        ),
        RemoveGrant { team: t, group } => {
            ("DELETE", format!("{}/grants/{}", team(t), seg(group)), None)
        }
        Audit {
            group,
            team,
            since,
            until,
            before,
            limit,
        } => {
            let mut q: Vec<(&str, String)> = Vec::new();
            for (k, v) in [
                ("group", group),
                ("team", team),
                ("since", since),
                ("until", until),
            ] {
                if let Some(v) = v {
                    q.push((k, v.clone()));
                }
            }
            if let Some(b) = before {
                q.push(("before", b.to_string()));
            }
            if let Some(l) = limit {
                q.push(("page[size]", l.to_string()));
            }
            let qs = serde_urlencoded::to_string(&q).unwrap_or_default();
            let path = if qs.is_empty() {
                "/v2/audit-log".to_string()
            } else {
                format!("/v2/audit-log?{qs}")
            };
            ("GET", path, None)
        }
    }
}

/// Runs one action; the daemon's JSON answer (`null` for "204 No Content").
pub fn run(opts: AdminOptions) -> Result<Value, AdminError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AdminError::Daemon(e.to_string()))?;
    runtime.block_on(async move {
        let client = reqwest::Client::builder()
            .unix_socket(opts.socket.clone())
            .build()
            .map_err(|e| AdminError::Daemon(e.to_string()))?;
        let (method, path, body) = request(&opts.action);
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| AdminError::Daemon(e.to_string()))?;
        let mut req = client.request(method, format!("http://localhost{path}"));
        if let Some(t) = &opts.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| {
            AdminError::Daemon(format!(
                "can't reach the daemon at {}: {e}",
                opts.socket.display()
            ))
        })?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| AdminError::Daemon(e.to_string()))?;
        let v: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if (200..300).contains(&status) {
            Ok(v)
        } else {
            let detail = v["detail"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            Err(AdminError::Refused { status, detail })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_built_as_the_api_expects() {
        let (m, p, b) = request(&AdminAction::RemoveGrant {
            team: "blue".into(),
            group: "my group".into(),
        });
        assert_eq!(
            (m, p.as_str(), b),
            ("DELETE", "/v2/teams/blue/grants/my%20group", None)
        );
        let (_, p, _) = request(&AdminAction::Audit {
            group: None,
            team: Some("blue".into()),
            since: None,
            until: None,
            before: Some(9),
            limit: Some(5),
        });
        assert_eq!(p, "/v2/audit-log?team=blue&before=9&page%5Bsize%5D=5");
        let (_, _, b) = request(&AdminAction::IssueToken {
            team: "blue".into(),
            name: "ci".into(),
            expires_in_days: Some(2),
        });
        assert_eq!(b, Some(json!({"name": "ci", "expires_in_seconds": 172800})));
    }
}
