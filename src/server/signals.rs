//! Process signals and file watching: SIGHUP (or a change of the policy's directory with
//! `--watch`) reloads; SIGTERM and SIGINT shut down gracefully.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::gateway::Gateway;
use crate::vocab::error::StartError;

/// The process's signals, registered before the gateway says it listens: a SIGHUP, SIGTERM or
/// SIGINT sent as soon as it does is then held for the gateway, never met by the default
/// action (which ends the process on the spot).
pub struct Signals {
    hup: Option<Signal>,
    term: Option<Signal>,
    int: Option<Signal>,
}

impl Signals {
    /// Registers SIGHUP, SIGTERM and SIGINT (inside the runtime); one that cannot be is
    /// reported and left to its default.
    pub fn register() -> Self {
        Self {
            hup: listen(SignalKind::hangup(), "SIGHUP"),
            ..Self::termination()
        }
    }

    /// SIGTERM and SIGINT only (SIGHUP keeps its default: closing the terminal ends the demo).
    pub fn termination() -> Self {
        Self {
            hup: None,
            term: listen(SignalKind::terminate(), "SIGTERM"),
            int: listen(SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// Reloads `gateway` on every SIGHUP.
    pub fn reload_on_sighup(&mut self, gateway: Arc<Gateway>) {
        let Some(mut hup) = self.hup.take() else {
            tracing::error!("reload by signal is off");
            return;
        };
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the policy");
                let _ = gateway.reload().await;
            }
        });
    }

    /// Waits for SIGTERM or SIGINT (forever when neither could be registered).
    pub async fn terminated(self) {
        let wait = |signal: Option<Signal>| async move {
            match signal {
                Some(mut signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = wait(self.term) => tracing::info!("SIGTERM: shutting down"),
            _ = wait(self.int) => tracing::info!("SIGINT: shutting down"),
        }
    }
}

/// `kind` registered, or reported (as `name`) and left to its default.
fn listen(kind: SignalKind, name: &'static str) -> Option<Signal> {
    signal(kind)
        .inspect_err(|e| tracing::error!(error = %e, "cannot listen for {name}"))
        .ok()
}

/// Reloads when anything in the policy file's directory changes (atomic renames and symlink
/// swaps replace the file itself, so the directory is what is watched). Changes are debounced.
pub fn reload_on_change(gateway: Arc<Gateway>) -> Result<(), StartError> {
    let file = gateway.policy_path().to_path_buf();
    let dir: PathBuf = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = tx.send(());
        }
    })
    .map_err(|source| StartError::Watch {
        dir: dir.clone(),
        source,
    })?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|source| StartError::Watch {
            dir: dir.clone(),
            source,
        })?;
    tokio::spawn(async move {
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            while rx.try_recv().is_ok() {}
            tracing::info!("policy directory changed: reloading");
            let _ = gateway.reload().await;
        }
    });
    Ok(())
}
