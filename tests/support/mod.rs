//! The integration harness: per test, a CA and certificates, JWT keys and API keys made on the
//! spot, a recording fake order service, and the real gateway serving a policy written into a
//! temporary directory — all on ephemeral loopback ports. A client that trusts the test CA talks
//! real HTTPS to it.
//!
//! Each test file compiles this module on its own and uses part of it, hence the `allow`.
#![allow(dead_code, unused_imports)]

pub mod gateway;
pub mod http;
pub mod pki;
pub mod policy;
pub mod redis;
pub mod upstream;
pub mod webhook;

pub use gateway::Harness;
pub use http::{client, raw_request, raw_tls, raw_tls_offering, serve_https, try_raw_tls};
pub use pki::{ISSUER, Keys, signature_lines, signed_get_lines, token_with, write_files};
pub use policy::{base_policy, edit};
pub use redis::RedisServer;
pub use upstream::{FakeUpstream, Recorded, Reply, sample_order, sample_page};
pub use webhook::{Answer, Delivery, Receiver};

/// Installs the process-wide crypto provider (aws-lc-rs); idempotent.
pub fn install() {
    ordergate::cli::install_crypto().unwrap();
}
