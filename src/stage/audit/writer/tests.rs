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
