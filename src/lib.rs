//! ordergate: an HTTPS gateway in front of a CRM/ERP order service.
//!
//! The request pipeline is written out, in order, in [`pipeline`]; each stage is a module named
//! after what it does. The policy is compiled once ([`config`] → [`policy::Policy`]) and swapped
//! whole on reload.
#![forbid(unsafe_code)]

pub mod abuse;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod body;
pub mod circuit;
pub mod config;
pub mod error;
pub mod load_shed;
pub mod metrics;
pub mod percent;
pub mod policy;
pub mod rate_limit;
pub mod redact;
pub mod route;
pub mod scopes;
pub mod tls_client;
pub mod validate;
pub mod views;
pub mod context;
pub mod gateway;
pub mod pipeline;
pub mod proxy;
pub mod request_id;
pub mod response;
pub mod server;
pub mod cli;
pub mod demo;
pub mod openapi;
pub mod token;
