//! The accept loop: every connection is served by hyper's HTTP/1 connection
//! with read timeouts, so no client can hold a connection (and its
//! `--max-connections` permit) by never finishing a request (issue 15).
//!
//! `axum::serve` has no read timeouts, so we run the loop ourselves:
//! - **header read**: from a connection's start, or from the first byte of the
//!   next request on a kept-alive connection, to the end of the request's
//!   headers. Past it the connection is closed (as hyper does on its own
//!   header timeout: there is no request to answer yet).
//! - **body read**: from the handler's first read of the request body to its
//!   last byte, so a body dripped one byte a second cannot hold the request
//!   (and its in-flight permit) open. Past it the request is answered `408`
//!   and the connection closed.
//! - **idle**: how long a kept-alive connection may wait for its next
//!   request. A connection whose request is being handled (a long-poll
//!   included) is never idle.
//!
//! hyper 1.x has one `header_read_timeout` that covers both the idle wait and
//! the header read, so the two can't differ; we track each connection's phase
//! ourselves (`Watch`) and give hyper `header_read + idle` as a backstop.
//!
//! Graceful shutdown: the loop stops accepting, every connection is told to
//! finish its current request and close (`GracefulShutdown`), and `run`
//! returns once they all have. The timeouts bound how long that can take.
//!
//! The connection limit lives here too: `LimitedListener` holds one permit
//! per open connection, and its `Limited` stream feeds the `Watch`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::ApiError;
use super::auth::Peer;

/// How a connection reached the daemon; the accept loop attaches it to every
/// request of the connection, so handlers (the pages, access checks) know
/// whether it came through the Unix socket or the `--http` loopback port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Unix,
    /// The `--http` loopback port: the page only.
    Tcp {
        peer: std::net::SocketAddr,
    },
    /// The `--api-listen` network listener: the whole API and the page, to
    /// bearer tokens and signed-in sessions; `tls` unless on loopback.
    Api {
        peer: std::net::SocketAddr,
        tls: bool,
    },
}

/// What a listener serves, for [`run`].
#[derive(Clone)]
pub enum Role {
    /// The socket, or the `--http` page port: connections as they come.
    Plain,
    /// `--api-listen`: each connection's requests are `Transport::Api`;
    /// with an acceptor, after a TLS handshake that must finish within the
    /// header read timeout.
    Api(Option<tokio_rustls::TlsAcceptor>),
}

/// A connection the accept loop can serve: any stream that says how it came,
/// and who is on the other end when the kernel can tell.
pub trait Connection: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    fn transport(&self) -> Transport;

    /// The Unix peer (`SO_PEERCRED`); a TCP peer has none.
    fn peer(&self) -> Option<Peer> {
        None
    }
}

impl Connection for UnixStream {
    fn transport(&self) -> Transport {
        Transport::Unix
    }

    fn peer(&self) -> Option<Peer> {
        self.peer_cred().ok().map(|c| Peer {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid(),
        })
    }
}

impl Connection for TcpStream {
    /// `run` makes it `Transport::Api` on the `--api-listen` listener.
    fn transport(&self) -> Transport {
        match self.peer_addr() {
            Ok(peer) => Transport::Tcp { peer },
            // A connection whose peer is already gone: any address will do,
            // it is TCP either way.
            Err(_) => Transport::Tcp {
                peer: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            },
        }
    }
}

impl<T: Connection> Connection for Limited<T> {
    fn transport(&self) -> Transport {
        self.io.transport()
    }

    fn peer(&self) -> Option<Peer> {
        self.io.peer()
    }
}

/// How long the daemon waits for a client; see the module docs. Values are
/// kept within [1 ms, 1 year].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Connection start (or the first byte of a kept-alive connection's next
    /// request) to the end of the request's headers; then the connection is
    /// closed. `--header-read-timeout-secs`, default 10 s.
    pub header_read: Duration,
    /// The handler's first read of the request body to its last byte; then
    /// `408` and the connection is closed. `--body-read-timeout-secs`,
    /// default 30 s.
    pub body_read: Duration,
    /// How long a kept-alive connection may wait for its next request.
    /// `--idle-timeout-secs`, default 60 s.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(30),
            idle: Duration::from_secs(60),
        }
    }
}

impl Timeouts {
    const MIN: Duration = Duration::from_millis(1);
    const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

    /// Within [`Self::MIN`, `Self::MAX`], so no deadline arithmetic can overflow.
    fn clamped(self) -> Timeouts {
        let c = |d: Duration| d.clamp(Self::MIN, Self::MAX);
        Timeouts {
            header_read: c(self.header_read),
            body_read: c(self.body_read),
            idle: c(self.idle),
        }
    }
}

/// Accepts connections from `listener` (one permit each) and serves `app` on
/// them until `shutdown` resolves; then finishes in-flight requests and returns.
/// The same loop (and timeouts) for the Unix socket and the `--http` port.
pub(super) async fn run<L>(
    mut listener: LimitedListener<L>,
    app: Router,
    timeouts: Timeouts,
    role: Role,
    shutdown: impl Future<Output = ()>,
) where
    L: axum::serve::Listener,
    L::Io: Connection,
{
    let timeouts = timeouts.clamped();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .keep_alive(true)
        // A backstop only: `Watch` closes connections at the precise limits.
        .header_read_timeout(timeouts.header_read.saturating_add(timeouts.idle));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let io = tokio::select! {
            (io, _addr) = axum::serve::Listener::accept(&mut listener) => io,
            () = &mut shutdown => break,
        };
        let watch = Arc::new(Watch::new(timeouts));
        let transport = match (&role, io.transport()) {
            (Role::Api(tls), Transport::Tcp { peer } | Transport::Api { peer, .. }) => {
                Transport::Api {
                    peer,
                    tls: tls.is_some(),
                }
            }
            (_, t) => t,
        };
        let service = ConnService {
            app: app.clone(),
            watch: watch.clone(),
            body_read: timeouts.body_read,
            transport,
            peer: io.peer(),
        };
        let mut io = io;
        io.watch = Some(watch.clone());
        match &role {
            Role::Api(Some(acceptor)) => {
                // The handshake runs on the connection's own task, under the
                // header read timeout, so a slow one holds up nobody else.
                let acceptor = acceptor.clone();
                let http = http.clone();
                let graceful = graceful.watcher();
                let limit = timeouts.header_read;
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(limit, acceptor.accept(io)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(
                                "TLS handshake not finished within the header read timeout"
                            );
                            return;
                        }
                    };
                    let conn = graceful.watch(http.serve_connection(TokioIo::new(tls), service));
                    drive(conn, watch).await;
                });
            }
            _ => {
                let io = TokioIo::new(io);
                let conn = graceful.watch(http.serve_connection(io, service));
                tokio::spawn(drive(conn, watch));
            }
        }
    }
    // Stop accepting; clients still in the backlog see the socket close.
    drop(listener);
    graceful.shutdown().await;
}

/// Runs one connection, closing it when its header-read or idle deadline passes.
async fn drive(conn: impl Future<Output = Result<(), hyper::Error>>, watch: Arc<Watch>) {
    tokio::pin!(conn);
    let sleep = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(sleep);
    loop {
        let deadline = watch.deadline();
        if let Some(d) = deadline {
            sleep.as_mut().reset(d);
        }
        tokio::select! {
            r = &mut conn => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = watch.wake.notified() => {}
            () = &mut sleep, if deadline.is_some() => {
                if let Some(why) = watch.expired(Instant::now()) {
                    tracing::debug!("closing a connection: {why}");
                    return; // dropping the connection closes the socket
                }
            }
        }
    }
}

/// Where a connection is, for its deadlines.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Waiting for a request's headers (from the connection's start, or from
    /// the first byte of the next request).
    Head { deadline: Instant },
    /// Kept alive between requests.
    Idle { deadline: Instant },
    /// This many requests handled or answered; the body has its own timeout.
    Busy(usize),
}

struct Watch {
    phase: Mutex<Phase>,
    /// Wakes `drive` when the deadline may have moved earlier.
    wake: Notify,
    t: Timeouts,
}

impl Watch {
    fn new(t: Timeouts) -> Watch {
        Watch {
            phase: Mutex::new(Phase::Head {
                deadline: Instant::now() + t.header_read,
            }),
            wake: Notify::new(),
            t,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match *self.phase.lock() {
            Phase::Head { deadline } | Phase::Idle { deadline } => Some(deadline),
            Phase::Busy(_) => None,
        }
    }

    fn expired(&self, now: Instant) -> Option<&'static str> {
        match *self.phase.lock() {
            Phase::Head { deadline } if now >= deadline => {
                Some("no complete request headers within the header read timeout")
            }
            Phase::Idle { deadline } if now >= deadline => Some("idle past the keep-alive timeout"),
            _ => None,
        }
    }

    /// Bytes arrived: on an idle connection, a request's headers have begun.
    fn on_bytes(&self) {
        let mut phase = self.phase.lock();
        if let Phase::Idle { .. } = *phase {
            *phase = Phase::Head {
                deadline: Instant::now() + self.t.header_read,
            };
            drop(phase);
            self.wake.notify_one();
        }
    }

    fn request_started(&self) {
        let mut phase = self.phase.lock();
        *phase = match *phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            Phase::Head { .. } | Phase::Idle { .. } => Phase::Busy(1),
        };
    }

    fn request_finished(&self) {
        let mut phase = self.phase.lock();
        *phase = match *phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle {
                deadline: Instant::now() + self.t.idle,
            },
        };
        drop(phase);
        self.wake.notify_one();
    }
}

/// A request in progress: from hyper's call until its response body is done
/// (or dropped with the connection).
struct BusyGuard(Arc<Watch>);

impl BusyGuard {
    fn enter(watch: &Arc<Watch>) -> BusyGuard {
        watch.request_started();
        BusyGuard(watch.clone())
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// The router as hyper's service for one connection: the request body gets
/// its read timeout, and the connection is busy until the response is sent.
#[derive(Clone)]
struct ConnService {
    app: Router,
    watch: Arc<Watch>,
    body_read: Duration,
    /// How the connection came, attached to each request.
    transport: Transport,
    /// The connection's Unix peer, attached to each request (see `auth`).
    peer: Option<Peer>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<Body>, Infallible>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let busy = BusyGuard::enter(&self.watch);
        req.extensions_mut().insert(self.transport);
        if let Some(p) = self.peer {
            req.extensions_mut().insert(p);
        }
        let path = req.uri().path().to_string();
        let timed_out = Arc::new(AtomicBool::new(false));
        let limit = self.body_read;
        let req = req.map(|body| {
            Body::new(TimedBody {
                inner: body,
                limit,
                deadline: None,
                timed_out: timed_out.clone(),
            })
        });
        let answer = tower::ServiceExt::oneshot(self.app.clone(), req);
        Box::pin(async move {
            let resp = match answer.await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            // The handler saw a read error (a 400 of its own): say what it was.
            let resp = if timed_out.load(Ordering::Relaxed) {
                let mut e = ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body did not arrive within {} (--body-read-timeout-secs)",
                        secs(limit)
                    ),
                );
                e.instance = Some(path);
                e.close = true;
                e.into_response()
            } else {
                resp
            };
            Ok(resp.map(|body| {
                Body::new(BusyBody {
                    inner: body,
                    _busy: busy,
                })
            }))
        })
    }
}

fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}

/// A response body that keeps its connection busy until it is sent.
struct BusyBody {
    inner: Body,
    _busy: BusyGuard,
}

impl hyper::body::Body for BusyBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request body, failing once `limit` has passed since its first read.
struct TimedBody {
    inner: Incoming,
    limit: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the body read timeout")]
struct BodyTimeout;

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = &mut *self;
        if this.timed_out.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(BodyTimeout.into())));
        }
        let limit = this.limit;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if deadline.as_mut().poll(cx).is_ready() {
            this.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(BodyTimeout.into())));
        }
        Poll::Pending
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A listener that holds one permit per open connection: at the limit, an
/// accepted connection waits for one to close (and the rest queue in the
/// kernel's backlog), so a flood of clients is served in turn rather than
/// costing a file descriptor, a task and buffers each.
pub struct LimitedListener<L> {
    inner: L,
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicBool>,
}

impl<L> LimitedListener<L> {
    pub fn new(inner: L, max_connections: usize) -> LimitedListener<L> {
        LimitedListener {
            inner,
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            waiting: Arc::new(AtomicBool::new(false)),
        }
    }

    /// True while a connection waits for a permit; see [`close_when_waited_for`].
    pub fn waiting(&self) -> Arc<AtomicBool> {
        self.waiting.clone()
    }
}

impl<L: axum::serve::Listener> axum::serve::Listener for LimitedListener<L> {
    type Io = Limited<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = self.inner.accept().await;
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                self.waiting.store(true, Ordering::Relaxed);
                // Never closed, so `acquire_owned` always succeeds.
                let p = self.permits.clone().acquire_owned().await.ok();
                self.waiting.store(false, Ordering::Relaxed);
                p
            }
        };
        (
            Limited {
                io,
                _permit: permit,
                watch: None,
            },
            addr,
        )
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection and its permit, released when the connection is dropped.
/// Once served, it tells its `Watch` when bytes arrive (for the timeouts).
pub struct Limited<T> {
    io: T,
    _permit: Option<OwnedSemaphorePermit>,
    watch: Option<Arc<Watch>>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Limited<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r
            && buf.filled().len() > before
            && let Some(w) = &self.watch
        {
            w.on_bytes();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Limited<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_clamping() {
        let t = Timeouts::default();
        assert_eq!(t.header_read, Duration::from_secs(10));
        assert_eq!(t.body_read, Duration::from_secs(30));
        assert_eq!(t.idle, Duration::from_secs(60));
        let c = Timeouts {
            header_read: Duration::ZERO,
            body_read: Duration::MAX,
            idle: Duration::from_secs(5),
        }
        .clamped();
        assert_eq!(c.header_read, Timeouts::MIN);
        assert_eq!(c.body_read, Timeouts::MAX);
        assert_eq!(c.idle, Duration::from_secs(5));
    }

    /// `deadline` lies in [before + d, now + d].
    fn within(deadline: Option<Instant>, before: Instant, d: Duration) -> bool {
        deadline.is_some_and(|x| x >= before + d && x <= Instant::now() + d)
    }

    #[tokio::test]
    async fn phases_move_deadlines() {
        let t = Timeouts {
            header_read: Duration::from_secs(1),
            body_read: Duration::from_secs(2),
            idle: Duration::from_secs(500),
        };
        let before = Instant::now();
        let w = Arc::new(Watch::new(t));
        assert!(within(w.deadline(), before, t.header_read));
        let first = w.deadline();
        assert!(w.expired(before + Duration::from_secs(2)).is_some());
        w.on_bytes(); // still reading the first head: the deadline stays
        assert_eq!(w.deadline(), first);
        let busy = BusyGuard::enter(&w);
        let second = BusyGuard::enter(&w); // pipelined
        assert_eq!(w.deadline(), None);
        assert!(w.expired(before + Duration::from_secs(3600)).is_none());
        drop(busy);
        assert_eq!(w.deadline(), None);
        let before = Instant::now();
        drop(second);
        assert!(within(w.deadline(), before, t.idle));
        assert!(w.expired(before + Duration::from_secs(2)).is_none());
        let before = Instant::now();
        w.on_bytes(); // the next request begins: its headers get header_read
        assert!(within(w.deadline(), before, t.header_read));
    }
}
