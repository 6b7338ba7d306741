//! `/ui/events`: server-sent events that tell open pages something changed
//! (any group's snapshot or view, nodes included), so they fetch themselves
//! again. Bursts are coalesced; the stream ends when the daemon shuts down.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::sync::watch;

use super::{AppState, param, query_pairs};

/// A change waits this long for others to join it before it is sent.
const COALESCE: Duration = Duration::from_millis(100);
/// At most one event this often per page: with many instances heartbeating,
/// pages refresh steadily instead of constantly (and still within a second).
const MIN_INTERVAL: Duration = Duration::from_millis(500);

struct Follow {
    changes: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    /// The change counter the page was rendered at, until first compared.
    since: Option<u64>,
    sent_once: bool,
}

/// Resolves when the daemon shuts down (or the sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await.is_ok();
}

fn change(n: u64) -> Result<Event, Infallible> {
    Ok(Event::default().event("change").data(n.to_string()))
}

pub async fn events(State(s): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let q = query_pairs(raw);
    let since = param(&q, "since").and_then(|v| v.parse::<u64>().ok());
    let follow = Follow {
        changes: s.engine.subscribe_changes(),
        shutdown: s.shutdown.clone(),
        since,
        sent_once: false,
    };
    let events = stream::unfold(follow, |mut f| async move {
        // The page is older than the last change (it changed while the page
        // loaded, or the stream reconnected): say so at once.
        if let Some(since) = f.since.take() {
            let now = *f.changes.borrow_and_update();
            if now != since {
                f.sent_once = true;
                return Some((change(now), f));
            }
        }
        if f.sent_once {
            tokio::select! {
                () = tokio::time::sleep(MIN_INTERVAL) => {}
                () = stopped(&mut f.shutdown) => return None,
            }
        }
        tokio::select! {
            r = f.changes.changed() => {
                r.ok()?;
                tokio::time::sleep(COALESCE).await;
                let now = *f.changes.borrow_and_update();
                f.sent_once = true;
                Some((change(now), f))
            }
            // Shutting down (or no daemon behind this router): end the stream
            // so graceful shutdown does not wait for open pages.
            () = stopped(&mut f.shutdown) => None,
        }
    });
    let mut resp = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
}
