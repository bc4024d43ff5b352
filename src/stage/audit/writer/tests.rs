//! Resuming the chain from logs of every shape a crash, a disk or an old version can leave.

use std::io::Write;

use super::*;

/// A chained record line with `path` as long as asked (longer than the writer now writes, as an
/// older version could have), and its hash.
fn record(seq: u64, prev: &str, path: &str) -> (String, String) {
    let body = format!("{{\"seq\":{seq},\"path\":\"{path}\",\"prev_hash\":\"{prev}\"}}");
    let hash = chain_hash(prev, &body);
    let line = format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]);
    (line, hash)
}

/// `n` chained lines, each ending in a newline.
fn log(n: u64, path: &str) -> (String, String) {
    let mut text = String::new();
    let mut prev = GENESIS.to_owned();
    for seq in 1..=n {
        let (line, hash) = record(seq, &prev, path);
        text.push_str(&line);
        text.push('\n');
        prev = hash;
    }
    (text, prev)
}

fn write(path: &Path, bytes: &[u8]) {
    let mut file = File::create(path).unwrap();
    file.write_all(bytes).unwrap();
}

#[test]
fn a_record_longer_than_a_scan_chunk_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (text, last) = log(3, &"a".repeat(3 * SCAN_CHUNK as usize));
    write(&path, text.as_bytes());
    let tail = read_tail(&path).unwrap();
    assert_eq!(
        (tail.seq, tail.hash, tail.file_first_seq),
        (3, last, Some(1))
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), text, "nothing was cut");
}

#[test]
fn a_scan_window_starting_inside_a_multibyte_character_resumes() {
    // One of the three paddings puts every chunk edge inside a three-byte character.
    for pad in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let name = format!("{}{}", "x".repeat(pad), "张".repeat(SCAN_CHUNK as usize));
        let (text, last) = log(2, &name);
        write(&path, text.as_bytes());
        let tail = read_tail(&path).unwrap();
        assert_eq!((tail.seq, tail.hash), (2, last), "pad {pad}");
    }
}

#[test]
fn a_partial_last_line_is_cut_back_and_the_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (text, last) = log(3, "/v1/orders");
    let (fourth, _) = record(4, &last, "/v1/orders");
    // Cut inside the line, and just before its newline: neither was ever complete.
    for cut in [fourth.len() / 2, fourth.len()] {
        write(&path, format!("{text}{}", &fourth[..cut]).as_bytes());
        let tail = read_tail(&path).unwrap();
        assert_eq!((tail.seq, &tail.hash), (3, &last), "cut at {cut}");
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
    }
}

#[test]
fn garbage_after_the_last_record_is_cut_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (text, last) = log(2, "/v1/orders");
    let (forged, _) = record(3, GENESIS, "/v1/orders");
    let tampered = forged.replace("/v1/orders", "/v1/other");
    let mut bytes = text.clone().into_bytes();
    bytes.extend_from_slice(b"not json\n\n{\"seq\":9}\n");
    bytes.extend_from_slice(tampered.as_bytes());
    bytes.extend_from_slice(b"\n\xe5\xbc\xa0\xff\xfe\n\xe5\xbc");
    write(&path, &bytes);
    let tail = read_tail(&path).unwrap();
    assert_eq!((tail.seq, tail.hash), (2, last));
    assert_eq!(fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn a_file_without_a_record_is_set_aside_and_the_rotated_chain_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (text, last) = log(4, "/v1/orders");
    write(
        &dir.path().join("audit.jsonl.000000000001"),
        text.as_bytes(),
    );
    write(&path, b"\xff\xfe half a line with no end");
    let tail = read_tail(&path).unwrap();
    assert_eq!((tail.seq, tail.hash, tail.file_first_seq), (4, last, None));
    assert!(!path.exists());
    let aside: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("audit.jsonl.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged file is kept");
}

#[test]
fn an_unchained_log_resumes_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write(
        &path,
        b"{\"seq\":1,\"prev_hash\":null,\"hash\":null}\n{\"seq\":2,\"prev_hash\":null,\"hash\":null}\n{\"se",
    );
    let tail = read_tail(&path).unwrap();
    assert_eq!((tail.seq, tail.hash.as_str()), (2, GENESIS));
}

fn settings(target: AuditTarget, fsync: FsyncMode) -> AuditSettings {
    AuditSettings {
        target,
        rotate_bytes: None,
        keep_files: 5,
        hash_chain: true,
        fsync,
        on_error: OnError::Reject,
        sensitive_params: Vec::new(),
        queue_capacity: 16,
    }
}

fn shared(settings: AuditSettings) -> Arc<Shared> {
    let state = Arc::new(WriterState {
        healthy: AtomicBool::new(true),
        written: AtomicU64::new(0),
        last_seq: AtomicU64::new(0),
        sensitive: ArcSwap::from_pointee(Vec::new()),
        events: crate::vocab::event::Events::default(),
    });
    let tail = ChainTail {
        seq: 0,
        hash: GENESIS.to_owned(),
        file_first_seq: None,
    };
    Shared::new(Writer::new(settings, state, tail))
}

/// A record written inline is on file, chained, and acknowledged before `write` returns: the
/// response never waits for another thread.
#[test]
fn an_inline_record_is_written_and_acknowledged_before_write_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let shared = shared(settings(AuditTarget::File(path.clone()), FsyncMode::Batch));
    for seq in 1..=2 {
        // A write a loaded machine made slower than `SLOW_WRITE` would send the next record to
        // the thread (tested on its own): not what this test is about.
        shared.slow.store(false, Ordering::Release);
        let mut written = shared
            .inline()
            .expect("a free, healthy writer")
            .write(super::super::record::tests::entry());
        assert_eq!(written.try_recv(), Ok(true));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), seq);
    }
    let summary = super::super::verify::verify(&[path]).unwrap();
    assert_eq!(summary.records, 2);
}

/// Inline writing never blocks a worker on a sync, a pipe, a busy lock, a failed log or a slow
/// disk: those records go through the queue.
#[test]
fn records_go_through_the_queue_when_writing_inline_could_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    assert!(
        shared(settings(AuditTarget::File(path.clone()), FsyncMode::Always))
            .inline()
            .is_none()
    );
    assert!(
        shared(settings(AuditTarget::Stdout, FsyncMode::Never))
            .inline()
            .is_none()
    );
    let free = shared(settings(AuditTarget::File(path.clone()), FsyncMode::Never));
    let held = free.writer.lock();
    assert!(free.inline().is_none(), "the lock is held");
    drop(held);
    free.slow.store(true, Ordering::Release);
    assert!(free.inline().is_none(), "a write was slow");
    free.slow.store(false, Ordering::Release);
    assert!(free.inline().is_some());
}

/// A failed inline write answers `false` at once (the response is aborted), keeps the line for
/// the thread's retry and turns the log unhealthy; no further record is written inline until
/// the kept line is out.
#[test]
fn a_failed_inline_write_aborts_and_keeps_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-directory").join("audit.jsonl");
    let shared = shared(settings(AuditTarget::File(path), FsyncMode::Batch));
    let mut written = shared
        .inline()
        .unwrap()
        .write(super::super::record::tests::entry());
    assert_eq!(written.try_recv(), Ok(false));
    assert_eq!(shared.writer.lock().queued.len(), 1);
    assert!(!shared.writer.lock().state.healthy.load(Ordering::Acquire));
    assert!(shared.inline().is_none());
}

#[test]
fn an_unreadable_log_is_a_typed_error_with_the_io_error_as_source() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the log should be: reading it fails with an io error.
    let error = read_tail(dir.path()).unwrap_err();
    assert!(
        matches!(error, super::super::AuditStartError::Io { .. }),
        "{error}"
    );
    assert!(std::error::Error::source(&error).is_some());
    assert!(
        error
            .to_string()
            .starts_with(&dir.path().display().to_string())
    );
}
