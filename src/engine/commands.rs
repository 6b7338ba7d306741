//! The commands: each typed write the server and the cluster call (run
//! through the writer), the reads they answer from published views without
//! it, heartbeats, kept versions and shutdown.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;
use uuid::Uuid;

use super::{Arriving, Backend, Engine, Writer};
use crate::config::Format;
use crate::intern::Interner;
use crate::member::{Member, MemberInfo};
use crate::registry::record::Blob;
use crate::registry::{
    AccessView, Beat, ConfigWrite, Credential, DpCertificate, GroupMeta, GroupRole, GroupUpdate,
    GroupView, Mode, NewCertificate, NewGroup, NewTeam, Node, NodeReport, PinOutcome, Published,
    Refusal, TeamRecord, TokenRecord, assemble_version, kept_range, member_refusal,
    new_session_cookie, new_token_secret, now_ms,
};
use crate::report::Report;

/// Old versions kept assembled for `?version=` reads and pins.
pub(super) const ASSEMBLED_CACHE: usize = 8;

impl Engine {
    /// The view of a group that a write just changed (published before the
    /// write's answer).
    pub(super) fn written(&self, id: Uuid) -> Result<Arc<GroupView>, Refusal> {
        self.view(id)
            .ok_or_else(|| Refusal::not_found(format!("no control plane with id {id}")))
    }

    pub async fn create_group(&self, req: NewGroup) -> Result<Arc<GroupView>, Refusal> {
        let meta: GroupMeta = self
            .write(Mode::Apply, move |tx| tx.create_group(req))
            .await?;
        self.written(meta.id)
    }

    pub async fn update_group(
        &self,
        id: Uuid,
        req: GroupUpdate,
    ) -> Result<Arc<GroupView>, Refusal> {
        self.write(Mode::Apply, move |tx| tx.update_group(id, req))
            .await?;
        self.written(id)
    }

    pub async fn delete_group(&self, id: Uuid) -> Result<(), Refusal> {
        self.write(Mode::Apply, move |tx| tx.delete_group(id)).await
    }

    /// Adds members to a composite; the composite's report after the change.
    pub async fn add_members(
        &self,
        composite: Uuid,
        members: Vec<Uuid>,
        mode: Mode,
    ) -> Result<Report, Refusal> {
        self.write(mode, move |tx| tx.add_members(composite, &members))
            .await
    }

    pub async fn remove_members(
        &self,
        composite: Uuid,
        members: Vec<Uuid>,
        mode: Mode,
    ) -> Result<Report, Refusal> {
        self.write(mode, move |tx| tx.remove_members(composite, &members))
            .await
    }

    /// Makes `members` the composite's exact member list; its report after.
    pub async fn set_members(
        &self,
        composite: Uuid,
        members: Vec<Uuid>,
        mode: Mode,
    ) -> Result<Report, Refusal> {
        self.write(mode, move |tx| tx.set_members(composite, &members))
            .await
    }

    /// Pins a data plane client certificate to a group (a composite too).
    pub async fn add_certificate(
        &self,
        group: Uuid,
        cert: NewCertificate,
    ) -> Result<DpCertificate, Refusal> {
        self.write(Mode::Apply, move |tx| tx.add_certificate(group, cert))
            .await
    }

    pub async fn update_certificate(
        &self,
        group: Uuid,
        id: Uuid,
        cert: NewCertificate,
    ) -> Result<DpCertificate, Refusal> {
        self.write(Mode::Apply, move |tx| {
            tx.update_certificate(group, id, cert)
        })
        .await
    }

    pub async fn delete_certificate(&self, group: Uuid, id: Uuid) -> Result<(), Refusal> {
        self.write(Mode::Apply, move |tx| tx.delete_certificate(group, id))
            .await
    }

    /// A heartbeat, answered without the writer: the report goes into the
    /// group's node table at once and into the store with the next batch
    /// of node reports (within a second: `main_loop::NODE_INTERVAL`). Only
    /// while a membership change of the group is in flight does it go
    /// through the writer, which runs it once that change is settled.
    pub async fn heartbeat(&self, id: Uuid, report: NodeReport) -> Result<Node, Refusal> {
        let view = self
            .view(id)
            .ok_or_else(|| Refusal::not_found(format!("no control plane with id {id}")))?;
        if view.standard().is_some_and(|s| !s.composites.is_empty()) {
            return Err(member_refusal(&view.meta.name));
        }
        let report = report.check()?;
        let beat = view.nodes.beat(id, &view.meta.name, &report, now_ms());
        let beat = match beat {
            Beat::Settling => {
                // Between batches nothing is in flight: the join is settled.
                self.submit(move |w| match w.reg.group(id) {
                    Ok(g) => g.nodes.beat(id, &g.meta.name, &report, now_ms()),
                    Err(e) => Beat::Refused(e),
                })
                .await?
            }
            done => done,
        };
        match beat {
            Beat::Done(node) => {
                self.shared
                    .beats
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                crate::metrics::heartbeat();
                self.shared.changes.send_modify(|n| *n = n.wrapping_add(1));
                Ok(node)
            }
            Beat::Refused(e) => Err(e),
            Beat::Settling => Err(Refusal::internal(
                "a membership change of this control plane did not settle; try again",
            )),
        }
    }

    /// (heartbeats taken, heartbeats whose reports are in the store): once
    /// the second reaches a value the first had, every heartbeat answered
    /// before is durable.
    pub fn heartbeats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::SeqCst;
        (
            self.shared.beats.load(SeqCst),
            self.shared.beats_stored.load(SeqCst),
        )
    }

    pub async fn delete_node(&self, id: Uuid, node: String) -> Result<(), Refusal> {
        self.write(Mode::Apply, move |tx| tx.delete_node(id, &node))
            .await
    }

    /// Parses and validates a member config off the writer, then applies it
    /// (or, for an invalid one, answers its errors and changes nothing).
    /// `content_type` picks the syntax; without one the bytes are sniffed.
    /// With `expected`, the write applies only if the group's config is
    /// still the one with that hash (a read-modify-write, such as one
    /// entity's change, must not lose a write that came in between).
    pub async fn put_config(
        &self,
        id: Uuid,
        bytes: Vec<u8>,
        content_type: Option<&str>,
        mode: Mode,
        expected: Option<String>,
    ) -> Result<ConfigWrite, Refusal> {
        let format = Format::from_content_type(content_type, &bytes);
        let view = self.written(id)?;
        let arriving = Arriving::new(&self.shared);
        let info = view.meta.member_info();
        // The registry's interner: it is replaced when compacted, and a member
        // built with an older one (or under an old name) is rebuilt by the writer.
        let interner = self.shared_interner();
        let target = self.shared.settings.kong.clone();
        // The semaphore is never closed, so this always gets a permit. It
        // is held for the build only: writes waiting for their commit must
        // not keep others from joining the batch.
        let permit = self.builds.acquire().await.ok();
        let (member, bytes) = tokio::task::spawn_blocking(move || {
            let m = Member::build_for(info, &bytes, format, &interner, &target);
            (m, bytes)
        })
        .await
        .map_err(|e| Refusal::internal(format!("config validation failed to run: {e}")))?;
        drop(permit);
        let blob = Blob { format, bytes };
        self.write_arrived(
            mode,
            move |tx| match &expected {
                Some(hash) => tx.put_config_if(id, blob, member, hash),
                None => tx.put_config(id, blob, member),
            },
            Some(arriving),
        )
        .await
    }

    /// Kept version `version` of group `id`, exactly as it was published:
    /// the served snapshot if it is that version, else assembled from its
    /// sources' blobs off the writer (hash checked) and cached. Not kept: a
    /// not-found refusal naming the kept range.
    pub async fn snapshot_at(&self, id: Uuid, version: u64) -> Result<Arc<Published>, Refusal> {
        let view = self.written(id)?;
        let served = self.snapshot(id).unwrap_or_else(|| view.snapshot.clone());
        if served.version == version {
            return Ok(served);
        }
        let entry = view
            .history
            .iter()
            .find(|e| e.version == version)
            .cloned()
            .ok_or_else(|| {
                let (oldest, newest) = kept_range(&view.history);
                Refusal::not_found(format!(
                    "version {version} of '{}' is not kept: the kept versions are {oldest} to {newest}",
                    view.meta.name
                ))
            })?;
        // The served content under another number (a pin, or a version whose
        // bytes came back): no need to assemble it.
        if served.body.hash() == entry.hash && served.sources == entry.sources {
            return Ok(Arc::new(Published {
                version,
                published_ms: served.published_ms,
                body: served.body.clone(),
                deck: served.deck.clone(),
                sources: entry.sources.clone(),
                provenance: served.provenance.clone(),
            }));
        }
        let cached = self
            .shared
            .assembled
            .lock()
            .iter()
            .find(|(g, v, p)| *g == id && *v == version && p.body.hash() == entry.hash)
            .map(|(_, _, p)| p.clone());
        if let Some(p) = cached {
            return Ok(p);
        }
        let hashes: Vec<String> = entry.sources.iter().map(|(_, h)| h.clone()).collect();
        let blobs = self.submit(move |w| w.blobs(&hashes)).await??;
        let infos: HashMap<Uuid, MemberInfo> = entry
            .sources
            .iter()
            .filter_map(|(m, _)| self.view(*m))
            .map(|v| (v.meta.id, v.meta.member_info()))
            .collect();
        let _permit = self.builds.acquire().await.ok();
        let published = tokio::task::spawn_blocking(move || {
            assemble_version(
                entry.version,
                &entry.hash,
                &entry.sources,
                |h| blobs.get(h),
                |m| {
                    infos
                        .get(&m)
                        .cloned()
                        .unwrap_or_else(|| MemberInfo::unnamed(m))
                },
            )
        })
        .await
        .map_err(|e| Refusal::internal(format!("assembling the version failed to run: {e}")))?
        .map_err(|e| {
            tracing::error!(group = %id, version, error = %e, "a kept version can't be assembled");
            Refusal::internal(e)
        })?;
        let published = Arc::new(published);
        let mut cache = self.shared.assembled.lock();
        cache.retain(|(g, v, _)| !(*g == id && *v == version));
        cache.push_back((id, version, published.clone()));
        while cache.len() > ASSEMBLED_CACHE {
            cache.pop_front();
        }
        Ok(published)
    }

    /// Pins group `id` to its kept `version` (see `registry::history`).
    pub async fn pin(&self, id: Uuid, version: u64) -> Result<PinOutcome, Refusal> {
        let pinned = self.snapshot_at(id, version).await?;
        self.write(Mode::Apply, move |tx| tx.pin(id, version, &pinned))
            .await
    }

    /// Unpins group `id`: its current merge is served again.
    pub async fn unpin(&self, id: Uuid) -> Result<PinOutcome, Refusal> {
        self.write(Mode::Apply, move |tx| tx.unpin(id)).await
    }
}

impl Engine {
    /// The access state request checks read, without touching the writer.
    pub fn access(&self) -> Arc<AccessView> {
        self.shared.access.read().clone()
    }

    pub async fn create_team(&self, req: NewTeam) -> Result<TeamRecord, Refusal> {
        self.write(Mode::Apply, move |tx| tx.create_team(req)).await
    }

    pub async fn delete_team(&self, name: String) -> Result<(), Refusal> {
        self.write(Mode::Apply, move |tx| tx.delete_team(&name))
            .await
    }

    pub async fn add_credential(&self, team: String, c: Credential) -> Result<TeamRecord, Refusal> {
        self.write(Mode::Apply, move |tx| tx.add_credential(&team, c))
            .await
    }

    pub async fn remove_credential(
        &self,
        team: String,
        c: Credential,
    ) -> Result<TeamRecord, Refusal> {
        self.write(Mode::Apply, move |tx| tx.remove_credential(&team, c))
            .await
    }

    /// A new token for `team`: its record, and the token itself, which is
    /// never stored and must be shown to the caller once.
    pub async fn issue_token(
        &self,
        team: String,
        name: String,
        expires_at_ms: u64,
    ) -> Result<(TokenRecord, String), Refusal> {
        let secret = new_token_secret()?;
        self.write(Mode::Apply, move |tx| {
            let rec = tx.issue_token(&team, name, expires_at_ms, &secret)?;
            Ok((rec, secret))
        })
        .await
    }

    pub async fn revoke_token(&self, team: String, id: Uuid) -> Result<TokenRecord, Refusal> {
        self.write(Mode::Apply, move |tx| tx.revoke_token(&team, id))
            .await
    }

    /// Signs a page session in for `team`'s token `token_id`: a write, made
    /// durable (and on PostgreSQL logged for every daemon) before it returns
    /// the new cookie, which is never stored, and the session's expiry.
    pub async fn open_session(
        &self,
        team: String,
        token_id: Uuid,
    ) -> Result<(String, u64), Refusal> {
        let cookie = new_session_cookie()?;
        self.write(Mode::Apply, move |tx| {
            let expires_ms = tx.open_session(&team, token_id, &cookie)?;
            Ok((cookie, expires_ms))
        })
        .await
    }

    /// Signs the page session of `cookie` out, everywhere.
    pub async fn close_session(&self, cookie: String) -> Result<bool, Refusal> {
        self.write(Mode::Apply, move |tx| tx.close_session(&cookie))
            .await
    }

    pub async fn set_grant(
        &self,
        team: String,
        group: Uuid,
        role: GroupRole,
    ) -> Result<(), Refusal> {
        self.write(Mode::Apply, move |tx| tx.set_grant(&team, group, role))
            .await
    }

    pub async fn remove_grant(&self, team: String, group: Uuid) -> Result<(), Refusal> {
        self.write(Mode::Apply, move |tx| tx.remove_grant(&team, group))
            .await
    }
}

impl Engine {
    /// At shutdown: makes every queued audit entry and node report durable,
    /// then closes the store cleanly (a store left open at exit is verified
    /// page by page at the next start-up). Later writes are refused.
    pub async fn close(&self) {
        let _ = self
            .submit(|w| {
                w.shared.audit.pending.lock().urgent = true;
                w.flush_audit(true);
                w.flush_nodes(true);
                w.closed = true;
                // The redb file is closed; the shared store's connections
                // go with the writer.
                if matches!(w.backend, Backend::Redb(_)) {
                    w.backend = Backend::Memory;
                }
            })
            .await;
    }

    pub(super) fn shared_interner(&self) -> Arc<Interner> {
        self.shared.interner.read().clone()
    }

    /// One group as readers see it, without touching the writer.
    pub fn view(&self, id: Uuid) -> Option<Arc<GroupView>> {
        self.shared.views.get(&id).map(|v| v.clone())
    }

    /// Every group, in no particular order.
    pub fn views(&self) -> Vec<Arc<GroupView>> {
        self.shared.views.iter().map(|v| v.clone()).collect()
    }

    /// How recently a node must have been seen to count as active.
    pub fn active_window_ms(&self) -> u64 {
        self.shared.settings.active_window_ms
    }

    /// The Kong Gateway configs are checked for.
    pub fn kong_target(&self) -> crate::config::KongTarget {
        self.shared.settings.kong.clone()
    }

    /// The group's current snapshot, without touching the writer.
    pub fn snapshot(&self, id: Uuid) -> Option<Arc<Published>> {
        self.shared.snapshots.get(&id).map(|s| s.clone())
    }

    /// Wakes when the group publishes a new version.
    pub fn subscribe(&self, id: Uuid) -> Option<watch::Receiver<u64>> {
        self.shared.watchers.get(&id).map(|w| w.subscribe())
    }

    /// Wakes after any publish that changed what readers see (a snapshot, a
    /// view — nodes included — or a deleted group); the value counts them.
    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }
}

impl Writer {
    /// Config blobs by hash: the registry's current configs, else the store.
    pub(super) fn blobs(&self, hashes: &[String]) -> Result<HashMap<String, Blob>, Refusal> {
        let mut out = HashMap::new();
        for h in hashes {
            if out.contains_key(h) {
                continue;
            }
            let blob = match self.reg.config_blob(h) {
                Some(b) => Some(b),
                None => match &self.backend {
                    Backend::Redb(s) => s
                        .blob(h)
                        .map_err(|e| Refusal::storage(format!("reading config blob {h}: {e}")))?,
                    Backend::Postgres(pg) => pg
                        .store
                        .blob(h)
                        .map_err(|e| Refusal::storage(format!("reading config blob {h}: {e}")))?,
                    Backend::Memory => None,
                },
            };
            let blob = blob.ok_or_else(|| {
                Refusal::internal(format!("config blob {h} of a kept version is missing"))
            })?;
            out.insert(h.clone(), blob);
        }
        Ok(out)
    }
}
