//! ordergate: an HTTPS gateway in front of a CRM/ERP order service.
//!
//! The request pipeline is written out, in order, in [`pipeline`]; each stage is a module named
//! after what it does. The policy is compiled once ([`config`] → [`policy::Policy`]) and swapped
//! whole on reload.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Nothing a client sends may panic the gateway: no unwrap/expect outside tests.
#![deny(clippy::unwrap_used, clippy::expect_used)]

// The layers, bottom up; imports go down only (`tests/layering.rs`). Blank lines keep the order.

/// Errors, units, percent-encoding, query parsing, scopes, secrets, maskers, redaction, the body.
pub mod vocab;

/// The policy file as written, with every problem located.
pub mod config;

/// One module per stage of CONTRACT.md §2, in pipeline order.
pub mod stage;

/// The compiled policy: the stages' settings, aggregated.
pub mod policy;

/// One request's facts.
pub mod context;

/// State that outlives a policy generation, and the live generation.
pub mod gateway;

/// `ordergate explain` and `diff`: exposure read from the compiled policy.
pub mod review;

/// The stage order, in one place.
pub mod pipeline;

/// Listeners, TLS, connections, signals, the admin API.
pub mod server;

/// The commands.
pub mod cli;

/// `ordergate demo`.
pub mod demo;

/// `ordergate openapi`.
pub mod openapi;

/// `ordergate token`.
pub mod token;
