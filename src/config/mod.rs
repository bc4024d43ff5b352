//! The policy file as written: read the TOML section by section into the raw model (`raw`,
//! `read`, fixed choices as enums in `choice`), the files it names (`files`), and every problem as `FILE:LINE:COL: message`
//! (`problems`). Compiling it into real types is the policy layer's job (`policy::load`).

pub mod choice;
pub mod files;
pub mod problems;
pub mod raw;
pub mod read;

pub use problems::PolicyProblem;
