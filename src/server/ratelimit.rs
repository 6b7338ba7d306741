//! `--api-rate-limit`: requests per second for each caller on the network
//! listener, so one busy CI job can't starve the others or the writer.
//! A token bucket per bearer token (keyed by a hash of the header, before it
//! is checked, so bad tokens are limited too) or, without one, per address.
//! Past it: 429 with `Retry-After`, as Konnect answers.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;

use super::ApiError;
use super::listen::Transport;

/// Callers remembered at once; past it, the idle ones are forgotten.
const MAX_CALLERS: usize = 100_000;

pub struct RateLimiter {
    per_second: f64,
    buckets: Mutex<ahash::AHashMap<Caller, Bucket>>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Caller {
    Token([u8; 32]),
    Address(IpAddr),
    Unknown,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub fn new(per_second: u32) -> Arc<RateLimiter> {
        Arc::new(RateLimiter {
            per_second: f64::from(per_second.max(1)),
            buckets: Mutex::new(ahash::AHashMap::new()),
        })
    }

    /// Takes one request from `caller`'s bucket (a second's worth deep), or
    /// says how many seconds until it could.
    fn take(&self, caller: Caller, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock();
        if buckets.len() >= MAX_CALLERS {
            let rate = self.per_second;
            buckets.retain(|_, b| now.duration_since(b.at).as_secs_f64() * rate < rate);
        }
        let b = buckets.entry(caller).or_insert(Bucket {
            tokens: self.per_second,
            at: now,
        });
        let refill = now.duration_since(b.at).as_secs_f64() * self.per_second;
        b.tokens = (b.tokens + refill).min(self.per_second);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

/// The middleware.
pub async fn limit(State(limiter): State<Arc<RateLimiter>>, req: Request, next: Next) -> Response {
    let caller = match req.headers().get(header::AUTHORIZATION) {
        Some(v) => Caller::Token(*blake3::hash(v.as_bytes()).as_bytes()),
        None => match req.extensions().get::<Transport>() {
            Some(Transport::Api { peer, .. } | Transport::Tcp { peer }) => {
                Caller::Address(peer.ip())
            }
            _ => Caller::Unknown,
        },
    };
    match limiter.take(caller, Instant::now()) {
        Ok(()) => next.run(req).await,
        Err(retry_after) => {
            crate::metrics::rate_limited();
            let mut resp = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "more than {} requests per second from this caller; retry after {retry_after} s",
                    limiter.per_second
                ),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
    }
}

/// Over HTTPS, the page's cookies are `Secure`.
pub async fn secure_cookies(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let cookies: Vec<HeaderValue> = resp
        .headers_mut()
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    if cookies.is_empty() {
        return resp;
    }
    resp.headers_mut().remove(header::SET_COOKIE);
    for c in cookies {
        let secured = match c.to_str() {
            Ok(s) if !s.contains("; Secure") => {
                HeaderValue::from_str(&format!("{s}; Secure")).unwrap_or(c)
            }
            _ => c,
        };
        resp.headers_mut().append(header::SET_COOKIE, secured);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_holds_a_second_and_refills_at_the_rate() {
        let rl = RateLimiter::new(2);
        let t0 = Instant::now();
        let who = || Caller::Unknown;
        assert!(rl.take(who(), t0).is_ok());
        assert!(rl.take(who(), t0).is_ok());
        assert_eq!(rl.take(who(), t0), Err(1));
        // Another caller has its own bucket.
        assert!(rl.take(Caller::Token([1; 32]), t0).is_ok());
        assert!(
            rl.take(who(), t0 + std::time::Duration::from_millis(500))
                .is_ok()
        );
    }
}
