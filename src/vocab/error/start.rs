//! Why the gateway did not start, or why a reload was refused: one variant per cause, with the
//! io, rustls or notify error as its source. The text of each is exactly what `serve` printed
//! before the error was typed (the source's message included), so the CLI's output and exit
//! codes are unchanged; a caller that walks `source()` finds the underlying error too.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::vocab::tls_client::TlsError;

/// A start-up or reload failure.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The policy file, or a file it names, is invalid: every problem, located.
    #[error("{}", problems.join("\n"))]
    Policy {
        /// Each problem as `check` prints it (`FILE:LINE:COL: message`).
        problems: Vec<String>,
    },
    /// The audit log could not be resumed or its writer started (the stage's typed error, boxed:
    /// the vocabulary cannot name a stage's types).
    #[error("{source}")]
    Audit {
        /// What went wrong, with the path concerned; its own source is the io error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The JWT verifier's key-set client could not be built.
    #[error("{source}")]
    Jwt {
        /// The outbound TLS configuration's failure.
        #[source]
        source: TlsError,
    },
    /// A named upstream's client could not be built.
    #[error("{source}")]
    Upstream {
        /// The upstream's name (`default` for `[upstream]`).
        name: Arc<str>,
        /// The outbound TLS configuration's failure.
        #[source]
        source: TlsError,
    },
    /// The `[events]` webhook's client could not be built.
    #[error("{source}")]
    Webhook {
        /// The outbound TLS configuration's failure.
        #[source]
        source: TlsError,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}{}: {source}", if *admin { " (admin)" } else { "" })]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// True for `admin_listen`.
        admin: bool,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// A per-core serving thread (its runtime, its thread) could not be started.
    #[error("cannot start a serving thread: {source}")]
    Worker {
        /// The runtime's or the thread's error.
        #[source]
        source: std::io::Error,
    },
    /// The bound listener's address could not be read.
    #[error("{source}")]
    LocalAddr {
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The policy directory could not be watched (`serve --watch`).
    #[error("cannot watch {}: {source}", dir.display())]
    Watch {
        /// The directory.
        dir: PathBuf,
        /// The watcher's error.
        #[source]
        source: notify::Error,
    },
    /// The task reading the policy failed (it panicked or was cancelled).
    #[error("{source}")]
    Load {
        /// The task's failure.
        #[source]
        source: tokio::task::JoinError,
    },
    /// A reload under `serve --shadow` where both the live and the candidate policy failed.
    #[error("{live}\n{shadow}")]
    Both {
        /// Why the live policy was kept.
        live: Box<StartError>,
        /// Why the candidate was kept.
        shadow: Box<StartError>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn the_text_is_what_serve_printed_and_the_source_is_kept() {
        let addr: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let bind = || std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let e = StartError::Listen {
            addr,
            admin: false,
            source: bind(),
        };
        assert_eq!(
            e.to_string(),
            format!("cannot listen on {addr}: {}", bind())
        );
        assert!(e.source().is_some_and(|s| s.is::<std::io::Error>()));
        let e = StartError::Listen {
            addr,
            admin: true,
            source: bind(),
        };
        assert_eq!(
            e.to_string(),
            format!("cannot listen on {addr} (admin): {}", bind())
        );
    }

    #[test]
    fn policy_problems_print_one_a_line_and_both_failures_together() {
        let policy = |p: &[&str]| StartError::Policy {
            problems: p.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(
            policy(&["a:1:1: x", "a:2:1: y"]).to_string(),
            "a:1:1: x\na:2:1: y"
        );
        let both = StartError::Both {
            live: Box::new(policy(&["live"])),
            shadow: Box::new(policy(&["next"])),
        };
        assert_eq!(both.to_string(), "live\nnext");
    }
}
