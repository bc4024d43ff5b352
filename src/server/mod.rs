//! Stage 1, the connection: the TLS listener (rustls, TLS 1.2/1.3 per `min_version`, ALPN h2 and
//! http/1.1, optional mutual TLS), `max_connections` (beyond it a new connection is closed at
//! once), the TLS handshake and header reads bounded by `header_read_timeout` (slow clients are
//! dropped, idle keep-alive connections too), header size limits, and graceful shutdown.

pub mod admin;
pub mod signals;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::context::ConnInfo;
use crate::gateway::Gateway;
use crate::pipeline;
use crate::policy::Policy;
use crate::stage::authn::mtls::Subject;

/// A started gateway: its addresses, and the means to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub gateway: Arc<Gateway>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, drains connections up to `shutdown_grace`, flushes the audit log.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let grace = self.gateway.live().policy.server.shutdown_grace;
        let gateway = self.gateway.clone();
        let _ = tokio::task::spawn_blocking(move || {
            gateway.audit.close(grace.max(Duration::from_secs(5)))
        })
        .await;
    }
}

/// Binds the listeners and starts serving `policy` (read from `policy_path`).
pub async fn start(policy: Policy, policy_path: &std::path::Path) -> Result<Running, String> {
    crate::vocab::metrics::install();
    let listen = policy.server.listen;
    let admin_listen = policy.server.admin_listen;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let admin = match admin_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(|e| format!("cannot listen on {a} (admin): {e}"))?,
        ),
        None => None,
    };
    let gateway = Gateway::start(policy, policy_path).await?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = admin.as_ref().and_then(|a| a.local_addr().ok());
    let (stop, stopped) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(serve(
        gateway.clone(),
        listener,
        stopped.clone(),
    ))];
    if let Some(admin) = admin {
        tasks.push(tokio::spawn(admin::serve(gateway.clone(), admin, stopped)));
    }
    gateway.set_listening(true);
    let scheme = if gateway.live().policy.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%addr, scheme, admin = ?admin_addr, "ordergate listening");
    Ok(Running {
        addr,
        admin_addr,
        gateway,
        stop,
        tasks,
    })
}

/// Accepts connections until `stop` turns true, then drains them.
async fn serve(gateway: Arc<Gateway>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let live = gateway.live();
        if open.load(Ordering::Acquire) >= live.policy.server.max_connections {
            drop(stream);
            continue;
        }
        let slot = ConnectionSlot::take(&open);
        let gateway = gateway.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            serve_connection(gateway, stream, peer, watcher).await;
        });
    }
    gateway.set_listening(false);
    drop(listener);
    let grace = gateway.live().policy.server.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace ran out with connections still open");
    }
}

/// Counts an open connection until dropped.
struct ConnectionSlot(Arc<AtomicUsize>);

impl ConnectionSlot {
    fn take(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::AcqRel);
        Self(open.clone())
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn serve_connection(
    gateway: Arc<Gateway>,
    stream: TcpStream,
    peer: SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let _ = stream.set_nodelay(true);
    let live = gateway.live();
    let server = &live.policy.server;
    let header_limit = (server.max_header_bytes * 2).max(16 * 1024);
    let Some(tls) = &server.tls else {
        let conn = Arc::new(ConnInfo::plain(peer));
        let io = TokioIo::new(stream);
        let _ = watcher
            .watch(
                http1_builder(server.header_read_timeout, header_limit)
                    .serve_connection(io, service(gateway.clone(), conn)),
            )
            .await;
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
    let timeout = server.header_read_timeout;
    let svc = service(gateway.clone(), conn);
    drop(live);
    let result = if h2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(header_limit).unwrap_or(u32::MAX))
            .max_concurrent_streams(256)
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(10));
        watcher.watch(builder.serve_connection(io, svc)).await
    } else {
        watcher
            .watch(http1_builder(timeout, header_limit).serve_connection(io, svc))
            .await
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
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

/// The per-connection service: every request goes through [`pipeline::handle`].
fn service(
    gateway: Arc<Gateway>,
    conn: Arc<ConnInfo>,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = hyper::Response<crate::vocab::body::GatewayBody>,
    Error = Infallible,
    Future = impl std::future::Future<
        Output = Result<hyper::Response<crate::vocab::body::GatewayBody>, Infallible>,
    > + Send
             + 'static,
> + Clone
+ Send
+ 'static {
    service_fn(move |request| {
        // Each request runs in its own task: if the client goes away, hyper drops this future,
        // but the pipeline still finishes, so the request is still recorded (as
        // `client_disconnected`) and upstream bookkeeping (breaker, in-flight) stays right.
        let task = tokio::spawn(pipeline::handle(gateway.clone(), conn.clone(), request));
        async move {
            Ok(task.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "request task failed");
                let mut response = hyper::Response::new(crate::vocab::body::GatewayBody::empty());
                *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                response
            }))
        }
    })
}
