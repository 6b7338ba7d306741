//! The data planes connected to each group, and what wakes them (koko's
//! `manager`): one task follows the engine's change counter and, for each
//! group that has connections, signals its nodes when the served snapshot or
//! what admits them (certificates, `auth_type`, membership) changed. Nodes
//! never wake on each other's pings.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::watch;
use uuid::Uuid;

use crate::engine::Engine;
use crate::registry::GroupView;

/// What a group's nodes watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signal {
    /// The served snapshot's version.
    pub version: u64,
    /// Changes whenever what admits a data plane changes.
    pub admission: u64,
    /// The group is gone, or became a member of a composite.
    pub closed: bool,
}

impl Signal {
    pub fn of(view: Option<&GroupView>) -> Signal {
        let Some(view) = view else {
            return Signal {
                version: 0,
                admission: 0,
                closed: true,
            };
        };
        let mut h = ahash::AHasher::default();
        view.meta.auth_type.as_str().hash(&mut h);
        for c in view.certificates() {
            c.id.hash(&mut h);
            c.updated_ms.hash(&mut h);
        }
        Signal {
            version: view.snapshot.version,
            admission: h.finish(),
            closed: view.standard().is_some_and(|s| !s.composites.is_empty()),
        }
    }
}

struct Group {
    signal: watch::Sender<Signal>,
    nodes: usize,
    /// Connections per node id: a data plane that reconnects before its old
    /// connection is seen to close holds two for a while.
    sessions: HashMap<String, usize>,
}

/// The connected nodes, by group.
pub struct Manager {
    engine: Engine,
    groups: Mutex<HashMap<Uuid, Group>>,
    connections: AtomicUsize,
    /// Identical `process_conf`s shared by every node that sent one: a fleet
    /// sends the same few, and each is tens of KB.
    confs: Held<Value>,
    /// Identical plugin lists, shared likewise.
    plugin_lists: Held<Vec<(String, String)>>,
}

impl Manager {
    pub fn new(engine: Engine) -> Arc<Manager> {
        Arc::new(Manager {
            engine,
            groups: Mutex::new(HashMap::new()),
            connections: AtomicUsize::new(0),
            confs: Mutex::new(HashMap::new()),
            plugin_lists: Mutex::new(HashMap::new()),
        })
    }

    /// Node `node` of `group` is connected: its signal to watch.
    pub fn join(&self, group: Uuid, node: &str) -> watch::Receiver<Signal> {
        self.connections.fetch_add(1, Ordering::Relaxed);
        let mut groups = self.groups.lock();
        let g = groups.entry(group).or_insert_with(|| Group {
            signal: watch::channel(Signal::of(self.engine.view(group).as_deref())).0,
            nodes: 0,
            sessions: HashMap::new(),
        });
        g.nodes += 1;
        *g.sessions.entry(node.to_string()).or_default() += 1;
        g.signal.subscribe()
    }

    /// A connection of `node` closed; whether it was the node's last one
    /// (only then is the node disconnected).
    pub fn leave(&self, group: Uuid, node: &str) -> bool {
        self.connections.fetch_sub(1, Ordering::Relaxed);
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(&group) else {
            return true;
        };
        g.nodes -= 1;
        let last = match g.sessions.get_mut(node) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                g.sessions.remove(node);
                true
            }
        };
        if g.nodes == 0 {
            groups.remove(&group);
        }
        last
    }

    /// Data planes connected now, to this daemon.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// `conf`, shared with an identical one already held.
    pub fn share_conf(&self, conf: Value) -> Arc<Value> {
        let key = blake3::hash(conf.to_string().as_bytes());
        share(&self.confs, key, conf)
    }

    /// `plugins`, shared with an identical list already held.
    pub fn share_plugins(&self, plugins: Vec<(String, String)>) -> Arc<Vec<(String, String)>> {
        let mut h = blake3::Hasher::new();
        for (name, version) in &plugins {
            h.update(name.as_bytes())
                .update(b"\0")
                .update(version.as_bytes())
                .update(b"\0");
        }
        share(&self.plugin_lists, h.finalize(), plugins)
    }

    /// Follows the engine until `stop`: after each change, re-signals the
    /// groups whose nodes must act.
    pub async fn run(self: Arc<Manager>, mut stop: watch::Receiver<bool>) {
        let mut changes = self.engine.subscribe_changes();
        loop {
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                () = super::stopped(&mut stop) => return,
            }
            // Heartbeats count as changes too: a short pause lets a burst of
            // them be one pass over the groups.
            tokio::time::sleep(Duration::from_millis(2)).await;
            changes.mark_unchanged();
            let groups = self.groups.lock();
            for (id, g) in groups.iter() {
                let now = Signal::of(self.engine.view(*id).as_deref());
                g.signal.send_if_modified(|s| {
                    let changed = *s != now;
                    *s = now;
                    changed
                });
            }
        }
    }
}

/// Values shared by content while anyone holds them.
type Held<T> = Mutex<HashMap<blake3::Hash, std::sync::Weak<T>>>;

/// The value held under `key` while anyone holds it, else `value`, now held.
fn share<T>(held: &Held<T>, key: blake3::Hash, value: T) -> Arc<T> {
    let mut held = held.lock();
    if let Some(v) = held.get(&key).and_then(std::sync::Weak::upgrade) {
        return v;
    }
    held.retain(|_, w| w.strong_count() > 0);
    let value = Arc::new(value);
    held.insert(key, Arc::downgrade(&value));
    value
}
