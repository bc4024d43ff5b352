//! What the stages learn about one request, read by later stages and by the audit stage.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::Method;
use http::request::Parts;

use crate::stage::audit::{Entry, Served};
use crate::stage::authn::Principal;
use crate::stage::authn::mtls::Subject;
use crate::stage::stale;
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

impl RequestContext {
    /// The context of a request before any stage ran: what the connection and the request line
    /// tell.
    pub fn new(request_id: String, client_ip: IpAddr, conn: Arc<ConnInfo>, parts: &Parts) -> Self {
        Self {
            request_id,
            client_ip,
            conn,
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            route_id: None,
            principal: None,
            validated: None,
            rate_limit: None,
            upstream_status: None,
            upstream_time: None,
            records: None,
            upstream_name: None,
            served: None,
            signed: false,
        }
    }

    /// The audit record of this request as it stands (stage 12), moving its facts out:
    /// `reason`/`detail` and `status` are how it ended, `started` when it arrived.
    pub fn entry(
        &mut self,
        (reason, detail): (&'static str, Option<&'static str>),
        status: u16,
        started: Instant,
    ) -> Entry {
        Entry {
            ts: SystemTime::now(),
            request_id: std::mem::take(&mut self.request_id),
            client_ip: self.client_ip,
            tls_version: self.conn.tls_version,
            client_subject: self.conn.client_subject_text.clone(),
            principal: self.principal.take(),
            method: self.method.clone(),
            route: self.route_id.take(),
            path: std::mem::take(&mut self.path),
            query: self.validated.take().map(|v| v.query).unwrap_or_default(),
            reason,
            detail,
            status,
            upstream_status: self.upstream_status,
            duration: started.elapsed(),
            upstream: self.upstream_time,
            bytes_out: 0,
            records: self.records,
            upstream_name: self.upstream_name.take(),
            served: self.served,
            signed: self.signed,
        }
    }
}

impl From<stale::From> for Served {
    fn from(from: stale::From) -> Self {
        match from {
            stale::From::Upstream => Served::Upstream,
            stale::From::Stale => Served::Stale,
        }
    }
}
