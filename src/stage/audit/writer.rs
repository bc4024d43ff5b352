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
//!
//! A record may come with an acknowledgement (under `on_error = "reject"` its response waits for
//! it): answered `true` once its line is written — with `fsync = "always"`, synced — and `false`
//! at once when the write fails (the line is still kept and retried). This is group commit: the
//! records that arrive while one batch is written and synced go out together in the next, so
//! waiting costs one write (and one fsync) per batch, not per request; and a batch with a waiter
//! is not held back to gather more.
//!
//! A record whose response waits is normally written by the request's own task instead
//! ([`Shared::inline`]): it takes the writer's lock if nobody holds it, serialises and
//! writes its line, and its acknowledgement is answered before the body polls for it. That
//! saves the two cross-thread wake-ups per record (to the writer thread and back) and lets the
//! response's last byte go in the same socket write as the rest. It applies only to a file
//! target with `fsync = "batch"` or `"never"` (a sync per record, or a pipe on stdout, must not
//! block a runtime worker), only while the log is healthy and no write took longer than
//! [`SLOW_WRITE`] (a slow disk sends every record back to the writer thread until a write is
//! fast again); a line it could not write stays queued for the thread, which it wakes. The
//! periodic `fsync` stays on the thread, on a duplicate of the file handle, outside the lock.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc, oneshot};

use super::record::{Entry, GENESIS, chain_hash};
use super::{AuditSettings, AuditTarget, FsyncMode, OnError};
use crate::vocab::event::{Event, EventKind, Events};

/// State shared between the writer thread and the request path.
#[derive(Debug)]
pub struct WriterState {
    /// False while records cannot be written.
    pub healthy: AtomicBool,
    /// Records written since startup.
    pub written: AtomicU64,
    /// `seq` of the last record written.
    pub last_seq: AtomicU64,
    /// Parameter names masked in records; swapped on reload.
    pub sensitive: ArcSwap<Vec<String>>,
    /// Where losing and regaining the log is reported (CONTRACT §8.2).
    pub events: Events,
}

/// Where the chain stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTail {
    /// `seq` of the last record.
    pub seq: u64,
    /// Hash of the last record, which the next one chains to.
    pub hash: String,
    /// `seq` of the first record of the current file (for naming it when it rotates).
    pub file_first_seq: Option<u64>,
}

/// Resumes the chain from the newest audit file (the current one, else the newest rotated).
///
/// A log of any shape resumes: the newest file is read back from its end to its last complete
/// line that is a record whose own hash checks out. Whatever follows it (a line cut by a crash
/// or a SIGKILL mid-write, garbage) is cut off; a file with no such line at all is set aside as
/// `NAME.damaged-<unix seconds>` (kept, never deleted) and the chain resumes from the file
/// before it. Both are logged at WARN and counted in `ordergate_audit_tail_repairs_total`. No
/// record a client was told about is lost by the cut: a response completes only after its whole
/// line (newline included) was written.
pub fn read_tail(path: &Path) -> Result<ChainTail, super::AuditStartError> {
    metrics::counter!("ordergate_audit_tail_repairs_total").increment(0);
    let mut candidates = vec![path.to_path_buf()];
    candidates.extend(rotated_files(path).into_iter().rev());
    for file in &candidates {
        let Some(tail) = resume_from(file).map_err(|source| super::AuditStartError::Io {
            path: file.clone(),
            source,
        })?
        else {
            continue;
        };
        let file_first_seq = if file == path { first_seq(path) } else { None };
        return Ok(ChainTail {
            seq: tail.seq,
            hash: tail.hash.unwrap_or_else(|| GENESIS.to_owned()),
            file_first_seq,
        });
    }
    Ok(ChainTail {
        seq: 0,
        hash: GENESIS.to_owned(),
        file_first_seq: None,
    })
}

/// The last complete record of one file, after cutting off (or setting aside) what is damaged.
fn resume_from(path: &Path) -> std::io::Result<Option<LastRecord>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let (keep, last) = last_record(&mut file, len)?;
    if keep == len {
        return Ok(last);
    }
    metrics::counter!("ordergate_audit_tail_repairs_total").increment(1);
    if last.is_none() {
        drop(file);
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = PathBuf::from(format!("{}.damaged-{secs}", path.display()));
        fs::rename(path, &aside)?;
        tracing::warn!(
            file = %path.display(),
            moved_to = %aside.display(),
            bytes = len,
            "audit file holds no complete record; set aside, the chain resumes before it"
        );
        return Ok(None);
    }
    drop(file);
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(keep)?;
    file.sync_all()?;
    tracing::warn!(
        file = %path.display(),
        cut_bytes = len - keep,
        "audit log ended in a partial or damaged line; cut back to the last complete record"
    );
    Ok(last)
}

/// What resuming needs from a record.
#[derive(Debug, PartialEq, Eq)]
struct LastRecord {
    seq: u64,
    /// `None` when the log is written without a hash chain.
    hash: Option<String>,
}

/// How far back the scan reads at a time.
const SCAN_CHUNK: u64 = 64 * 1024;
/// A line longer than this is not one the writer wrote (its fields are bounded): damage.
const MAX_LINE: u64 = 4 * 1024 * 1024;

/// Scans `file` back from its end: the length to keep (through the newline of the last
/// complete, self-consistent record) and that record. Works on bytes, so a scan window or a
/// damaged line that starts inside a multi-byte character is no error.
fn last_record(file: &mut File, len: u64) -> std::io::Result<(u64, Option<LastRecord>)> {
    // The newline ending the line under test; bytes after the last newline are a partial line.
    let mut newline = previous_newline(file, len)?;
    while let Some(end) = newline {
        let start = previous_newline(file, end)?.map_or(0, |p| p + 1);
        if end - start <= MAX_LINE {
            let mut line = vec![0; (end - start) as usize];
            file.seek(SeekFrom::Start(start))?;
            file.read_exact(&mut line)?;
            if let Some(record) = parse_record(&line) {
                return Ok((end + 1, Some(record)));
            }
        }
        newline = start.checked_sub(1);
    }
    Ok((0, None))
}

/// The position of the last `\n` before `before`, reading back a chunk at a time.
fn previous_newline(file: &mut File, before: u64) -> std::io::Result<Option<u64>> {
    let mut end = before;
    let mut chunk = vec![0; SCAN_CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(SCAN_CHUNK);
        let window = &mut chunk[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(window)?;
        if let Some(i) = window.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + i as u64));
        }
        end = start;
    }
    Ok(None)
}

/// `line` as a record whose `hash` is its own (or, unchained, has `"hash":null`), else `None`.
fn parse_record(line: &[u8]) -> Option<LastRecord> {
    let text = std::str::from_utf8(line).ok()?;
    let record: serde_json::Value = serde_json::from_str(text).ok()?;
    let seq = record.get("seq")?.as_u64()?;
    match record.get("hash")? {
        serde_json::Value::Null => Some(LastRecord { seq, hash: None }),
        serde_json::Value::String(hash) => {
            let prev = record.get("prev_hash")?.as_str()?;
            let body = text.strip_suffix(&format!(",\"hash\":\"{hash}\"}}"))?;
            (chain_hash(prev, &format!("{body}}}")) == *hash).then(|| LastRecord {
                seq,
                hash: Some(hash.clone()),
            })
        }
        _ => None,
    }
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

/// The `seq` of a file's first record (for naming it when it rotates), if it has one.
fn first_seq(path: &Path) -> Option<u64> {
    let file = File::open(path).ok()?;
    let mut first = Vec::new();
    BufReader::new(file)
        .take(MAX_LINE)
        .read_until(b'\n', &mut first)
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&first).ok()?["seq"].as_u64()
}

/// One record on its way to the writer, with the acknowledgement its response waits for.
pub struct Job {
    /// The record.
    pub entry: Entry,
    /// Told whether the record was written, when the response waits for it.
    pub ack: Option<oneshot::Sender<bool>>,
}

/// A serialised, chained line waiting to be written.
struct Queued {
    seq: u64,
    text: String,
    ack: Option<oneshot::Sender<bool>>,
}

impl Queued {
    /// Tells a waiting response how its record fared (once).
    fn answer(&mut self, written: bool) {
        if let Some(ack) = self.ack.take() {
            // The response may have gone already; then nobody needs the answer.
            let _ = ack.send(written);
        }
    }
}

/// What the writer thread and the request path share: the writer behind its lock.
pub struct Shared {
    writer: Mutex<Writer>,
    /// Wakes the thread: a line written inline is waiting for a retry, or an inline write made
    /// the file need a sync.
    wake: Notify,
    /// Records may be written by the request path (file target, no per-batch sync).
    inline: bool,
    /// A recent write was slow: records go to the thread until one of its writes is fast.
    slow: AtomicBool,
}

impl Shared {
    /// Shares `writer` between its thread and the request path.
    pub fn new(writer: Writer) -> Arc<Self> {
        let inline = matches!(writer.settings.target, AuditTarget::File(_))
            && writer.settings.fsync != FsyncMode::Always;
        Arc::new(Self {
            writer: Mutex::new(writer),
            wake: Notify::new(),
            inline,
            slow: AtomicBool::new(false),
        })
    }

    /// The writer, for writing one record on the calling task: `Some` when it is free, healthy
    /// and fast (else the record goes through the queue).
    pub fn inline(&self) -> Option<Inline<'_>> {
        if !self.inline || self.slow.load(Ordering::Acquire) {
            return None;
        }
        let writer = self.writer.try_lock()?;
        (!writer.closed && writer.queued.is_empty() && writer.state.healthy.load(Ordering::Acquire))
            .then_some(Inline {
                shared: self,
                writer,
            })
    }

    /// Syncs the file if it has unsynced lines, outside the lock (on a duplicate handle), so
    /// an inline writer never waits for an `fsync`.
    fn sync(&self) {
        let file = self.writer.lock().take_sync();
        if let Some(file) = file
            && let Err(e) = file.sync_data()
        {
            tracing::warn!(error = %e, "audit fsync failed");
            metrics::counter!("ordergate_audit_errors_total").increment(1);
        }
    }

    /// Runs the writer thread until every sender is gone, then writes what is left and syncs.
    pub fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Job>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "audit writer could not start");
                let writer = self.writer.lock();
                writer.state.healthy.store(false, Ordering::Release);
                writer
                    .state
                    .events
                    .emit(Event::new(EventKind::AuditUnavailable));
                return;
            }
        };
        runtime.block_on(async move {
            let mut batch = Vec::with_capacity(256);
            loop {
                let (queued, healthy, sync_due) = {
                    let writer = self.writer.lock();
                    (
                        !writer.queued.is_empty(),
                        writer.state.healthy.load(Ordering::Acquire),
                        writer.sync_due_in(),
                    )
                };
                if queued {
                    // Writing failed: retry the kept lines before taking new records, so the
                    // queue (bounded) pushes back on the request path. A line an inline
                    // writer left while the log was healthy goes at once.
                    if !healthy {
                        tokio::time::sleep(RETRY_EVERY).await;
                    }
                    self.write_timed(&mut Vec::new());
                    continue;
                }
                let received = tokio::select! {
                    n = rx.recv_many(&mut batch, BATCH) => n,
                    () = self.wake.notified() => continue,
                    () = sleep_opt(sync_due) => { self.sync(); continue; }
                };
                if received == 0 {
                    break;
                }
                if received < BATCH && batch.iter().all(|job| job.ack.is_none()) {
                    // Gather a little longer: one write (and one wake-up) per few milliseconds
                    // instead of one per record. Nobody waits for a record to be on disk.
                    tokio::time::sleep(GATHER).await;
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                }
                metrics::gauge!("ordergate_audit_queue_depth").set(rx.len() as f64);
                self.write_timed(&mut batch);
            }
            // No inline write after this point: what is queued is drained, then synced.
            self.writer.lock().closed = true;
            loop {
                let left = {
                    let mut writer = self.writer.lock();
                    writer.write_queued();
                    !writer.queued.is_empty()
                };
                if !left {
                    break;
                }
                tokio::time::sleep(RETRY_EVERY).await;
            }
            self.sync();
        });
    }

    /// Serialises `batch` and writes everything queued; a fast write lets inline writing
    /// resume after a slow one.
    fn write_timed(&self, batch: &mut Vec<Job>) {
        let mut writer = self.writer.lock();
        writer.serialise(batch);
        let started = Instant::now();
        writer.write_queued();
        let fast = started.elapsed() <= SLOW_WRITE && writer.queued.is_empty();
        drop(writer);
        if fast {
            self.slow.store(false, Ordering::Release);
        }
    }
}

/// The writer taken by a request whose response waits for its record.
pub struct Inline<'a> {
    shared: &'a Shared,
    writer: parking_lot::MutexGuard<'a, Writer>,
}

impl Inline<'_> {
    /// Serialises and writes `entry`; the acknowledgement is answered already (`false` if the
    /// write failed: the line then stays queued, and the thread retries it).
    pub fn write(mut self, entry: Entry) -> oneshot::Receiver<bool> {
        let (ack, written) = oneshot::channel();
        let was_unsynced = self.writer.unsynced;
        self.writer.serialise_one(entry, Some(ack));
        let started = Instant::now();
        self.writer.write_queued();
        let took = started.elapsed();
        let wake = !self.writer.queued.is_empty() || (self.writer.unsynced && !was_unsynced);
        let Self { shared, writer } = self;
        drop(writer);
        if took > SLOW_WRITE {
            shared.slow.store(true, Ordering::Release);
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                "audit write was slow; records go through the writer thread until writes are fast again"
            );
        }
        if wake {
            shared.wake.notify_one();
        }
        written
    }
}

/// The writer's own state; the thread and inline writers use it under [`Shared`]'s lock.
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
    /// The thread is draining for shutdown: nothing is written inline any more.
    closed: bool,
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
            closed: false,
        }
    }

    fn serialise(&mut self, batch: &mut Vec<Job>) {
        for Job { entry, ack } in batch.drain(..) {
            self.serialise_one(entry, ack);
        }
    }

    /// Gives the record the next `seq`, chains it and queues its line.
    fn serialise_one(&mut self, entry: Entry, ack: Option<oneshot::Sender<bool>>) {
        let seq = self.tail.seq + 1;
        let prev = self.settings.hash_chain.then_some(self.tail.hash.as_str());
        let (mut text, hash) = entry.to_line(seq, prev, &self.state.sensitive.load());
        text.push('\n');
        self.tail.seq = seq;
        if let Some(h) = hash {
            self.tail.hash = h;
        }
        self.queued.push_back(Queued { seq, text, ack });
    }

    /// Writes queued lines in order; on failure keeps them (reject) or drops them (continue).
    fn write_queued(&mut self) {
        match self.try_write() {
            Ok(()) => {
                if !self.state.healthy.swap(true, Ordering::AcqRel) {
                    tracing::info!("audit log writable again");
                    self.state
                        .events
                        .emit(Event::new(EventKind::AuditRecovered));
                }
            }
            Err(e) => {
                self.file = None;
                metrics::counter!("ordergate_audit_errors_total").increment(1);
                if self.state.healthy.swap(false, Ordering::AcqRel) {
                    tracing::error!(error = %e, "audit records cannot be written");
                    self.state
                        .events
                        .emit(Event::new(EventKind::AuditUnavailable));
                }
                // Their responses are aborted now; the lines themselves are kept (reject) and
                // written when the log works again.
                for q in &mut self.queued {
                    q.answer(false);
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
                let mut written = Vec::new();
                while let Some(q) = self.queued.pop_front() {
                    if let Err(e) = out.write_all(q.text.as_bytes()) {
                        self.queued.push_front(q);
                        return Err(e);
                    }
                    self.account(&q);
                    crate::vocab::metrics::audit_written(1, 0);
                    written.push(q);
                }
                out.flush()?;
                for mut q in written {
                    q.answer(true);
                }
                return Ok(());
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
            crate::vocab::metrics::audit_written(lines as u64, chunk.len() as u64);
            for _ in 0..lines {
                if let Some(mut q) = self.queued.pop_front() {
                    if self.file_first_seq.is_none() {
                        self.file_first_seq = Some(q.seq);
                    }
                    self.account(&q);
                    q.answer(true);
                }
            }
        }
        Ok(())
    }

    fn account(&self, q: &Queued) {
        self.state.last_seq.store(q.seq, Ordering::Release);
        self.state.written.fetch_add(1, Ordering::AcqRel);
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
            // Deleting evidence is worth a WARN even when the policy asks for it: after this,
            // `audit verify` can only check the chain from a later seq.
            match fs::remove_file(old) {
                Ok(()) => {
                    metrics::counter!("ordergate_audit_files_pruned_total").increment(1);
                    tracing::warn!(
                        file = %old.display(),
                        keep_files = self.settings.keep_files,
                        "rotated audit file deleted (keep_files); the chain now starts later"
                    );
                }
                Err(e) => {
                    tracing::warn!(file = %old.display(), error = %e, "could not remove an old audit file");
                }
            }
        }
        self.file = Some(open_at(path, 0)?);
        Ok(())
    }

    fn sync_due_in(&self) -> Option<Duration> {
        self.unsynced
            .then(|| SYNC_EVERY.saturating_sub(self.last_sync.elapsed()))
    }

    /// The file to sync now, as a duplicate handle (the sync runs outside the lock), if lines
    /// were written since the last sync. Marks them synced: a line written while the sync runs
    /// marks the file unsynced again.
    fn take_sync(&mut self) -> Option<File> {
        let unsynced = std::mem::take(&mut self.unsynced);
        self.last_sync = Instant::now();
        let file = self.file.as_ref().filter(|_| unsynced)?;
        match file.try_clone() {
            Ok(dup) => Some(dup),
            Err(e) => {
                // No descriptor to spare: sync here, under the lock, rather than not at all.
                tracing::warn!(error = %e, "audit fsync on a duplicate handle failed; syncing in place");
                if let Err(e) = file.sync_data() {
                    tracing::warn!(error = %e, "audit fsync failed");
                    metrics::counter!("ordergate_audit_errors_total").increment(1);
                }
                None
            }
        }
    }
}

const RETRY_EVERY: Duration = Duration::from_millis(200);
/// How long the writer gathers records before writing them, and how many it takes at once.
const GATHER: Duration = Duration::from_millis(2);
const BATCH: usize = 4096;
const SYNC_EVERY: Duration = Duration::from_millis(100);
/// A write taking longer than this (a page-cache write takes microseconds) sends records to the
/// writer thread, off the runtime's workers, until the thread's writes are fast again.
pub const SLOW_WRITE: Duration = Duration::from_millis(2);

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

#[cfg(test)]
mod tests;
