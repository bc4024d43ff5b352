//! Loading a policy: read the TOML section by section into the raw model (`raw`, `read`),
//! compile it into a [`Policy`] (`compile`), and report every problem as
//! `FILE:LINE:COL: message` (`problems`).

mod compile;
pub mod files;
pub mod problems;
pub mod raw;
mod read;
pub mod units;

use std::path::Path;

pub use files::Secret;
pub use problems::PolicyProblem;

use crate::policy::Policy;

/// Loads and validates the policy at `path`, and every file it names.
pub fn load(path: &Path) -> Result<Policy, Vec<PolicyProblem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![PolicyProblem {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            message: format!("cannot read the policy: {e}"),
        }]
    })?;
    load_str(path, &text)
}

/// Validates policy text as if it were the file at `path` (relative file names resolve there).
pub fn load_str(path: &Path, text: &str) -> Result<Policy, Vec<PolicyProblem>> {
    let mut problems = problems::Problems::default();
    let Some((raw, doc)) = read::read(text, &mut problems) else {
        return Err(problems.resolve(path, text, None));
    };
    let policy = compile::compile(raw, path, &mut problems);
    match policy {
        Some(policy) if problems.is_empty() => Ok(policy),
        _ => Err(problems.resolve(path, text, Some(&doc))),
    }
}
