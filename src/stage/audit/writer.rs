//! The audit writer: one dedicated thread owns the file, so `seq` and the hash chain are assigned
//! in one place and the request path never blocks on disk. It batches what is queued, honours
//! `fsync` (`always` per batch, `batch` at most every 100 ms, `never`), rotates at
//! `rotate_bytes` (keeping `keep_files` rotated files) and, at start, resumes `seq` and the chain
//! from the tail of the newest file.
//!
//! A failed write keeps the serialised lines and retries every 200 ms, reporting unhealthy in the
//! meantime (requests are then refused under `on_error = "reject"`); when writing works again
//! the kept lines go first and health returns by itself. Under `continue` the failed batch is
//! counted and dropped.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

use super::record::{Entry, GENESIS};
use super::{AuditSettings, AuditTarget, FsyncMode, OnError};

/// State shared between the writer thread and the request path.
#[derive(Debug)]
pub struct WriterState {
    pub healthy: AtomicBool,
    pub written: AtomicU64,
    pub last_seq: AtomicU64,
    pub sensitive: ArcSwap<Vec<String>>,
}

/// Where the chain stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTail {
    pub seq: u64,
    pub hash: String,
    /// `seq` of the first record of the current file (for naming it when it rotates).
    pub file_first_seq: Option<u64>,
}

/// Reads the last record of the newest audit file (the current one, else the newest rotated).
pub fn read_tail(path: &Path) -> Result<ChainTail, String> {
    let mut candidates = vec![path.to_path_buf()];
    candidates.extend(rotated_files(path).into_iter().rev());
    for file in &candidates {
        let Some(last) = last_line(file)? else {
            continue;
        };
        let record: serde_json::Value = serde_json::from_str(&last)
            .map_err(|e| format!("{}: last line is not an audit record: {e}", file.display()))?;
        let seq = record["seq"]
            .as_u64()
            .ok_or_else(|| format!("{}: last record has no seq", file.display()))?;
        let hash = record["hash"].as_str().unwrap_or(GENESIS).to_owned();
        let file_first_seq = if file == path { first_seq(path)? } else { None };
        return Ok(ChainTail {
            seq,
            hash,
            file_first_seq,
        });
    }
    Ok(ChainTail {
        seq: 0,
        hash: GENESIS.to_owned(),
        file_first_seq: None,
    })
}

/// Rotated siblings of `path` (`audit.jsonl.000000000001`, ...), oldest first.
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{name}.");
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            let suffix = n.strip_prefix(&prefix)?;
            (suffix.len() == 12 && suffix.bytes().all(|b| b.is_ascii_digit())).then(|| e.path())
        })
        .collect();
    files.sort();
    files
}

fn last_line(path: &Path) -> Result<Option<String>, String> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let start = len.saturating_sub(64 * 1024);
    file.seek(SeekFrom::Start(start))
        .map_err(|e| e.to_string())?;
    let mut tail = String::new();
    file.read_to_string(&mut tail)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(tail
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::to_owned))
}

fn first_seq(path: &Path) -> Result<Option<u64>, String> {
    let Ok(file) = File::open(path) else {
        return Ok(None);
    };
    let mut first = String::new();
    BufReader::new(file)
        .read_line(&mut first)
        .map_err(|e| e.to_string())?;
    if first.trim().is_empty() {
        return Ok(None);
    }
    let record: serde_json::Value =
        serde_json::from_str(&first).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(record["seq"].as_u64())
}

/// A serialised, chained line waiting to be written.
struct Queued {
    seq: u64,
    text: String,
}

/// The writer's own state; runs on its thread.
pub struct Writer {
    settings: AuditSettings,
    state: Arc<WriterState>,
    /// The chain as far as lines have been serialised.
    tail: ChainTail,
    queued: VecDeque<Queued>,
    file: Option<File>,
    /// Bytes of the current file known to be complete lines.
    committed: u64,
    file_first_seq: Option<u64>,
    last_sync: Instant,
    unsynced: bool,
}

impl Writer {
    /// Prepares a writer resuming from `tail`.
    pub fn new(settings: AuditSettings, state: Arc<WriterState>, tail: ChainTail) -> Self {
        state.last_seq.store(tail.seq, Ordering::Release);
        let committed = match &settings.target {
            AuditTarget::File(path) => fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            AuditTarget::Stdout => 0,
        };
        Self {
            file_first_seq: tail.file_first_seq,
            settings,
            state,
            tail,
            queued: VecDeque::new(),
            file: None,
            committed,
            last_sync: Instant::now(),
            unsynced: false,
        }
    }

    /// Runs until every sender is gone, then writes what is left and syncs.
    pub fn run(mut self, mut rx: mpsc::Receiver<Entry>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "audit writer could not start");
                self.state.healthy.store(false, Ordering::Release);
                return;
            }
        };
        runtime.block_on(async move {
            let mut batch = Vec::with_capacity(256);
            loop {
                if !self.queued.is_empty() {
                    // Writing failed: retry the kept lines before taking new records, so the
                    // queue (bounded) pushes back on the request path.
                    tokio::time::sleep(RETRY_EVERY).await;
                    self.write_queued();
                    continue;
                }
                let received = tokio::select! {
                    n = rx.recv_many(&mut batch, BATCH) => n,
                    _ = sleep_opt(self.sync_due_in()) => { self.sync(); continue; }
                };
                if received == 0 {
                    break;
                }
                if received < BATCH {
                    // Gather a little longer: one write (and one wake-up) per few milliseconds
                    // instead of one per record. Nobody waits for a record to be on disk.
                    tokio::time::sleep(GATHER).await;
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(entry) => batch.push(entry),
                            Err(_) => break,
                        }
                    }
                }
                metrics::gauge!("ordergate_audit_queue_depth").set(rx.len() as f64);
                self.serialise(&batch);
                batch.clear();
                self.write_queued();
            }
            while !self.queued.is_empty() {
                self.write_queued();
                if !self.queued.is_empty() {
                    tokio::time::sleep(RETRY_EVERY).await;
                }
            }
            self.sync();
        });
    }

    fn serialise(&mut self, batch: &[Entry]) {
        let sensitive = self.state.sensitive.load();
        for entry in batch {
            let seq = self.tail.seq + 1;
            let prev = self.settings.hash_chain.then_some(self.tail.hash.as_str());
            let (mut text, hash) = entry.to_line(seq, prev, &sensitive);
            text.push('\n');
            self.tail.seq = seq;
            if let Some(h) = hash {
                self.tail.hash = h;
            }
            self.queued.push_back(Queued { seq, text });
        }
    }

    /// Writes queued lines in order; on failure keeps them (reject) or drops them (continue).
    fn write_queued(&mut self) {
        match self.try_write() {
            Ok(()) => {
                if !self.state.healthy.swap(true, Ordering::AcqRel) {
                    tracing::info!("audit log writable again");
                }
            }
            Err(e) => {
                self.file = None;
                metrics::counter!("ordergate_audit_errors_total").increment(1);
                if self.state.healthy.swap(false, Ordering::AcqRel) {
                    tracing::error!(error = %e, "audit records cannot be written");
                }
                if self.settings.on_error == OnError::Continue {
                    let lost = self.queued.len() as u64;
                    self.queued.clear();
                    metrics::counter!("ordergate_audit_records_lost_total").increment(lost);
                }
            }
        }
    }

    fn try_write(&mut self) -> std::io::Result<()> {
        let path = match &self.settings.target {
            AuditTarget::Stdout => {
                let mut out = std::io::stdout().lock();
                while let Some(q) = self.queued.pop_front() {
                    out.write_all(q.text.as_bytes())?;
                    self.account(&q);
                }
                return out.flush();
            }
            AuditTarget::File(path) => path.clone(),
        };
        while !self.queued.is_empty() {
            if self.file.is_none() {
                self.file = Some(open_at(&path, self.committed)?);
            }
            let mut chunk = Vec::new();
            let mut lines = 0;
            for q in &self.queued {
                let next = self.committed + chunk.len() as u64 + q.text.len() as u64;
                let over = self.settings.rotate_bytes.is_some_and(|limit| next > limit);
                if over && (self.committed > 0 || lines > 0) {
                    break;
                }
                chunk.extend_from_slice(q.text.as_bytes());
                lines += 1;
            }
            if lines == 0 {
                self.rotate(&path)?;
                continue;
            }
            if let Some(file) = self.file.as_mut() {
                file.write_all(&chunk)?;
                if self.settings.fsync == FsyncMode::Always {
                    file.sync_data()?;
                }
            }
            self.committed += chunk.len() as u64;
            self.unsynced = self.settings.fsync == FsyncMode::Batch;
            metrics::counter!("ordergate_audit_bytes_total").increment(chunk.len() as u64);
            for _ in 0..lines {
                if let Some(q) = self.queued.pop_front() {
                    if self.file_first_seq.is_none() {
                        self.file_first_seq = Some(q.seq);
                    }
                    self.account(&q);
                }
            }
            if self.unsynced && self.last_sync.elapsed() >= SYNC_EVERY {
                self.sync();
            }
        }
        Ok(())
    }

    fn account(&self, q: &Queued) {
        self.state.last_seq.store(q.seq, Ordering::Release);
        self.state.written.fetch_add(1, Ordering::AcqRel);
        metrics::counter!("ordergate_audit_records_total").increment(1);
    }

    /// Renames the current file to `NAME.<first seq>` and starts a new one.
    fn rotate(&mut self, path: &Path) -> std::io::Result<()> {
        if let Some(file) = self.file.take() {
            file.sync_all()?;
        }
        let first = self.file_first_seq.unwrap_or(self.tail.seq);
        let rotated = PathBuf::from(format!("{}.{first:012}", path.display()));
        fs::rename(path, &rotated)?;
        self.committed = 0;
        self.file_first_seq = None;
        let rotated_files = rotated_files(path);
        let excess = rotated_files.len().saturating_sub(self.settings.keep_files);
        for old in &rotated_files[..excess] {
            if let Err(e) = fs::remove_file(old) {
                tracing::warn!(file = %old.display(), error = %e, "could not remove an old audit file");
            }
        }
        self.file = Some(open_at(path, 0)?);
        Ok(())
    }

    fn sync_due_in(&self) -> Option<Duration> {
        self.unsynced
            .then(|| SYNC_EVERY.saturating_sub(self.last_sync.elapsed()))
    }

    fn sync(&mut self) {
        if let Some(file) = &self.file
            && self.unsynced
            && let Err(e) = file.sync_data()
        {
            tracing::warn!(error = %e, "audit fsync failed");
            metrics::counter!("ordergate_audit_errors_total").increment(1);
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
    }
}

const RETRY_EVERY: Duration = Duration::from_millis(200);
/// How long the writer gathers records before writing them, and how many it takes at once.
const GATHER: Duration = Duration::from_millis(2);
const BATCH: usize = 4096;
const SYNC_EVERY: Duration = Duration::from_millis(100);

/// Opens the audit file for appending, cutting off a partial line a failed write left behind.
fn open_at(path: &Path, committed: u64) -> std::io::Result<File> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    if file.metadata()?.len() > committed {
        file.set_len(committed)?;
    }
    Ok(file)
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
