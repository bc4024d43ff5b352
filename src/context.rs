//! What the stages learn about one request, read by later stages and by the audit stage.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::Method;

use crate::stage::audit::Served;
use crate::stage::authn::Principal;
use crate::stage::authn::mtls::Subject;
use crate::stage::validate::Validated;
use crate::vocab::rate_limit_status::RateLimitStatus;

/// Facts about the connection, fixed after the TLS handshake.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// `TLSv1.2` / `TLSv1.3`, or `None` on plain HTTP.
    pub tls_version: Option<&'static str>,
    /// The verified client certificate's subject.
    pub client_subject: Option<Subject>,
    /// The same subject as text, for the audit record.
    pub client_subject_text: Option<Arc<str>>,
}

impl ConnInfo {
    /// A connection without TLS (tests, `insecure_plaintext`).
    pub fn plain(peer: SocketAddr) -> Self {
        Self {
            peer,
            tls_version: None,
            client_subject: None,
            client_subject_text: None,
        }
    }
}

/// One request's state.
#[derive(Debug)]
pub struct RequestContext {
    /// Generated, or the client's `X-Request-Id` when well formed.
    pub request_id: String,
    /// The connection it arrived on.
    pub conn: Arc<ConnInfo>,
    /// The client's address, canonical: the peer, or from `X-Forwarded-For` when the peer is
    /// trusted (see [`client_ip`]). The audit record keeps it whole; limits group it.
    pub client_ip: IpAddr,
    /// The request method.
    pub method: Method,
    /// The raw path (without the query).
    pub path: String,
    /// The matched route's id, once routed.
    pub route_id: Option<Arc<str>>,
    /// The authenticated caller, once authenticated.
    pub principal: Option<Arc<Principal>>,
    /// The parameters, once validated.
    pub validated: Option<Validated>,
    /// The tightest bucket's figures, once rate limited.
    pub rate_limit: Option<RateLimitStatus>,
    /// The upstream's status, once it answered.
    pub upstream_status: Option<u16>,
    /// Time spent waiting on the upstream.
    pub upstream_time: Option<Duration>,
    /// Records in the answer, from the route's `count` path.
    pub records: Option<u64>,
    /// The named upstream that answered.
    pub upstream_name: Option<Arc<str>>,
    /// Where the answer came from.
    pub served: Option<Served>,
    /// A request signature was verified.
    pub signed: bool,
}
