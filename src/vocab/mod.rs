//! The vocabulary every layer shares: errors and their causes, units, percent-encoding, the raw
//! query parser, scopes, secrets, maskers and redaction, the response body, metrics
//! installation. Nothing here imports a stage, the policy, the gateway or the pipeline.

pub mod address;
pub mod body;
pub mod cause;
pub mod cert_expiry;
pub mod cutoff;
pub mod date_text;
pub mod error;
pub mod event;
pub mod ip_list;
pub mod mask;
pub mod metrics;
pub mod percent;
pub mod principal_kind;
pub mod problem;
pub mod query;
pub mod rate_limit_status;
pub mod redact;
pub mod scopes;
pub mod secret;
pub mod send_watch;
pub mod shared_store;
pub mod tls_client;
pub mod units;
pub mod worker;
