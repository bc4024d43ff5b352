//! The stages of CONTRACT.md §2, one module each, listed in pipeline order. A stage is handed
//! its own settings (never the whole policy) and may use the request facts of an earlier stage
//! (`Principal`, validated values); it never imports a later stage, the compiled policy, the
//! config, the gateway or the pipeline (`tests/layering.rs` enforces it).

pub mod abuse;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod circuit;
pub mod load_shed;
pub mod proxy;
pub mod rate_limit;
pub mod request_id;
pub mod response;
pub mod route;
pub mod validate;
pub mod views;
