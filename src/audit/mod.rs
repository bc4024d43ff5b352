//! Stage 12, audit: exactly one record per request, whatever the outcome. It sits outermost: a
//! slot in the writer's queue is reserved before anything else runs, and the record is sent when
//! the response body ends — or is dropped, when the client goes away mid-response — so no exit
//! path can skip it. Refuses with 503 `audit_unavailable` while records cannot be written and
//! `on_error = "reject"` (that refusal is itself recorded once writing works again), and when no
//! queue slot frees up within a second (then nothing was served, and the refusal is counted in
//! `ordergate_audit_refused_total` since it has no slot to be recorded in).

pub mod record;
pub mod verify;
pub mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::sync::mpsc;

pub use record::Entry;
use writer::{Writer, WriterState};

/// Where records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditTarget {
    File(PathBuf),
    Stdout,
}

/// `fsync` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncMode {
    Always,
    Batch,
    Never,
}

/// `on_error` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Reject,
    Continue,
}

/// `[audit]`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    pub target: AuditTarget,
    pub rotate_bytes: Option<u64>,
    pub keep_files: usize,
    pub hash_chain: bool,
    pub fsync: FsyncMode,
    pub on_error: OnError,
    pub sensitive_params: Vec<String>,
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
    sender: Mutex<Option<mpsc::Sender<Entry>>>,
    state: Arc<WriterState>,
    settings: AuditSettings,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl AuditSink {
    /// Resumes the chain from the existing files and starts the writer thread.
    pub fn start(settings: AuditSettings) -> Result<Self, String> {
        let tail = match &settings.target {
            AuditTarget::File(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
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
        });
        let (tx, rx) = mpsc::channel(settings.queue_capacity.max(1));
        let writer = Writer::new(settings.clone(), state.clone(), tail);
        let thread = std::thread::Builder::new()
            .name("ordergate-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| format!("cannot start the audit writer: {e}"))?;
        Ok(Self {
            sender: Mutex::new(Some(tx)),
            state,
            settings,
            thread: Mutex::new(Some(thread)),
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
            Ok(Ok(permit)) => Some(Ticket { permit }),
            _ => {
                metrics::counter!("ordergate_audit_refused_total").increment(1);
                None
            }
        }
    }

    /// Records an event that is not a proxied request (an unfreeze), waiting for a slot.
    pub async fn record(&self, entry: Entry) -> bool {
        match self.reserve().await {
            Some(ticket) => {
                ticket.send(entry);
                true
            }
            None => false,
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
    permit: mpsc::OwnedPermit<Entry>,
}

impl Ticket {
    /// Sends the record.
    pub fn send(self, entry: Entry) {
        self.permit.send(entry);
    }
}

/// A request's record, finished when its response body ends or is dropped.
pub struct Pending {
    pub ticket: Ticket,
    pub entry: Entry,
    pub started: Instant,
}

impl Pending {
    /// Fills in the last figures and sends the record. `interrupted` names why the body did
    /// not end normally (`client_disconnected`, `upstream_stalled`, ...); it becomes the record's
    /// `detail` unless the request already has one.
    pub fn finish(mut self, bytes_out: u64, interrupted: Option<&'static str>) {
        self.entry.bytes_out = bytes_out;
        self.entry.duration = self.started.elapsed();
        self.entry.ts = SystemTime::now();
        if self.entry.detail.is_none() {
            self.entry.detail = interrupted;
        }
        crate::metrics::request_finished(&self.entry);
        self.ticket.send(self.entry);
    }
}
