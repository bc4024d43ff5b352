//! Process signals and file watching: SIGHUP (or a change of the policy's directory with
//! `--watch`) reloads; SIGTERM and SIGINT shut down gracefully.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::signal::unix::{SignalKind, signal};

use crate::gateway::Gateway;
use crate::vocab::error::StartError;

/// Waits for SIGTERM or SIGINT.
pub async fn terminated() {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}

/// Reloads on every SIGHUP.
pub fn reload_on_sighup(gateway: Arc<Gateway>) {
    tokio::spawn(async move {
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::error!("cannot listen for SIGHUP; reload by signal is off");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the policy");
            let _ = gateway.reload().await;
        }
    });
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
