//! One client connection from the handshake to its end: the TLS handshake within
//! `header_read_timeout`, HTTP/1.1 or HTTP/2 (ALPN), and a watchdog that
//! - aborts the connection when one of its responses makes no progress towards the client for
//!   `send_stall_timeout` (an HTTP/2 receive window left at 0 would otherwise hold an audit slot
//!   and an in-flight slot per stream for as long as the connection lives), recorded as
//!   `send_stalled`;
//! - closes it gracefully (HTTP/2: GOAWAY) after `idle_timeout` with no request in progress, and
//!   drops it if that drain takes longer than `send_stall_timeout`;
//! - drains it gracefully on shutdown, and drops it when the shutdown cutoff is reached.
//!
//! The abort is per connection: hyper offers no handle on one HTTP/2 stream, and a client that
//! leaves a stream unread that long is not a client whose other streams need protecting.
//!
//! A request whose client went away runs to its end (`FinishAnyway`), so what a connection has
//! running is bounded here, not only by hyper's stream count: an HTTP/2 client that resets each
//! stream at once (HEADERS + RST_STREAM) would otherwise start requests without limit. Each
//! request holds one of the connection's `max_concurrent_streams` permits until its pipeline ends
//! (one arriving without a free permit is refused with 503, recorded, and the connection is
//! closed gracefully — HTTP/2 GOAWAY — so a client that cancelled its requests reconnects instead
//! of meeting 503s, and a flood of resets ends with its connection), and the connection's
//! admission (its place under `max_connections` and `max_connections_per_ip`) until then too, so
//! closing the connection and opening another does not free the place either.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore, watch};
use tower::ServiceExt as _;
use tower_http::body::UnsyncBoxBody;

use super::admission::Admitted;
use super::finish_anyway::FinishAnyway;
use crate::context::ConnInfo;
use crate::gateway::Gateway;
use crate::pipeline::service::{self, ConnectionSaturated, GatewayService};
use crate::stage::authn::mtls::Subject;
use crate::vocab::send_watch::SendWatch;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bytes one HTTP/2 stream may hold in the send buffer beyond what the client has taken.
const SEND_BUFFER: usize = 64 * 1024;

/// The watchdog's timing for one connection.
#[derive(Debug, Clone, Copy)]
struct Timing {
    idle: Duration,
    send_stall: Duration,
}

impl Timing {
    /// A quarter of the shorter timeout, so a stall is caught within 125% of its limit; at most
    /// a second (cheap per connection), at least 20 ms.
    fn tick(self) -> Duration {
        (self.idle.min(self.send_stall) / 4)
            .clamp(Duration::from_millis(20), Duration::from_secs(1))
    }
}

/// The responses of one connection, as the watchdog sees them. Weak, so a response whose body
/// is gone (sent, dropped, or its task failed) leaves the table by itself.
#[derive(Debug, Default)]
struct Streams {
    open: Mutex<Vec<Weak<SendWatch>>>,
}

/// What the watchdog found.
#[derive(Debug, PartialEq, Eq)]
enum Sweep {
    Idle,
    Busy,
    Stalled,
}

impl Streams {
    /// Registers a request that has just arrived.
    fn open(&self, bound: usize) -> Arc<SendWatch> {
        let watch = Arc::new(SendWatch::default());
        let mut open = self.open.lock();
        if open.len() >= bound {
            open.retain(live);
        }
        open.push(Arc::downgrade(&watch));
        watch
    }

    fn sweep(&self, now: Instant, limit: Duration) -> Sweep {
        let mut open = self.open.lock();
        open.retain(live);
        let mut stalled = false;
        for watch in open.iter().filter_map(Weak::upgrade) {
            stalled |= watch.check(now, limit);
        }
        match (stalled, open.is_empty()) {
            (true, _) => Sweep::Stalled,
            (false, true) => Sweep::Idle,
            (false, false) => Sweep::Busy,
        }
    }
}

fn live(watch: &Weak<SendWatch>) -> bool {
    watch.upgrade().is_some_and(|w| !w.is_finished())
}

/// Serves one accepted connection until it ends, is aborted, or shutdown cuts it off.
pub(super) async fn serve(
    gateway: Arc<Gateway>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
    admitted: Admitted,
) {
    let _ = stream.set_nodelay(true);
    let live = gateway.live();
    let server = &live.policy.server;
    let header_limit = (server.max_header_bytes * 2).max(16 * 1024);
    let timing = Timing {
        idle: server.idle_timeout,
        send_stall: server.send_stall_timeout,
    };
    let streams = Arc::new(Streams::default());
    let max_streams = usize::try_from(server.max_concurrent_streams).unwrap_or(usize::MAX);
    let held = Held {
        admitted: Arc::new(admitted),
        permits: Arc::new(Semaphore::new(max_streams.min(Semaphore::MAX_PERMITS))),
        saturated: Arc::new(Notify::new()),
    };
    let saturated = held.saturated.clone();
    let bound = max_streams.saturating_mul(2);
    let Some(tls) = &server.tls else {
        let conn = Arc::new(ConnInfo::plain(peer));
        let svc = per_connection(gateway.clone(), conn, streams.clone(), bound, held);
        let http = http1_builder(server.header_read_timeout, header_limit)
            .serve_connection(TokioIo::new(stream), svc);
        drop(live);
        drive(http, &gateway, &streams, &saturated, timing, stop).await;
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
    let stream =
        match tokio::time::timeout(server.header_read_timeout, acceptor.accept(stream)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
    let (_, session) = stream.get_ref();
    let version = match session.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "TLS",
    };
    let subject = session
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| Subject::of_certificate(c));
    let h2 = session.alpn_protocol() == Some(b"h2");
    let conn = Arc::new(ConnInfo {
        peer,
        tls_version: Some(version),
        client_subject_text: subject.as_ref().map(|s| Arc::from(s.to_text())),
        client_subject: subject,
    });
    let io = TokioIo::new(stream);
    let svc = per_connection(gateway.clone(), conn, streams.clone(), bound, held);
    if h2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(header_limit).unwrap_or(u32::MAX))
            .max_concurrent_streams(server.max_concurrent_streams)
            // What one stream may buffer for a client that does not read (hyper's default is
            // 400 KiB, times every stream of every connection).
            .max_send_buf_size(SEND_BUFFER)
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(10));
        let http = builder.serve_connection(io, svc);
        drop(live);
        drive(http, &gateway, &streams, &saturated, timing, stop).await;
    } else {
        let http =
            http1_builder(server.header_read_timeout, header_limit).serve_connection(io, svc);
        drop(live);
        drive(http, &gateway, &streams, &saturated, timing, stop).await;
    }
}

/// Polls the connection while watching its responses, the shutdown signal and the cutoff.
async fn drive<C>(
    http: C,
    gateway: &Gateway,
    streams: &Streams,
    saturated: &Notify,
    timing: Timing,
    mut stop: watch::Receiver<bool>,
) where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    let mut http = pin!(http);
    let mut cut = pin!(gateway.cutoff.reached());
    let mut tick = tokio::time::interval(timing.tick());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut draining = false;
    let mut idle_since = Instant::now();
    // Set when the connection was closed for idleness: what is left is only data buffered for a
    // client that does not read it (HTTP/2 keeps a stream open until its window allows), so the
    // drain gets `send_stall_timeout`, not forever.
    let mut idle_drain_until: Option<Instant> = None;
    loop {
        tokio::select! {
            ended = http.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            // Shutdown began (or the server is gone): no new requests, let these finish.
            _ = stop.wait_for(|stopping| *stopping), if !draining => {
                draining = true;
                http.as_mut().graceful_shutdown();
            }
            // Every permit was taken (requests running on after their streams were reset): no
            // new streams here; the client reconnects, under the connection limits.
            () = saturated.notified(), if !draining => {
                draining = true;
                http.as_mut().graceful_shutdown();
            }
            // The grace ran out: dropping the connection drops its responses, which record
            // themselves as `shutdown`.
            () = &mut cut => return,
            _ = tick.tick() => {
                let now = Instant::now();
                match streams.sweep(now, timing.send_stall) {
                    Sweep::Stalled => {
                        tracing::info!("a response made no progress: aborting its connection");
                        return;
                    }
                    Sweep::Busy => idle_since = now,
                    Sweep::Idle => {
                        if idle_drain_until.is_some_and(|until| now >= until) {
                            tracing::debug!("an idle connection did not drain: dropped");
                            return;
                        }
                        if !draining && now.duration_since(idle_since) >= timing.idle {
                            draining = true;
                            idle_drain_until = Some(now + timing.send_stall);
                            http.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
        }
    }
}

fn http1_builder(header_read_timeout: Duration, header_limit: usize) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Some(header_read_timeout))
        .max_header_size(header_limit)
        .keep_alive(true);
    builder
}

/// What a connection answers with: the gateway's body, boxed by the panic layer.
type Answer = hyper::Response<UnsyncBoxBody<Bytes, BoxError>>;

/// What a connection's requests hold while their pipeline runs, abandoned ones included.
#[derive(Debug, Clone)]
struct Held {
    /// The connection's place under the connection limits, given back when the connection and
    /// every request it started have ended.
    admitted: Arc<Admitted>,
    /// `max_concurrent_streams` permits, one per running request.
    permits: Arc<Semaphore>,
    /// Told when a request found every permit taken: the connection is then drained.
    saturated: Arc<Notify>,
}

/// The per-connection service: the tower stack (request span, panic → 500 with its record, the
/// gateway service) served to hyper through `TowerToHyperService`.
fn per_connection(
    gateway: Arc<Gateway>,
    conn: Arc<ConnInfo>,
    streams: Arc<Streams>,
    bound: usize,
    held: Held,
) -> TowerToHyperService<
    impl tower::Service<
        hyper::Request<Incoming>,
        Response = Answer,
        Error = Infallible,
        Future = impl std::future::Future<Output = Result<Answer, Infallible>> + Send + 'static,
    > + Clone
    + Send
    + 'static,
> {
    let stack = service::layered(GatewayService::new(gateway, conn));
    TowerToHyperService::new(tower::service_fn(
        move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(streams.open(bound));
            let permit = held.permits.clone().try_acquire_owned().ok();
            if permit.is_none() {
                request.extensions_mut().insert(ConnectionSaturated);
                held.saturated.notify_one();
            }
            let holding = (permit, held.admitted.clone());
            let answer = stack.clone().oneshot(request);
            // If the client goes away, hyper drops this future, but the pipeline still finishes
            // (in a task of its own from then on), so the request is still recorded (as
            // `client_disconnected`) and upstream bookkeeping (breaker, in-flight) stays right;
            // it keeps its permit and the connection's place until then. Panics are answered by
            // the stack (500 with its record).
            FinishAnyway::new(async move {
                let answer = answer.await;
                drop(holding);
                answer
            })
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_millis(200);

    #[test]
    fn a_connection_with_no_open_response_is_idle() {
        let streams = Streams::default();
        assert_eq!(streams.sweep(Instant::now(), LIMIT), Sweep::Idle);
        let watch = streams.open(8);
        assert_eq!(streams.sweep(Instant::now(), LIMIT), Sweep::Busy);
        watch.finish();
        assert_eq!(streams.sweep(Instant::now(), LIMIT), Sweep::Idle);
        let dropped = streams.open(8);
        drop(dropped);
        assert_eq!(streams.sweep(Instant::now(), LIMIT), Sweep::Idle);
        assert!(streams.open.lock().is_empty());
    }

    #[test]
    fn a_response_the_client_does_not_take_is_a_stall() {
        let streams = Streams::default();
        let watch = streams.open(8);
        watch.progressed();
        let later = Instant::now() + LIMIT * 2;
        assert_eq!(streams.sweep(later, LIMIT), Sweep::Stalled);
        assert!(watch.is_stalled());
    }

    #[test]
    fn the_table_is_bounded_by_pruning_finished_responses() {
        let streams = Streams::default();
        for _ in 0..100 {
            streams.open(8).finish();
        }
        assert!(streams.open.lock().len() <= 8);
    }

    #[test]
    fn the_watchdog_ticks_within_bounds() {
        let t = |idle, stall| {
            Timing {
                idle: Duration::from_millis(idle),
                send_stall: Duration::from_millis(stall),
            }
            .tick()
        };
        assert_eq!(t(60_000, 10_000), Duration::from_secs(1));
        assert_eq!(t(60_000, 400), Duration::from_millis(100));
        assert_eq!(t(1, 1), Duration::from_millis(20));
    }
}
