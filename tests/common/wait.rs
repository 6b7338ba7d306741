//! Waiting, with one timeout policy: `hang_guard()`.
//!
//! Tests assert outcomes, never how fast they came (docs/TESTING.md). Where
//! a test must bound time, to fail rather than hang, it waits at most
//! `hang_guard()`: far above what any step takes on a loaded machine, and
//! multiplied by `RGMERGE_TEST_TIMEOUT_SCALE` (a number, default 1) for a
//! machine slower still (a sanitizer build, an emulator, a crowded CI box).

use std::future::Future;
use std::time::{Duration, Instant};

/// The unscaled hang guard.
pub const HANG_GUARD: Duration = Duration::from_secs(120);

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

/// `HANG_GUARD` times `RGMERGE_TEST_TIMEOUT_SCALE`.
pub fn hang_guard() -> Duration {
    static SCALE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let scale = *SCALE.get_or_init(|| {
        std::env::var("RGMERGE_TEST_TIMEOUT_SCALE")
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(1.0)
    });
    HANG_GUARD.mul_f64(scale)
}

/// Waits until `f` returns true; panics naming `what` after the hang guard.
pub async fn wait_for<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for_some(what, || {
        let fut = f();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// Waits until `f` returns `Some`, and returns what it held.
pub async fn wait_for_some<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + hang_guard();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "hang guard: waited {:?} for {what}",
            hang_guard()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// `wait_for` for code without a runtime (it sleeps the thread).
pub fn wait_for_sync(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + hang_guard();
    while !f() {
        assert!(
            Instant::now() < deadline,
            "hang guard: waited {:?} for {what}",
            hang_guard()
        );
        std::thread::sleep(POLL);
    }
}

/// Runs `f` to its end, or panics naming `what` after `times` hang guards.
pub async fn guard_n<T>(what: &str, times: u32, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(hang_guard() * times, f)
        .await
        .unwrap_or_else(|_| panic!("hang guard: {what} did not finish"))
}

/// Runs `f` to its end, or panics naming `what` after the hang guard.
pub async fn guard<T>(what: &str, f: impl Future<Output = T>) -> T {
    guard_n(what, 1, f).await
}
