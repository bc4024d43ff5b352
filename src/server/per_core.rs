//! Per-core threading: one thread per worker, each with a single-thread runtime, its own
//! `SO_REUSEPORT` listener on the gateway's address (the kernel spreads new connections over
//! them) and, through [`crate::vocab::worker`], its own upstream pools. A connection, its
//! requests and their upstream exchanges stay on one thread: no work-stealing queue, no wake-up
//! of another thread per request. An idle worker does not take work from a busy one, which is
//! the price; with many connections the kernel's spread evens out.
//!
//! `SO_REUSEPORT` lets another socket of the same user bind the same port too (Linux allows it
//! only for the same effective user): run the gateway under a user of its own.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};
use tokio::runtime::Runtime;

/// What the kernel queues for accept on each listener (tokio's own default).
const BACKLOG: u32 = 1024;

/// A listener on `addr` that other workers' listeners may share.
pub(super) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv6() {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Starts worker `worker`'s thread, which runs `serve` on a runtime of its own.
pub(super) fn spawn(
    worker: usize,
    serve: impl FnOnce(&Runtime) + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(format!("ordergate-w{worker}"))
        .spawn(move || {
            crate::vocab::worker::enter(worker);
            serve(&runtime);
        })
}
