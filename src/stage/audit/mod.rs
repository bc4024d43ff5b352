//! Stage 12, audit: exactly one record per request, whatever the outcome. It sits outermost: a
//! slot in the writer's queue is reserved before anything else runs, and the record is sent when
//! the response body ends — or is dropped, when the client goes away mid-response — so no exit
//! path can skip it. Refuses with 503 `audit_unavailable` while records cannot be written and
//! `on_error = "reject"` (that refusal is itself recorded once writing works again), and when no
//! queue slot frees up within a second (then nothing was served, and the refusal is counted in
//! `ordergate_audit_refused_total` since it has no slot to be recorded in).
//!
//! Commit before completion (CONTRACT.md §11): under `on_error = "reject"` a record is sent with
//! an acknowledgement the writer gives once the line is written (with `fsync = "always"`: once
//! it is synced), and the response body holds back its last frame until then (see `body.rs`);
//! a failed write aborts the response instead. Under `continue` nobody waits. Such a record is
//! usually written by the request's own task, without a hand-off (see `writer.rs`).

pub mod record;
pub mod verify;
pub mod writer;

use crate::vocab::body::{BodyEnd, COMMIT_WAIT, Written};
use crate::vocab::cause::Interrupted;
use crate::vocab::event::Events;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

pub use record::{Entry, Served};
use writer::{Job, Shared, Writer, WriterState};

/// Where records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditTarget {
    /// A JSON-lines file, rotated by size.
    File(PathBuf),
    /// Standard output (`path = "-"`).
    Stdout,
}

/// `fsync` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncMode {
    /// After every write.
    Always,
    /// At most every 100 ms.
    Batch,
    /// Left to the operating system.
    Never,
}

/// `on_error` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Refuse requests (503) while records cannot be written.
    Reject,
    /// Keep serving; lost records are logged and counted.
    Continue,
}

/// `[audit]`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// Where records go.
    pub target: AuditTarget,
    /// Size at which the file rotates, if it does.
    pub rotate_bytes: Option<u64>,
    /// Rotated files kept; older ones are deleted.
    pub keep_files: usize,
    /// Whether each record carries the hash of the one before.
    pub hash_chain: bool,
    /// When writes reach the disk.
    pub fsync: FsyncMode,
    /// What happens while records cannot be written.
    pub on_error: OnError,
    /// Parameter names masked in records.
    pub sensitive_params: Vec<String>,
    /// Records that may wait for the writer.
    pub queue_capacity: usize,
}

impl AuditSettings {
    /// True when `other` can be applied to a running writer (only `sensitive_params` differ).
    pub fn same_writer(&self, other: &AuditSettings) -> bool {
        let mut a = self.clone();
        a.sensitive_params = other.sensitive_params.clone();
        a == *other
    }
}

/// How long a request waits for a queue slot before it is refused.
const RESERVE_WAIT: Duration = Duration::from_secs(1);

/// The request path's handle on the writer.
pub struct AuditSink {
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    state: Arc<WriterState>,
    settings: AuditSettings,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The writer, for records written by the request that waits for them.
    shared: Arc<Shared>,
}

/// Why the audit log could not be resumed or its writer started; the io error is the source.
#[derive(Debug, thiserror::Error)]
pub enum AuditStartError {
    /// A directory or log file could not be created or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The directory or file concerned.
        path: std::path::PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The writer thread could not be spawned.
    #[error("cannot start the audit writer: {source}")]
    Thread {
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
}

impl AuditSink {
    /// Resumes the chain from the existing files and starts the writer thread, which reports
    /// `audit_unavailable` and `audit_recovered` to `events`.
    pub fn start(settings: AuditSettings, events: Events) -> Result<Self, AuditStartError> {
        // Exported from the start, so an alert on "any pruning" has a series to watch.
        metrics::counter!("ordergate_audit_files_pruned_total").increment(0);
        let tail = match &settings.target {
            AuditTarget::File(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| AuditStartError::Io {
                        path: dir.to_path_buf(),
                        source,
                    })?;
                }
                writer::read_tail(path)?
            }
            AuditTarget::Stdout => writer::ChainTail {
                seq: 0,
                hash: record::GENESIS.into(),
                file_first_seq: None,
            },
        };
        let state = Arc::new(WriterState {
            healthy: AtomicBool::new(true),
            written: AtomicU64::new(0),
            last_seq: AtomicU64::new(tail.seq),
            sensitive: ArcSwap::from_pointee(settings.sensitive_params.clone()),
            events,
        });
        let (tx, rx) = mpsc::channel(settings.queue_capacity.max(1));
        let shared = Shared::new(Writer::new(settings.clone(), state.clone(), tail));
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ordergate-audit".into())
            .spawn(move || thread_shared.run(rx))
            .map_err(|source| AuditStartError::Thread { source })?;
        Ok(Self {
            sender: Mutex::new(Some(tx)),
            state,
            settings,
            thread: Mutex::new(Some(thread)),
            shared,
        })
    }

    /// The settings the writer runs with.
    pub fn settings(&self) -> &AuditSettings {
        &self.settings
    }

    /// Applies a reloaded `sensitive_params`.
    pub fn set_sensitive(&self, params: Vec<String>) {
        self.state.sensitive.store(Arc::new(params));
    }

    /// False while records cannot be written.
    pub fn healthy(&self) -> bool {
        self.state.healthy.load(Ordering::Acquire)
    }

    /// True when requests may be served (healthy, or `on_error = "continue"`).
    pub fn accepting(&self) -> bool {
        self.settings.on_error == OnError::Continue || self.healthy()
    }

    /// True while a request could get a queue slot now (for readiness).
    pub fn has_room(&self) -> bool {
        self.sender
            .lock()
            .as_ref()
            .is_some_and(|s| s.capacity() > 0)
    }

    /// The last `seq` written.
    pub fn last_seq(&self) -> u64 {
        self.state.last_seq.load(Ordering::Acquire)
    }

    /// Reserves a queue slot for one request's record, waiting up to a second.
    pub async fn reserve(&self) -> Option<Ticket> {
        let sender = self.sender.lock().clone()?;
        match tokio::time::timeout(RESERVE_WAIT, sender.reserve_owned()).await {
            Ok(Ok(permit)) => Some(Ticket {
                permit,
                commit: self.settings.on_error == OnError::Reject,
                shared: self.shared.clone(),
            }),
            _ => {
                metrics::counter!("ordergate_audit_refused_total").increment(1);
                None
            }
        }
    }

    /// Records an event that is not a proxied request (an unfreeze), waiting for a slot and,
    /// under `on_error = "reject"`, for the record to be written: false when it was not.
    pub async fn record(&self, entry: Entry) -> bool {
        let Some(ticket) = self.reserve().await else {
            return false;
        };
        match ticket.send(entry) {
            Some(written) => {
                matches!(
                    tokio::time::timeout(COMMIT_WAIT, written).await,
                    Ok(Ok(true))
                )
            }
            None => true,
        }
    }

    /// Stops taking records, lets the writer drain everything queued (including records of
    /// requests still finishing, which hold their own slots), and waits up to `grace`.
    pub fn close(&self, grace: Duration) {
        self.sender.lock().take();
        let Some(thread) = self.thread.lock().take() else {
            return;
        };
        let deadline = Instant::now() + grace;
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            tracing::error!("audit writer did not finish within the grace period");
        }
    }
}

/// A reserved queue slot: the request's record cannot be lost for want of space.
pub struct Ticket {
    permit: mpsc::OwnedPermit<Job>,
    /// `on_error = "reject"`: the response waits for its record.
    commit: bool,
    /// The writer, for writing a waited-for record inline.
    shared: Arc<Shared>,
}

impl Ticket {
    /// Sends the record; under `on_error = "reject"` returns the writer's acknowledgement.
    pub fn send(self, entry: Entry) -> Option<Written> {
        let acknowledge = self.commit;
        self.send_with(entry, acknowledge)
    }

    /// True when the response must wait for its record.
    pub fn commits(&self) -> bool {
        self.commit
    }

    fn send_with(self, entry: Entry, acknowledge: bool) -> Option<Written> {
        // A record somebody waits for is written here when the writer is free (its slot in the
        // queue, unused, is released with the permit); otherwise it is queued as any other.
        if acknowledge && let Some(inline) = self.shared.inline() {
            return Some(inline.write(entry));
        }
        let (ack, written) = if acknowledge {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        self.permit.send(Job { entry, ack });
        written
    }
}

/// A request's record, finished when its response body ends or is dropped.
pub struct Pending {
    /// The queue slot reserved for the record.
    pub ticket: Ticket,
    /// The record, filled in as the request goes.
    pub entry: Entry,
    /// When the request arrived, for its duration.
    pub started: Instant,
}

impl Pending {
    /// True when the response must not complete before its record is written: under
    /// `on_error = "reject"`, except for the `audit_unavailable` refusal itself (it exists because
    /// records cannot be written now; it serves nothing, and waiting would hold it forever).
    pub fn commits(&self) -> bool {
        self.ticket.commits() && self.entry.reason != "audit_unavailable"
    }

    /// Fills in the last figures and sends the record. `interrupted` names why the body did
    /// not end normally (`client_disconnected`, `upstream_stalled`, ...); it becomes the record's
    /// `detail` unless the request already has one. Returns the writer's acknowledgement when the
    /// response waits for it (see [`Pending::commits`]); an interrupted body waits for nothing.
    pub fn finish(mut self, bytes_out: u64, interrupted: Option<Interrupted>) -> Option<Written> {
        let acknowledge = self.commits() && interrupted.is_none();
        self.entry.bytes_out = bytes_out;
        self.entry.duration = self.started.elapsed();
        self.entry.ts = SystemTime::now();
        if self.entry.detail.is_none() {
            self.entry.detail = interrupted.map(Interrupted::as_str);
        }
        crate::vocab::metrics::request_finished(crate::vocab::metrics::Finished {
            route: self.entry.route.as_ref(),
            status: self.entry.status,
            reason: self.entry.reason,
            duration: self.entry.duration,
            upstream: self.entry.upstream,
        });
        self.ticket.send_with(self.entry, acknowledge)
    }
}

impl BodyEnd for Pending {
    fn commits(&self) -> bool {
        Pending::commits(self)
    }

    fn finish(
        self: Box<Self>,
        bytes_out: u64,
        interrupted: Option<Interrupted>,
    ) -> Option<Written> {
        Pending::finish(*self, bytes_out, interrupted)
    }
}
