//! `ordergate audit verify`: checks `seq` continuity and the hash chain across rotated files.
//! Files are ordered by the `seq` of their first record, whatever order they are given in.
//! The first record checked may continue a chain whose older files were removed by
//! `keep_files`; from there on, every link is checked. Such a chain still verifies (what is
//! there is intact), but the [`Summary`] says where it starts, so the caller can warn that the
//! records before it cannot be checked any more.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::record::{GENESIS, chain_hash};

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Records checked.
    pub records: u64,
    /// The first record's `seq`.
    pub first_seq: Option<u64>,
    /// The last record's `seq`.
    pub last_seq: Option<u64>,
    /// Files read.
    pub files: usize,
    /// The first record's `prev_hash`: 64 zeros when the chain starts at seq 1.
    pub first_prev_hash: Option<String>,
}

impl Summary {
    /// True when records came before the first one checked (pruned by `keep_files`, or files
    /// not given): the chain is intact from `first_seq` on, but not provably complete.
    pub fn starts_late(&self) -> bool {
        self.first_seq.is_some_and(|s| s > 1)
            || self
                .first_prev_hash
                .as_deref()
                .is_some_and(|p| p != GENESIS)
    }
}

/// The first broken record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The file holding the broken record.
    pub file: PathBuf,
    /// 1-based line in that file.
    pub line: usize,
    /// The record's `seq`, if it could be read.
    pub seq: Option<u64>,
    /// What is wrong with it.
    pub problem: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seq = self.seq.map_or_else(|| "?".to_owned(), |s| s.to_string());
        write!(
            f,
            "{}:{}: seq {seq}: {}",
            self.file.display(),
            self.line,
            self.problem
        )
    }
}

/// Verifies `files` as one chain.
pub fn verify(files: &[PathBuf]) -> Result<Summary, Broken> {
    let mut ordered: Vec<(Option<u64>, &PathBuf)> =
        files.iter().map(|f| (first_seq(f), f)).collect();
    ordered.sort_by_key(|(seq, _)| seq.unwrap_or(u64::MAX));
    let mut summary = Summary {
        records: 0,
        first_seq: None,
        last_seq: None,
        files: files.len(),
        first_prev_hash: None,
    };
    let mut previous: Option<(u64, String)> = None;
    for (_, path) in ordered {
        let broken = |line: usize, seq: Option<u64>, problem: String| Broken {
            file: path.clone(),
            line,
            seq,
            problem,
        };
        let file = File::open(path).map_err(|e| broken(0, None, format!("cannot open: {e}")))?;
        for (index, line) in BufReader::new(file).lines().enumerate() {
            let number = index + 1;
            let line = line.map_err(|e| broken(number, None, format!("cannot read: {e}")))?;
            let record: serde_json::Value = serde_json::from_str(&line)
                .map_err(|e| broken(number, None, format!("not a JSON record: {e}")))?;
            let seq = record["seq"].as_u64();
            let (Some(seq_value), Some(prev), Some(hash)) =
                (seq, record["prev_hash"].as_str(), record["hash"].as_str())
            else {
                return Err(broken(number, seq, "missing seq, prev_hash or hash".into()));
            };
            match &previous {
                Some((last_seq, last_hash)) => {
                    if seq_value != last_seq + 1 {
                        return Err(broken(
                            number,
                            seq,
                            format!("expected seq {}", last_seq + 1),
                        ));
                    }
                    if prev != last_hash {
                        return Err(broken(
                            number,
                            seq,
                            "prev_hash is not the previous record's hash".into(),
                        ));
                    }
                }
                None if seq_value == 1 && prev != GENESIS => {
                    return Err(broken(
                        number,
                        seq,
                        "the first record's prev_hash must be 64 zeros".into(),
                    ));
                }
                None => {}
            }
            let suffix = format!(",\"hash\":\"{hash}\"}}");
            let Some(body) = line.strip_suffix(&suffix) else {
                return Err(broken(number, seq, "`hash` is not the last member".into()));
            };
            if chain_hash(prev, &format!("{body}}}")) != hash {
                return Err(broken(number, seq, "hash does not match the record".into()));
            }
            summary.records += 1;
            if summary.first_seq.is_none() {
                summary.first_seq = Some(seq_value);
                summary.first_prev_hash = Some(prev.to_owned());
            }
            summary.last_seq = Some(seq_value);
            previous = Some((seq_value, hash.to_owned()));
        }
    }
    Ok(summary)
}

fn first_seq(path: &Path) -> Option<u64> {
    let file = File::open(path).ok()?;
    let line = BufReader::new(file).lines().next()?.ok()?;
    serde_json::from_str::<serde_json::Value>(&line).ok()?["seq"].as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(first_seq: u64, first_prev_hash: &str) -> Summary {
        Summary {
            records: 1,
            first_seq: Some(first_seq),
            last_seq: Some(first_seq),
            files: 1,
            first_prev_hash: Some(first_prev_hash.to_owned()),
        }
    }

    #[test]
    fn a_chain_from_seq_1_and_zeros_is_complete_and_any_other_start_is_late() {
        assert!(!summary(1, GENESIS).starts_late());
        assert!(summary(7, &"ab".repeat(32)).starts_late());
        assert!(summary(7, GENESIS).starts_late());
        let empty = Summary {
            records: 0,
            first_seq: None,
            last_seq: None,
            files: 1,
            first_prev_hash: None,
        };
        assert!(!empty.starts_late(), "no records: nothing to warn about");
    }
}
