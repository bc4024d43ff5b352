//! Stage 1, the connection: the TLS listener (rustls, TLS 1.2/1.3 per `min_version`, ALPN h2 and
//! http/1.1, optional mutual TLS), `max_connections` and `max_connections_per_ip` (beyond them a
//! new connection is closed at once, `admission.rs`), the per-connection limits and watchdog
//! (`connection.rs`), the serving threads (`per_core.rs`), and bounded graceful shutdown
//! (CONTRACT §11).

pub mod admin;
mod admission;
mod connection;
mod finish_anyway;
mod per_core;
mod per_ip;
pub mod signals;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::gateway::Gateway;
use crate::policy::Policy;
use crate::vocab::error::StartError;
use crate::vocab::worker::Threading;
use admission::{Admission, Limits};

/// After the cutoff, how long connections get to drop what they hold (each dropped response
/// sends its record at once).
const CUT_DRAIN: Duration = Duration::from_millis(500);

/// After the connections are gone, how long the audit writer gets to write what is queued. With
/// [`CUT_DRAIN`] this keeps the exit within `shutdown_grace` + 2 s (CONTRACT §11).
const AUDIT_FLUSH: Duration = Duration::from_millis(1_000);

/// A started gateway: its addresses, and the means to stop it.
pub struct Running {
    /// Where the gateway listens.
    pub addr: SocketAddr,
    /// Where the admin listener listens, if configured.
    pub admin_addr: Option<SocketAddr>,
    /// The running gateway (for reloads and tests).
    pub gateway: Arc<Gateway>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Per-core serving threads.
    workers: Vec<per_core::Worker>,
}

impl Running {
    /// Stops accepting, drains connections up to `shutdown_grace`, cuts off what is left,
    /// flushes the audit log. Bounded whatever clients and the upstream do.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let grace = self.gateway.live().policy.server.shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace + CUT_DRAIN + Duration::from_millis(100);
        for mut task in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
        }
        // Per-core loops drain within the same bound; their workers then wait for the requests
        // whose clients left, which end at the cutoff below and send their records, before
        // dropping their runtimes.
        let (served, done): (Vec<_>, Vec<_>) =
            self.workers.into_iter().map(|w| (w.served, w.done)).unzip();
        for loop_ended in served {
            let _ = tokio::time::timeout_at(deadline, loop_ended).await;
        }
        // Anything still waiting (an admin request, a request whose connection was aborted or
        // whose client left) ends now and sends its record.
        self.gateway.cutoff.cut();
        // Within the same overall bound as the loops (CONTRACT §11: grace + 2 s with the flush).
        let dropped_by =
            (tokio::time::Instant::now() + CUT_DRAIN).min(deadline) + Duration::from_millis(200);
        for worker_done in done {
            let _ = tokio::time::timeout_at(dropped_by, worker_done).await;
        }
        let gateway = self.gateway.clone();
        let _ = tokio::task::spawn_blocking(move || gateway.audit.close(AUDIT_FLUSH)).await;
    }
}

/// Binds the listeners and starts serving `policy` (read from `policy_path`).
pub async fn start(policy: Policy, policy_path: &std::path::Path) -> Result<Running, StartError> {
    crate::vocab::metrics::install();
    let listen = policy.server.listen;
    let admin_listen = policy.server.admin_listen;
    let threading = policy.server.threading;
    let worker_count = policy.server.workers.max(1);
    let listen_error = |source| StartError::Listen {
        addr: listen,
        admin: false,
        source,
    };
    let listener = match threading {
        Threading::Shared => TcpListener::bind(listen).await,
        Threading::PerCore => per_core::bind_first(listen),
    }
    .map_err(listen_error)?;
    let admin = match admin_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(|source| StartError::Listen {
                    addr: a,
                    admin: true,
                    source,
                })?,
        ),
        None => None,
    };
    let gateway = Gateway::start(policy, policy_path).await?;
    let addr = listener
        .local_addr()
        .map_err(|source| StartError::LocalAddr { source })?;
    let admin_addr = admin.as_ref().and_then(|a| a.local_addr().ok());
    let (stop, stopped) = watch::channel(false);
    let admission = Admission::default();
    let mut tasks = Vec::new();
    let mut workers = Vec::new();
    match threading {
        Threading::Shared => tasks.push(tokio::spawn(serve(
            gateway.clone(),
            listener,
            admission,
            stopped.clone(),
        ))),
        Threading::PerCore => {
            // Every worker's listener on the port the first one got (`listen` may say port 0).
            let mut listeners = vec![listener];
            for _ in 1..worker_count {
                listeners.push(per_core::bind(addr).map_err(listen_error)?);
            }
            for (worker, listener) in listeners.into_iter().enumerate() {
                let listener = listener
                    .into_std()
                    .map_err(|source| StartError::Worker { source })?;
                let (gateway, admission, stopped) =
                    (gateway.clone(), admission.clone(), stopped.clone());
                let started = per_core::spawn(worker, listener, |listener| {
                    serve(gateway, listener, admission, stopped)
                })
                .map_err(|source| StartError::Worker { source })?;
                workers.push(started);
            }
        }
    }
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
        workers,
    })
}

/// Accepts connections until `stop` turns true, then drains them: up to `shutdown_grace`, then
/// the cutoff (requests still open end, recorded as `shutdown`), then [`CUT_DRAIN`] for their
/// connections to drop, then whatever is left is aborted.
async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    admission: Admission,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
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
        while connections.try_join_next().is_some() {}
        let admitted = match admission.admit(peer.ip(), Limits::of(&gateway.live().policy.server)) {
            Ok(admitted) => admitted,
            Err(refused) => {
                tracing::debug!(%peer, ?refused, "connection refused at accept: closed");
                drop(stream);
                continue;
            }
        };
        connections.spawn(connection::serve(
            gateway.clone(),
            stream,
            peer,
            stop.clone(),
            admitted,
        ));
    }
    gateway.set_listening(false);
    drop(listener);
    let grace = gateway.live().policy.server.shutdown_grace;
    if tokio::time::timeout(grace, drain(&mut connections))
        .await
        .is_ok()
    {
        return;
    }
    tracing::warn!("shutdown grace ran out: cutting off the requests still open");
    gateway.cutoff.cut();
    if tokio::time::timeout(CUT_DRAIN, drain(&mut connections))
        .await
        .is_err()
    {
        connections.abort_all();
        drain(&mut connections).await;
    }
}

/// Waits until every connection task has ended.
async fn drain(connections: &mut JoinSet<()>) {
    while connections.join_next().await.is_some() {}
}
