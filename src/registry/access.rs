//! Access control (README: Access control): teams, the credentials that identify their
//! members (Unix uids and gids, bearer tokens), and each team's role per
//! group. Every change is a `Tx` step like any other write, so it is undone
//! with the write it belongs to and made durable in the same store
//! transaction; deleting a group removes every grant on it.
//!
//! Readers check requests against an [`AccessView`]: an immutable index the
//! writer publishes after each change, so a check never waits for the writer.
//! Tokens are stored only as a blake3 hash keyed by a random per-store
//! secret; a presented token is hashed the same way, found by the first bytes
//! of its hash, and compared in constant time (`blake3::Hash` equality).
//! Page sessions are kept the same way, in their team's record: only the
//! cookie's keyed hash, the token it was exchanged for and its expiry, so a
//! session outlives a restart, is seen by every daemon on a shared store, and
//! ends with its token (revoked, expired, or its team deleted).
//! Knows nothing of HTTP.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use super::record::{GroupRole, Right, SessionRecord, TeamRecord, TokenRecord};
use super::tx::Undo;
use super::{Refusal, Registry, Result, Tx, now, now_ms};

/// Every token starts with this, so secret scanners can spot one.
pub const TOKEN_PREFIX: &str = "rgmpat_";
/// The org-admin team made at first start, holding the daemon's own uid.
pub const BOOTSTRAP_TEAM: &str = "org-admins";
pub const MAX_TEAMS: usize = 1000;
pub const MAX_TEAM_NAME: usize = 64;
pub const MAX_CREDENTIALS: usize = 256;
/// Tokens neither revoked nor expired, per team.
pub const MAX_LIVE_TOKENS: usize = 100;
pub const MAX_TOKEN_NAME: usize = 256;
/// Longest token lifetime: two years.
pub const MAX_TOKEN_LIFETIME_MS: u64 = 2 * 365 * 24 * 3600 * 1000;
/// Hex digits of a token after its prefix (32 random bytes).
const SECRET_HEX: usize = 64;
/// Page sessions kept per team; past it the oldest go first. Each sign-in
/// rewrites the team's record, so this also bounds that write.
pub const MAX_SESSIONS_PER_TEAM: usize = 200;
/// How long a page session lasts at most (less if its token expires sooner).
pub const SESSION_TTL_MS: u64 = 8 * 3600 * 1000;

/// A Unix credential of a team's members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    Uid(u32),
    Gid(u32),
}

impl std::fmt::Display for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Uid(n) => write!(f, "uid {n}"),
            Credential::Gid(n) => write!(f, "gid {n}"),
        }
    }
}

/// A request to create a team.
#[derive(Clone, Debug, Default)]
pub struct NewTeam {
    pub name: String,
    pub description: Option<String>,
    pub org_admin: bool,
    pub uids: Vec<u32>,
    pub gids: Vec<u32>,
}

/// 32 random bytes from the operating system.
pub fn new_key() -> Result<[u8; 32]> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)
        .map_err(|e| Refusal::internal(format!("no randomness from the OS: {e}")))?;
    Ok(key)
}

/// A fresh token: the prefix and 32 random bytes in hex.
pub fn new_token_secret() -> Result<String> {
    let bytes = new_key()?;
    let mut s = String::with_capacity(TOKEN_PREFIX.len() + SECRET_HEX);
    s.push_str(TOKEN_PREFIX);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    Ok(s)
}

/// Whether `token` has the shape of one of ours (checked before any hashing).
pub fn well_formed_token(token: &str) -> bool {
    token
        .strip_prefix(TOKEN_PREFIX)
        .is_some_and(|rest| rest.len() == SECRET_HEX && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn token_hash(key: &[u8; 32], token: &str) -> blake3::Hash {
    blake3::keyed_hash(key, token.as_bytes())
}

/// A session cookie's keyed hash; its key is derived from the access key, so
/// a cookie can never hash to a token's stored hash.
fn session_hash(key: &[u8; 32], cookie: &str) -> blake3::Hash {
    let session_key = blake3::derive_key("rgmerge 2026 page session cookie", key);
    blake3::keyed_hash(&session_key, cookie.as_bytes())
}

/// Whether `cookie` has the shape of a session cookie (32 bytes in hex).
pub fn well_formed_session(cookie: &str) -> bool {
    cookie.len() == SECRET_HEX && cookie.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A fresh session cookie: 32 random bytes in hex.
pub fn new_session_cookie() -> Result<String> {
    Ok(blake3::Hash::from(new_key()?).to_hex().to_string())
}

pub fn check_team_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_TEAM_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(Refusal::invalid(format!(
            "a team name is 1 to {MAX_TEAM_NAME} letters, digits, '.', '_' or '-', starting with a letter or digit"
        )))
    }
}

impl Tx<'_> {
    fn team(&self, name: &str) -> Result<&TeamRecord> {
        self.reg
            .access
            .teams
            .get(name)
            .ok_or_else(|| Refusal::not_found(format!("no team named '{name}'")))
    }

    /// Changes team `name` with `f`, recording how to undo it.
    fn change_team<R>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut TeamRecord) -> Result<R>,
    ) -> Result<R> {
        self.change_team_record(name, true, f)
    }

    /// `change_team`; `touch` sets `updated_at` (a sign-in does not: it
    /// changes no setting of the team).
    fn change_team_record<R>(
        &mut self,
        name: &str,
        touch: bool,
        f: impl FnOnce(&mut TeamRecord) -> Result<R>,
    ) -> Result<R> {
        let before = self.team(name)?.clone();
        let mut team = before.clone();
        let r = f(&mut team)?;
        if team != before {
            if touch {
                team.updated_at = now();
            }
            self.undo
                .push(Undo::Team(name.to_string(), Some(Box::new(before))));
            self.reg.access.teams.insert(name.to_string(), team);
            self.teams.insert(name.to_string());
        }
        Ok(r)
    }

    /// At least one org-admin team must keep a Unix credential, or nobody
    /// could manage access again without stopping the daemon.
    fn check_org_admin_left(&self) -> Result<()> {
        let left = self
            .reg
            .access
            .teams
            .values()
            .any(|t| t.org_admin && (!t.uids.is_empty() || !t.gids.is_empty()));
        if left {
            Ok(())
        } else {
            Err(Refusal::conflict(
                "this would leave no org-admin team with a Unix user or group: nobody could manage access any more",
            ))
        }
    }

    /// First start: the token-hash key and the `org-admins` team holding
    /// `uid` (the user running the daemon). Does nothing once bootstrapped.
    pub fn bootstrap_access(&mut self, uid: u32, key: [u8; 32]) -> Result<()> {
        if self.reg.access.key.is_some() {
            return Ok(());
        }
        self.undo.push(Undo::AccessKey(None));
        self.reg.access.key = Some(key);
        self.access_key = true;
        if !self.reg.access.teams.contains_key(BOOTSTRAP_TEAM) {
            self.create_team(NewTeam {
                name: BOOTSTRAP_TEAM.into(),
                description: Some("made at first start: the user who started the daemon".into()),
                org_admin: true,
                uids: vec![uid],
                gids: Vec::new(),
            })?;
        }
        Ok(())
    }

    pub fn create_team(&mut self, req: NewTeam) -> Result<TeamRecord> {
        check_team_name(&req.name)?;
        if let Some(d) = &req.description
            && d.chars().count() > super::MAX_DESCRIPTION
        {
            return Err(Refusal::invalid(format!(
                "`description` is longer than {} characters",
                super::MAX_DESCRIPTION
            )));
        }
        if self.reg.access.teams.contains_key(&req.name) {
            return Err(Refusal::conflict(format!(
                "a team named '{}' already exists",
                req.name
            )));
        }
        if self.reg.access.teams.len() >= MAX_TEAMS {
            return Err(Refusal::conflict(format!(
                "there are already {MAX_TEAMS} teams, the most there can be"
            )));
        }
        if req.uids.len() + req.gids.len() > MAX_CREDENTIALS {
            return Err(Refusal::invalid(format!(
                "a team has at most {MAX_CREDENTIALS} uids and gids"
            )));
        }
        let t = now();
        let team = TeamRecord {
            name: req.name.clone(),
            description: req.description.filter(|d| !d.is_empty()),
            org_admin: req.org_admin,
            uids: req.uids.into_iter().collect(),
            gids: req.gids.into_iter().collect(),
            tokens: Vec::new(),
            grants: BTreeMap::new(),
            created_at: t.clone(),
            updated_at: t,
            sessions: Vec::new(),
        };
        self.undo.push(Undo::Team(req.name.clone(), None));
        self.reg.access.teams.insert(req.name.clone(), team.clone());
        self.teams.insert(req.name);
        Ok(team)
    }

    /// Deletes a team with its credentials, tokens and grants.
    pub fn delete_team(&mut self, name: &str) -> Result<()> {
        let before = self.team(name)?.clone();
        self.undo
            .push(Undo::Team(name.to_string(), Some(Box::new(before))));
        self.reg.access.teams.remove(name);
        self.teams.insert(name.to_string());
        self.check_org_admin_left()
    }

    pub fn add_credential(&mut self, team: &str, c: Credential) -> Result<TeamRecord> {
        self.change_team(team, |t| {
            if t.uids.len() + t.gids.len() >= MAX_CREDENTIALS {
                return Err(Refusal::conflict(format!(
                    "team '{}' already has {MAX_CREDENTIALS} uids and gids",
                    t.name
                )));
            }
            match c {
                Credential::Uid(n) => t.uids.insert(n),
                Credential::Gid(n) => t.gids.insert(n),
            };
            Ok(t.clone())
        })
    }

    pub fn remove_credential(&mut self, team: &str, c: Credential) -> Result<TeamRecord> {
        let t = self.change_team(team, |t| {
            let had = match c {
                Credential::Uid(n) => t.uids.remove(&n),
                Credential::Gid(n) => t.gids.remove(&n),
            };
            if !had {
                return Err(Refusal::not_found(format!("team '{}' has no {c}", t.name)));
            }
            Ok(t.clone())
        })?;
        self.check_org_admin_left()?;
        Ok(t)
    }

    /// Stores a new token's hash (never the token). `secret` is the token
    /// as shown once to whoever asked for it.
    pub fn issue_token(
        &mut self,
        team: &str,
        name: String,
        expires_at_ms: u64,
        secret: &str,
    ) -> Result<TokenRecord> {
        let key = self
            .reg
            .access
            .key
            .ok_or_else(|| Refusal::internal("access control is not set up"))?;
        if !well_formed_token(secret) {
            return Err(Refusal::internal("a new token has the wrong shape"));
        }
        if name.chars().count() > MAX_TOKEN_NAME || name.chars().any(char::is_control) {
            return Err(Refusal::invalid(format!(
                "a token name is at most {MAX_TOKEN_NAME} printable characters"
            )));
        }
        let now = now_ms();
        if expires_at_ms <= now {
            return Err(Refusal::invalid("a token must expire in the future"));
        }
        if expires_at_ms - now > MAX_TOKEN_LIFETIME_MS {
            return Err(Refusal::invalid(
                "a token may live at most two years (63072000 seconds)",
            ));
        }
        let token = TokenRecord {
            id: Uuid::new_v4(),
            name,
            hash: token_hash(&key, secret).to_hex().to_string(),
            hint: secret[..TOKEN_PREFIX.len() + 4].to_string(),
            created_at: super::now(),
            expires_at_ms,
            revoked_at: None,
        };
        self.change_team(team, |t| {
            let live = t
                .tokens
                .iter()
                .filter(|k| k.revoked_at.is_none() && k.expires_at_ms > now)
                .count();
            if live >= MAX_LIVE_TOKENS {
                return Err(Refusal::conflict(format!(
                    "team '{}' already has {MAX_LIVE_TOKENS} live tokens: revoke some first",
                    t.name
                )));
            }
            t.tokens.push(token.clone());
            Ok(())
        })?;
        Ok(token)
    }

    pub fn revoke_token(&mut self, team: &str, id: Uuid) -> Result<TokenRecord> {
        self.change_team(team, |t| {
            let name = t.name.clone();
            let k =
                t.tokens.iter_mut().find(|k| k.id == id).ok_or_else(|| {
                    Refusal::not_found(format!("team '{name}' has no token {id}"))
                })?;
            if k.revoked_at.is_none() {
                k.revoked_at = Some(now());
            }
            let k = k.clone();
            // Its sessions would be refused from now on anyway; drop them.
            t.sessions.retain(|s| s.token_id != id);
            Ok(k)
        })
    }

    /// Signs a page session in for `team`'s live token `token_id`: stores
    /// the keyed hash of `cookie` (never the cookie), ending no later than
    /// the token. Drops the team's expired sessions and those of tokens no
    /// longer live, then the oldest past [`MAX_SESSIONS_PER_TEAM`].
    pub fn open_session(&mut self, team: &str, token_id: Uuid, cookie: &str) -> Result<u64> {
        let key = self
            .reg
            .access
            .key
            .ok_or_else(|| Refusal::internal("access control is not set up"))?;
        if !well_formed_session(cookie) {
            return Err(Refusal::internal(
                "a new session cookie has the wrong shape",
            ));
        }
        let now = now_ms();
        self.change_team_record(team, false, |t| {
            let live = |id: Uuid| {
                t.tokens
                    .iter()
                    .find(|k| k.id == id && k.revoked_at.is_none() && k.expires_at_ms > now)
                    .map(|k| k.expires_at_ms)
            };
            let token_expires = live(token_id).ok_or_else(|| {
                Refusal::conflict(format!(
                    "token {token_id} of team '{}' is no longer valid",
                    t.name
                ))
            })?;
            let kept: Vec<SessionRecord> = t
                .sessions
                .iter()
                .filter(|s| s.expires_ms > now && live(s.token_id).is_some())
                .cloned()
                .collect();
            t.sessions = kept;
            t.sessions.sort_by_key(|s| s.created_ms);
            while t.sessions.len() >= MAX_SESSIONS_PER_TEAM {
                t.sessions.remove(0);
            }
            let expires_ms = token_expires.min(now.saturating_add(SESSION_TTL_MS));
            t.sessions.push(SessionRecord {
                hash: session_hash(&key, cookie).to_hex().to_string(),
                token_id,
                created_ms: now,
                expires_ms,
            });
            Ok(expires_ms)
        })
    }

    /// Signs the session of `cookie` out; `false` if there was none.
    pub fn close_session(&mut self, cookie: &str) -> Result<bool> {
        let Some(key) = self.reg.access.key else {
            return Ok(false);
        };
        let hash = session_hash(&key, cookie).to_hex().to_string();
        let holder = self
            .reg
            .access
            .teams
            .values()
            .find(|t| t.sessions.iter().any(|s| s.hash == hash))
            .map(|t| t.name.clone());
        let Some(team) = holder else {
            return Ok(false);
        };
        self.change_team_record(&team, false, |t| {
            t.sessions.retain(|s| s.hash != hash);
            Ok(true)
        })
    }

    /// Gives `team` `role` on `group`, replacing the role it had there.
    pub fn set_grant(&mut self, team: &str, group: Uuid, role: GroupRole) -> Result<()> {
        self.reg.group(group)?;
        self.change_team(team, |t| {
            t.grants.insert(group, role);
            Ok(())
        })
    }

    pub fn remove_grant(&mut self, team: &str, group: Uuid) -> Result<()> {
        self.change_team(team, |t| {
            t.grants.remove(&group).map(|_| ()).ok_or_else(|| {
                Refusal::not_found(format!(
                    "team '{}' has no role on control plane {group}",
                    t.name
                ))
            })
        })
    }

    /// A group is gone: so is every grant on it.
    pub(super) fn drop_grants_on(&mut self, group: Uuid) {
        let holders: Vec<String> = self
            .reg
            .access
            .teams
            .values()
            .filter(|t| t.grants.contains_key(&group))
            .map(|t| t.name.clone())
            .collect();
        for name in holders {
            let _ = self.change_team(&name, |t| {
                t.grants.remove(&group);
                Ok(())
            });
        }
    }
}

/// What a presented token turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenCheck<'a> {
    Valid {
        team: &'a str,
        id: Uuid,
    },
    /// Not one of ours (or its team was deleted).
    Unknown,
    Revoked {
        team: &'a str,
        id: Uuid,
    },
    Expired {
        team: &'a str,
        id: Uuid,
    },
}

#[derive(Debug)]
struct SessionEntry {
    hash: blake3::Hash,
    team: String,
    token_id: Uuid,
    expires_ms: u64,
}

#[derive(Debug)]
struct TokenEntry {
    hash: blake3::Hash,
    team: String,
    id: Uuid,
    expires_at_ms: u64,
    revoked: bool,
}

/// An immutable index of the access state that request checks read.
#[derive(Debug, Default)]
pub struct AccessView {
    key: [u8; 32],
    teams: BTreeMap<String, TeamRecord>,
    by_uid: HashMap<u32, Vec<String>>,
    by_gid: HashMap<u32, Vec<String>>,
    /// By the first 8 bytes of the token's keyed hash (not secret: the key is).
    tokens: HashMap<[u8; 8], Vec<TokenEntry>>,
    /// Page sessions, the same way by their cookie's keyed hash.
    sessions: HashMap<[u8; 8], Vec<SessionEntry>>,
    /// What the page's form tokens are keyed with, derived from the access
    /// key: shared by every daemon of a store; `None` before bootstrap.
    form_key: Option<[u8; 32]>,
}

fn head(hash: &blake3::Hash) -> [u8; 8] {
    let mut head = [0u8; 8];
    head.copy_from_slice(&hash.as_bytes()[..8]);
    head
}

impl Registry {
    /// The access state as readers check it.
    pub fn access_view(&self) -> AccessView {
        let mut v = AccessView {
            key: self.access.key.unwrap_or([0; 32]),
            teams: self.access.teams.clone(),
            form_key: self
                .access
                .key
                .map(|k| blake3::derive_key("rgmerge 2026 page form token", &k)),
            ..AccessView::default()
        };
        for t in self.access.teams.values() {
            for uid in &t.uids {
                v.by_uid.entry(*uid).or_default().push(t.name.clone());
            }
            for gid in &t.gids {
                v.by_gid.entry(*gid).or_default().push(t.name.clone());
            }
            for k in &t.tokens {
                let Ok(hash) = blake3::Hash::from_hex(&k.hash) else {
                    continue;
                };
                let mut head = [0u8; 8];
                head.copy_from_slice(&hash.as_bytes()[..8]);
                v.tokens.entry(head).or_default().push(TokenEntry {
                    hash,
                    team: t.name.clone(),
                    id: k.id,
                    expires_at_ms: k.expires_at_ms,
                    revoked: k.revoked_at.is_some(),
                });
            }
            for s in &t.sessions {
                let Ok(hash) = blake3::Hash::from_hex(&s.hash) else {
                    continue;
                };
                v.sessions
                    .entry(head(&hash))
                    .or_default()
                    .push(SessionEntry {
                        hash,
                        team: t.name.clone(),
                        token_id: s.token_id,
                        expires_ms: s.expires_ms,
                    });
            }
        }
        v
    }

    /// Whether access control still has to be set up (first start, or a
    /// store from before it existed).
    pub fn access_needs_bootstrap(&self) -> bool {
        self.access.key.is_none()
    }
}

impl AccessView {
    /// Who a bearer token belongs to, if anyone.
    pub fn check_token(&self, token: &str, now_ms: u64) -> TokenCheck<'_> {
        if !well_formed_token(token) {
            return TokenCheck::Unknown;
        }
        let hash = token_hash(&self.key, token);
        let mut head = [0u8; 8];
        head.copy_from_slice(&hash.as_bytes()[..8]);
        let Some(entries) = self.tokens.get(&head) else {
            return TokenCheck::Unknown;
        };
        // `blake3::Hash` compares in constant time.
        let Some(e) = entries.iter().find(|e| e.hash == hash) else {
            return TokenCheck::Unknown;
        };
        let (team, id) = (e.team.as_str(), e.id);
        if e.revoked {
            TokenCheck::Revoked { team, id }
        } else if e.expires_at_ms <= now_ms {
            TokenCheck::Expired { team, id }
        } else {
            TokenCheck::Valid { team, id }
        }
    }

    /// The team and token of the page session whose cookie is `cookie`,
    /// while the session and its token hold (not revoked, not expired, its
    /// team not deleted).
    pub fn check_session(&self, cookie: &str, now_ms: u64) -> Option<(&str, Uuid)> {
        if !well_formed_session(cookie) {
            return None;
        }
        let hash = session_hash(&self.key, cookie);
        // `blake3::Hash` compares in constant time.
        let s = self
            .sessions
            .get(&head(&hash))?
            .iter()
            .find(|s| s.hash == hash)?;
        let token_live = self.teams.get(&s.team).is_some_and(|t| {
            t.tokens
                .iter()
                .any(|k| k.id == s.token_id && k.revoked_at.is_none() && k.expires_at_ms > now_ms)
        });
        (s.expires_ms > now_ms && token_live).then_some((s.team.as_str(), s.token_id))
    }

    /// The key the page's form (CSRF) tokens are made with, once access
    /// control is set up.
    pub fn form_key(&self) -> Option<[u8; 32]> {
        self.form_key
    }

    /// The teams a Unix peer acts as: those naming its uid or its gid.
    pub fn teams_of_peer(&self, uid: u32, gid: u32) -> Vec<String> {
        let mut out: BTreeSet<&String> = BTreeSet::new();
        out.extend(self.by_uid.get(&uid).into_iter().flatten());
        out.extend(self.by_gid.get(&gid).into_iter().flatten());
        out.into_iter().cloned().collect()
    }

    pub fn team(&self, name: &str) -> Option<&TeamRecord> {
        self.teams.get(name)
    }

    pub fn teams(&self) -> impl Iterator<Item = &TeamRecord> {
        self.teams.values()
    }

    pub fn is_org_admin(&self, teams: &[String]) -> bool {
        teams
            .iter()
            .any(|t| self.teams.get(t).is_some_and(|t| t.org_admin))
    }

    /// The roles `teams` hold on `group`, strongest first, without repeats.
    pub fn roles(&self, teams: &[String], group: Uuid) -> Vec<GroupRole> {
        let mut roles: Vec<GroupRole> = teams
            .iter()
            .filter_map(|t| self.teams.get(t)?.grants.get(&group).copied())
            .collect();
        roles.sort_by_key(|r| match r {
            GroupRole::Admin => 0,
            GroupRole::Editor => 1,
            GroupRole::Viewer => 2,
            GroupRole::Node => 3,
        });
        roles.dedup();
        roles
    }

    /// Whether `teams` together hold `right` on `group` (org admins hold all).
    pub fn allows(&self, teams: &[String], right: Right, group: Uuid) -> bool {
        self.is_org_admin(teams) || self.roles(teams, group).iter().any(|r| r.allows(right))
    }

    /// Every group `teams` hold some grant on, with the roles.
    pub fn grants_of(&self, teams: &[String]) -> BTreeMap<Uuid, Vec<GroupRole>> {
        let mut out: BTreeMap<Uuid, Vec<GroupRole>> = BTreeMap::new();
        for t in teams.iter().filter_map(|t| self.teams.get(t)) {
            for (g, r) in &t.grants {
                let roles = out.entry(*g).or_default();
                if !roles.contains(r) {
                    roles.push(*r);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intern::Interner;
    use crate::registry::{Mode, Settings, transact};
    use std::sync::Arc;

    fn reg() -> Registry {
        let mut reg = Registry::new(Arc::new(Interner::new()), Settings::default());
        transact(
            &mut reg,
            Mode::Apply,
            |_| Ok(()),
            |tx| tx.bootstrap_access(1000, [7; 32]),
        )
        .expect("bootstrap");
        reg
    }

    #[test]
    fn roles_hold_exactly_their_rights() {
        use GroupRole::*;
        use Right::*;
        let table = [
            (Viewer, [true, true, false, false, false]),
            (Editor, [true, true, false, true, false]),
            (Admin, [true, true, false, true, true]),
            (Node, [false, true, true, false, false]),
        ];
        for (role, rights) in table {
            for (right, want) in [View, ReadSnapshot, Heartbeat, Edit, Administer]
                .into_iter()
                .zip(rights)
            {
                assert_eq!(role.allows(right), want, "{role:?} {right:?}");
            }
        }
    }

    #[test]
    fn tokens_are_found_by_hash_and_checked() {
        let mut reg = reg();
        let secret = new_token_secret().expect("random");
        let far = now_ms() + 3_600_000;
        let (tok, _) = transact(
            &mut reg,
            Mode::Apply,
            |_| Ok(()),
            |tx| {
                tx.create_team(NewTeam {
                    name: "blue".into(),
                    ..NewTeam::default()
                })?;
                tx.issue_token("blue", "ci".into(), far, &secret)
            },
        )
        .expect("issue");
        assert!(!tok.hash.contains(&secret[7..]));
        let v = reg.access_view();
        assert_eq!(
            v.check_token(&secret, now_ms()),
            TokenCheck::Valid {
                team: "blue",
                id: tok.id
            }
        );
        assert_eq!(
            v.check_token(&secret, far + 1),
            TokenCheck::Expired {
                team: "blue",
                id: tok.id
            }
        );
        let other = new_token_secret().expect("random");
        assert_eq!(v.check_token(&other, now_ms()), TokenCheck::Unknown);
        assert_eq!(v.check_token("rgmpat_zz", now_ms()), TokenCheck::Unknown);
        transact(
            &mut reg,
            Mode::Apply,
            |_| Ok(()),
            |tx| tx.revoke_token("blue", tok.id),
        )
        .expect("revoke");
        assert!(matches!(
            reg.access_view().check_token(&secret, now_ms()),
            TokenCheck::Revoked { .. }
        ));
        transact(
            &mut reg,
            Mode::Apply,
            |_| Ok(()),
            |tx| tx.delete_team("blue"),
        )
        .expect("delete");
        assert_eq!(
            reg.access_view().check_token(&secret, now_ms()),
            TokenCheck::Unknown
        );
    }

    #[test]
    fn sessions_are_stored_hashed_bounded_and_end_with_their_token() {
        let mut reg = reg();
        let far = now_ms() + 3_600_000;
        let (a, b) = (
            new_token_secret().expect("random"),
            new_token_secret().expect("random"),
        );
        let ((ta, tb), _) = transact(
            &mut reg,
            Mode::Apply,
            |_| Ok(()),
            |tx| {
                tx.create_team(NewTeam {
                    name: "blue".into(),
                    ..NewTeam::default()
                })?;
                Ok((
                    tx.issue_token("blue", "a".into(), far, &a)?,
                    tx.issue_token("blue", "b".into(), far, &b)?,
                ))
            },
        )
        .expect("issue");
        let open = |reg: &mut Registry, id: Uuid| {
            let cookie = new_session_cookie().expect("random");
            transact(
                reg,
                Mode::Apply,
                |_| Ok(()),
                |tx| tx.open_session("blue", id, &cookie),
            )
            .expect("sign in");
            cookie
        };
        let ca = open(&mut reg, ta.id);
        let cb = open(&mut reg, tb.id);
        let v = reg.access_view();
        assert_eq!(v.check_session(&ca, now_ms()), Some(("blue", ta.id)));
        assert_eq!(v.check_session(&cb, now_ms()), Some(("blue", tb.id)));
        assert_eq!(v.check_session(&ca, far + 1), None, "not past its token");
        let team = v.team("blue").expect("team");
        assert!(team.sessions.iter().all(|s| s.hash != ca && s.hash != cb));
        // Revoking a token ends (and drops) its sessions only.
        transact(
            &mut reg,
            Mode::Apply,
            |_| Ok(()),
            |tx| tx.revoke_token("blue", tb.id),
        )
        .expect("revoke");
        let v = reg.access_view();
        assert_eq!(v.check_session(&cb, now_ms()), None);
        assert!(v.check_session(&ca, now_ms()).is_some());
        assert_eq!(v.team("blue").expect("team").sessions.len(), 1);
        // No session for a revoked token; signing out ends one.
        let r = transact(
            &mut reg,
            Mode::Apply,
            |_| Ok(()),
            |tx| tx.open_session("blue", tb.id, &new_session_cookie()?),
        );
        assert!(r.is_err());
        let (closed, _) = transact(
            &mut reg,
            Mode::Apply,
            |_| Ok(()),
            |tx| tx.close_session(&ca),
        )
        .expect("sign out");
        assert!(closed);
        assert_eq!(reg.access_view().check_session(&ca, now_ms()), None);
        // Bounded per team: the oldest go first.
        let first = open(&mut reg, ta.id);
        for _ in 0..MAX_SESSIONS_PER_TEAM {
            open(&mut reg, ta.id);
        }
        let v = reg.access_view();
        assert_eq!(
            v.team("blue").expect("team").sessions.len(),
            MAX_SESSIONS_PER_TEAM
        );
        assert_eq!(v.check_session(&first, now_ms()), None);
    }

    #[test]
    fn the_last_org_admin_credential_stays() {
        let mut reg = reg();
        let r = transact(
            &mut reg,
            Mode::Apply,
            |_| Ok(()),
            |tx| tx.remove_credential(BOOTSTRAP_TEAM, Credential::Uid(1000)),
        );
        assert!(r.is_err());
        let r = transact(
            &mut reg,
            Mode::Apply,
            |_| Ok(()),
            |tx| tx.delete_team(BOOTSTRAP_TEAM),
        );
        assert!(r.is_err());
        assert!(
            reg.access_view()
                .is_org_admin(&[BOOTSTRAP_TEAM.to_string()])
        );
        assert_eq!(
            reg.access_view().teams_of_peer(1000, 5),
            vec![BOOTSTRAP_TEAM]
        );
    }

    #[test]
    fn deleting_a_group_drops_its_grants_and_a_refused_write_keeps_them() {
        let mut reg = reg();
        let (id, _) = transact(
            &mut reg,
            Mode::Apply,
            |_| Ok(()),
            |tx| {
                let g = tx.create_group(crate::registry::NewGroup {
                    name: "g".into(),
                    ..Default::default()
                })?;
                tx.create_team(NewTeam {
                    name: "blue".into(),
                    ..NewTeam::default()
                })?;
                tx.set_grant("blue", g.id, GroupRole::Editor)?;
                Ok(g.id)
            },
        )
        .expect("setup");
        let blue = ["blue".to_string()];
        assert!(reg.access_view().allows(&blue, Right::Edit, id));
        // Refused in the same transaction: the grant survives.
        let r = transact(
            &mut reg,
            Mode::Apply,
            |_| Ok(()),
            |tx| {
                tx.delete_group(id)?;
                Err::<(), _>(Refusal::invalid("no"))
            },
        );
        assert!(r.is_err());
        assert!(reg.access_view().allows(&blue, Right::Edit, id));
        let (_, effects) =
            transact(&mut reg, Mode::Apply, |_| Ok(()), |tx| tx.delete_group(id)).expect("delete");
        assert!(effects.access_changed);
        assert!(!reg.access_view().allows(&blue, Right::View, id));
    }
}
