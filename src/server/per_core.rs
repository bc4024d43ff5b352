//! Per-core threading: one thread per worker, each with a single-thread runtime, its own
//! `SO_REUSEPORT` listener on the gateway's address (the kernel spreads new connections over
//! them) and, through [`crate::vocab::worker`], its own upstream pools. A connection, its
//! requests and their upstream exchanges stay on one thread: no work-stealing queue, no wake-up
//! of another thread per request. An idle worker does not take work from a busy one, which is
//! the price; with many connections the kernel's spread evens out.
//!
//! `SO_REUSEPORT` lets another socket of the same user bind the same port too (Linux allows it
//! only for the same effective user): the first listener checks with a plain bind that the port
//! is free; still, run the gateway under a user of its own.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;

/// What the kernel queues for accept on each listener (tokio's own default).
const BACKLOG: u32 = 1024;

/// The first worker's listener on the configured `addr`. `SO_REUSEPORT` would let it join a
/// listener some other process (a second gateway started by mistake, an old one still running)
/// holds on the port, and share its connections; a plain bind first refuses a port in use,
/// as the shared threading's listener does.
pub(super) fn bind_first(addr: SocketAddr) -> std::io::Result<TcpListener> {
    if addr.port() != 0 {
        let probe = new_socket(addr)?;
        probe.set_reuseaddr(true)?;
        probe.bind(addr)?;
    }
    bind(addr)
}

fn new_socket(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    if addr.is_ipv6() {
        TcpSocket::new_v6()
    } else {
        TcpSocket::new_v4()
    }
}

/// A listener on `addr` that other workers' listeners may share.
pub(super) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = new_socket(addr)?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// A started worker thread, as shutdown sees it.
pub(super) struct Worker {
    /// Sent when its accept loop has drained (or been cut off and aborted).
    pub(super) served: oneshot::Receiver<()>,
    /// Sent when its abandoned requests have ended and its runtime is gone.
    pub(super) done: oneshot::Receiver<()>,
}

/// How long a worker whose loop has ended waits for the abandoned requests still running (they
/// end at the shutdown cutoff, which comes once every loop has ended), and how long its runtime
/// then gets to drop what is left. The thread is never joined: one that overruns is left
/// behind, so the exit stays bounded.
const LEFTOVER_WAIT: Duration = Duration::from_secs(2);
const RUNTIME_DROP: Duration = Duration::from_millis(100);

/// Starts worker `worker`'s thread, which runs `serve` on `listener` on a runtime of its own,
/// then waits (bounded) for abandoned requests before dropping the runtime. The listener is
/// registered with that runtime here, so a failure fails the start.
pub(super) fn spawn<S, F>(
    worker: usize,
    listener: std::net::TcpListener,
    serve: S,
) -> std::io::Result<Worker>
where
    S: FnOnce(TcpListener) -> F,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let serve = {
        let _in_runtime = runtime.enter();
        serve(TcpListener::from_std(listener)?)
    };
    let (served_tx, served) = oneshot::channel();
    let (done_tx, done) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("ordergate-w{worker}"))
        .spawn(move || {
            crate::vocab::worker::enter(worker);
            runtime.block_on(serve);
            let _ = served_tx.send(());
            runtime.block_on(async {
                let _ = tokio::time::timeout(LEFTOVER_WAIT, super::finish_anyway::settled()).await;
            });
            runtime.shutdown_timeout(RUNTIME_DROP);
            let _ = done_tx.send(());
        })?;
    Ok(Worker { served, done })
}
