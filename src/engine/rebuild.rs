//! After an upgrade: the stored snapshots served at once from members
//! thawed under the binary that froze them, while the writer's first job
//! rebuilds every member in parallel and swaps the rebuilt registry in.
//! Writes queue behind that job (the writer runs one job at a time), so
//! none is applied to a stale member, lost or reordered; reads never wait.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde::Serialize;

use super::{Backend, Engine, Writer};
use crate::registry::{Registry, RestoreOptions};

/// Test hook: the rebuild waits until this file exists, so a test sees the
/// daemon serving while it rebuilds without racing it.
const GATE_ENV: &str = "RGMERGE_TEST_REBUILD_GATE";

/// Progress of the rebuild after an upgrade, for `/healthz`.
#[derive(Default)]
pub(super) struct Rebuild {
    /// Members to rebuild; 0: no rebuild since start-up.
    of: AtomicUsize,
    done: AtomicUsize,
    finished: AtomicBool,
    failed: parking_lot::Mutex<Option<String>>,
}

/// What `/healthz` says of a rebuild.
#[derive(Clone, Debug, Serialize)]
pub struct RebuildStatus {
    /// `rebuilding`, `rebuilt` or `failed`.
    pub state: &'static str,
    pub done: usize,
    pub of: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Engine {
    /// The rebuild of members after an upgrade, if this start-up had one.
    pub fn rebuild_status(&self) -> Option<RebuildStatus> {
        let r = &self.shared.rebuild;
        let of = r.of.load(Ordering::Acquire);
        if of == 0 {
            return None;
        }
        let error = r.failed.lock().clone();
        let state = match (&error, r.finished.load(Ordering::Acquire)) {
            (Some(_), _) => "failed",
            (None, true) => "rebuilt",
            (None, false) => "rebuilding",
        };
        Some(RebuildStatus {
            state,
            done: r.done.load(Ordering::Acquire).min(of),
            of,
            error,
        })
    }
}

impl Writer {
    /// Announces a rebuild of `of` members (before the server starts).
    pub(super) fn announce_rebuild(shared: &super::Shared, of: usize) {
        shared.rebuild.of.store(of.max(1), Ordering::Release);
    }

    /// Restores the registry again from the store, every stale member
    /// built (in parallel, on rayon's pool), and installs it. Its
    /// snapshots are the ones served (the restore checks every hash), so
    /// versions and ETags do not move. On failure the stale members keep
    /// serving and `/healthz` says why.
    pub(super) fn rebuild_stale(&mut self) {
        if let Some(gate) = std::env::var_os(GATE_ENV) {
            let gate = std::path::PathBuf::from(gate);
            while !gate.exists() {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let started = std::time::Instant::now();
        let shared = self.shared.clone();
        let rebuild = &shared.rebuild;
        let result = self.rebuilt(&rebuild.done);
        match result {
            Ok(reg) => {
                let restored = reg.restored();
                self.install(reg);
                rebuild.finished.store(true, Ordering::Release);
                tracing::info!(
                    built = restored.built,
                    thawed = restored.thawed,
                    ms = started.elapsed().as_millis() as u64,
                    "members rebuilt after an upgrade"
                );
                self.store_frozen();
            }
            Err(detail) => {
                tracing::error!(%detail, "rebuilding the members after an upgrade failed; still serving the stored snapshots");
                *rebuild.failed.lock() = Some(detail);
            }
        }
    }

    fn rebuilt(&mut self, done: &AtomicUsize) -> Result<Registry, String> {
        let Backend::Redb(s) = &mut self.backend else {
            return Err("only the embedded store keeps frozen members".into());
        };
        let settings = self.reg.settings().clone();
        let interner = self.reg.interner().clone();
        let opts = RestoreOptions {
            stale: false,
            progress: Some(done),
        };
        let loaded = s.load().map_err(|e| e.to_string())?;
        let mut reg = match Registry::restore_with(interner.clone(), settings.clone(), loaded, opts)
        {
            Ok(reg) => reg,
            // As at start-up: a frozen member this binary's stamp accepts
            // but that no longer assembles its snapshot; build them all.
            Err(detail) => {
                tracing::warn!(%detail, "restoring with frozen members failed; building every member");
                done.store(0, Ordering::Release);
                let mut loaded = s.load().map_err(|e| e.to_string())?;
                loaded.members.clear();
                Registry::restore_with(interner, settings, loaded, opts)?
            }
        };
        s.commit(&reg.take_restore_changes())
            .map_err(|e| e.to_string())?;
        Ok(reg)
    }
}

/// Whether `reg` was restored with stale members that need rebuilding.
pub(super) fn needs_rebuild(reg: &Registry) -> Option<usize> {
    let r = reg.restored();
    (r.stale > 0).then_some(r.stale + r.thawed + r.built)
}
