//! ordergate: an HTTPS gateway in front of a CRM/ERP order service.
//!
//! The request pipeline is written out, in order, in [`pipeline`]; each stage is a module named
//! after what it does. The policy is compiled once ([`config`] → [`policy::Policy`]) and swapped
//! whole on reload.
#![forbid(unsafe_code)]
// Nothing a client sends may panic the gateway: no unwrap/expect outside tests.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod abuse;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod body;
pub mod circuit;
pub mod cli;
pub mod config;
pub mod context;
pub mod cutoff;
pub mod demo;
pub mod error;
pub mod gateway;
pub mod load_shed;
pub mod metrics;
pub mod openapi;
pub mod percent;
pub mod pipeline;
pub mod policy;
pub mod proxy;
pub mod rate_limit;
pub mod redact;
pub mod request_id;
pub mod response;
pub mod route;
pub mod scopes;
pub mod send_watch;
pub mod server;
pub mod tls_client;
pub mod token;
pub mod validate;
pub mod views;
