//! ordergate: an HTTPS gateway in front of a CRM/ERP order service.
//!
//! The request pipeline is written out, in order, in [`pipeline`]; each stage is a module named
//! after what it does. The policy is compiled once ([`config`] → [`policy::Policy`]) and swapped
//! whole on reload.
#![forbid(unsafe_code)]
// Nothing a client sends may panic the gateway: no unwrap/expect outside tests.
#![deny(clippy::unwrap_used, clippy::expect_used)]

// Layers, bottom up: imports go down only (tests/layering.rs).
pub mod cli;
pub mod config;
pub mod context;
pub mod demo;
pub mod gateway;
pub mod openapi;
pub mod pipeline;
pub mod policy;
pub mod server;
pub mod stage;
pub mod token;
pub mod vocab;
