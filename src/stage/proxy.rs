//! Stage 10, proxy. The upstream request is **built**, not copied: the URI from the route's
//! `upstream_path` and the validated query; headers from a short allow-list of end-to-end headers
//! the client sent, plus those the gateway sets (`X-Forwarded-For`/`-Proto`, `X-Request-Id`,
//! and with `forward_identity` `X-Auth-Subject`, `X-Auth-Kind`, `X-Auth-Scopes`,
//! `X-Auth-Tenant`). So the caller's `Authorization`, API key, `Cookie`, any `X-Auth-*` and
//! every hop-by-hop header never reach the order service, whatever their spelling.
//!
//! Refuses with 502 `bad_gateway` (unreachable), 504 `gateway_timeout` (no answer within
//! `timeout`), 503 `circuit_open`. Retries: GET/HEAD only, on connect errors and 502/503/504
//! only, never on timeouts, never while the circuit is not closed, and within a retry budget.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::stage::authn::Principal;
use crate::stage::circuit::BreakerSettings;
use crate::stage::circuit::CircuitBreaker;
use crate::stage::route::PathTemplate;
use crate::stage::validate::body::ValidatedBody;
use crate::stage::validate::{RouteParams, Validated};
use crate::vocab::cause::UpstreamFailure;
use crate::vocab::error::GatewayError;

/// `[upstream]`, compiled.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// `scheme://authority`, without a trailing slash.
    pub origin: String,
    /// A path prefix from the URL (e.g. `/erp`), without a trailing slash.
    pub base_path: String,
    /// True for an `https://` upstream.
    pub https: bool,
    /// Trust anchors for the upstream, if not the system roots.
    pub ca: Option<Vec<rustls_pki_types::CertificateDer<'static>>>,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed for one attempt, response headers included.
    pub timeout: Duration,
    /// Extra attempts for GET/HEAD on connect errors and 502/503/504, never on timeouts.
    pub retries: u32,
    /// Share of load retries may add (plus a small reserve).
    pub retry_budget: f64,
    /// Idle pooled connections kept to the upstream, all pools together.
    pub pool_idle_per_host: usize,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Connection pools: one per serving thread under per-core threading (plus one for any
    /// other thread), so a request's upstream connection is driven by the request's own thread.
    pub pools: usize,
    /// Whether `X-Auth-*` identity headers are sent upstream.
    pub forward_identity: bool,
    /// False: upstream 5xx bodies are replaced by a problem (status kept).
    pub expose_errors: bool,
    /// `[upstream.circuit_breaker]`.
    pub breaker: BreakerSettings,
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Client headers an order service may legitimately use; nothing else is forwarded.
const FORWARDED_CLIENT_HEADERS: [HeaderName; 5] = [
    http::header::ACCEPT,
    http::header::ACCEPT_LANGUAGE,
    http::header::USER_AGENT,
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("tracestate"),
];

/// Conditional headers, forwarded only on routes without views: there the caller sees the body
/// the validators describe. On a route with views a 304 or 412 would confirm a guess about the
/// unfiltered body (`If-Match`, `If-Unmodified-Since`, `If-Range` and `Range` are never sent).
const CONDITIONAL_CLIENT_HEADERS: [HeaderName; 2] =
    [http::header::IF_NONE_MATCH, http::header::IF_MODIFIED_SINCE];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_AUTH_SUBJECT: HeaderName = HeaderName::from_static("x-auth-subject");
static X_AUTH_KIND: HeaderName = HeaderName::from_static("x-auth-kind");
static X_AUTH_SCOPES: HeaderName = HeaderName::from_static("x-auth-scopes");
static X_AUTH_TENANT: HeaderName = HeaderName::from_static("x-auth-tenant");

/// Bounds retries to a share of requests: each request deposits `ratio` of a token, each retry
/// spends one; the balance is capped so an idle period cannot save up a retry storm.
#[derive(Debug)]
pub struct RetryBudget {
    milli_tokens: AtomicI64,
    deposit: i64,
}

const RETRY_BUDGET_CAP: i64 = 10_000;

impl RetryBudget {
    /// A budget allowing `ratio` extra load (0.2 = 20 %).
    pub fn new(ratio: f64) -> Self {
        Self {
            milli_tokens: AtomicI64::new(RETRY_BUDGET_CAP),
            deposit: (ratio * 1000.0) as i64,
        }
    }

    fn deposit(&self) {
        let _ = self
            .milli_tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some((b + self.deposit).min(RETRY_BUDGET_CAP))
            });
    }

    fn withdraw(&self) -> bool {
        self.milli_tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b >= 1000).then_some(b - 1000)
            })
            .is_ok()
    }
}

/// The upstream's connection pool, breaker and retry budget; kept across reloads while the
/// `[upstream]` settings stay the same.
pub struct UpstreamRuntime {
    settings: UpstreamSettings,
    /// One pool per slot ([`crate::vocab::worker::slot`]).
    clients: Box<[HttpsClient]>,
    /// Shared with the admin status and metrics.
    pub breaker: CircuitBreaker,
    budget: RetryBudget,
}

impl std::fmt::Debug for UpstreamRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamRuntime")
            .field("origin", &self.settings.origin)
            .finish_non_exhaustive()
    }
}

/// The fewest idle connections a worker's pool keeps (unless `pool_idle_per_host` is lower).
const MIN_IDLE_PER_POOL: usize = 8;

impl UpstreamSettings {
    /// These settings with `pools` connection pools.
    pub fn with_pools(self, pools: usize) -> Self {
        Self {
            pools: pools.max(1),
            ..self
        }
    }
}

impl UpstreamRuntime {
    /// Builds the pool for `settings`.
    pub fn new(settings: &UpstreamSettings) -> Result<Self, crate::vocab::tls_client::TlsError> {
        let connector = crate::vocab::tls_client::https_connector(
            settings.ca.as_deref(),
            settings.connect_timeout,
            true,
        )?;
        let pools = settings.pools.max(1);
        // `pool_idle_per_host` is shared out between the workers' pools (rounded up, and at
        // least `MIN_IDLE_PER_POOL` so a busy worker among many does not reconnect per
        // request), so per-core threading does not multiply what the upstream holds open; the
        // pool of the other threads (slot 0) gets a worker's share.
        let workers = if pools > 1 { pools - 1 } else { 1 };
        let idle_per_pool = settings
            .pool_idle_per_host
            .div_ceil(workers)
            .max(settings.pool_idle_per_host.min(MIN_IDLE_PER_POOL));
        let clients = (0..pools)
            .map(|_| {
                Client::builder(TokioExecutor::new())
                    .pool_max_idle_per_host(idle_per_pool)
                    .pool_idle_timeout(settings.pool_idle_timeout)
                    .build(connector.clone())
            })
            .collect();
        Ok(Self {
            settings: settings.clone(),
            clients,
            breaker: CircuitBreaker::new(settings.breaker.clone()),
            budget: RetryBudget::new(settings.retry_budget),
        })
    }

    /// True when `settings` would build the same runtime (so pool and breaker carry over). The
    /// pool count is not compared: it follows `workers`, which a reload does not change, so the
    /// running pools are the ones that match the running threads.
    pub fn serves(&self, settings: &UpstreamSettings) -> bool {
        let a = &self.settings;
        a.origin == settings.origin
            && a.ca == settings.ca
            && a.connect_timeout == settings.connect_timeout
            && a.pool_idle_per_host == settings.pool_idle_per_host
            && a.pool_idle_timeout == settings.pool_idle_timeout
            && a.retry_budget == settings.retry_budget
            && a.breaker == settings.breaker
    }

    /// Sends `request` with retries as allowed; returns the response and the upstream time.
    pub async fn send(
        &self,
        settings: &UpstreamSettings,
        request: UpstreamRequest,
    ) -> Result<(Response<Incoming>, Duration), GatewayError> {
        self.budget.deposit();
        let idempotent = request.method == Method::GET || request.method == Method::HEAD;
        let mut retries_left = if idempotent { settings.retries } else { 0 };
        loop {
            let permit = self
                .breaker
                .acquire()
                .map_err(|retry_after_secs| GatewayError::CircuitOpen { retry_after_secs })?;
            let started = Instant::now();
            let client = &self.clients[crate::vocab::worker::slot(self.clients.len())];
            let outcome =
                tokio::time::timeout(settings.timeout, client.request(request.build())).await;
            let may_retry = |left: u32| {
                left > 0
                    && self.breaker.state() == crate::stage::circuit::State::Closed
                    && self.budget.withdraw()
            };
            match outcome {
                Err(_) => {
                    permit.record(false);
                    return Err(GatewayError::GatewayTimeout {
                        cause: UpstreamFailure::UpstreamTimeout,
                    });
                }
                Ok(Err(e)) => {
                    permit.record(false);
                    let connect = e.is_connect();
                    tracing::warn!(error = %e, connect, "upstream request failed");
                    if connect && may_retry(retries_left) {
                        retries_left -= 1;
                        metrics::counter!("ordergate_upstream_retries_total", "on" => "connect_error").increment(1);
                        continue;
                    }
                    return Err(GatewayError::BadGateway {
                        cause: if connect {
                            UpstreamFailure::UpstreamUnreachable
                        } else {
                            UpstreamFailure::UpstreamProtocolError
                        },
                    });
                }
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    permit.record(!self.breaker.is_failure_status(status));
                    if matches!(status, 502..=504) && may_retry(retries_left) {
                        retries_left -= 1;
                        metrics::counter!("ordergate_upstream_retries_total", "on" => "status")
                            .increment(1);
                        continue;
                    }
                    return Ok((response, started.elapsed()));
                }
            }
        }
    }
}

/// Everything needed to (re)build the upstream request for each attempt.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    /// The client's method.
    pub method: Method,
    /// The upstream URI: origin, rewritten path, validated query.
    pub uri: Uri,
    /// The headers built for the upstream, not the client's.
    pub headers: HeaderMap,
    /// The validated body (empty when there is none).
    pub body: Bytes,
}

impl UpstreamRequest {
    fn build(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// The upstream URI: origin, base path, rendered `upstream_path`, rebuilt query.
pub fn upstream_uri(
    settings: &UpstreamSettings,
    path: &str,
    query: &str,
) -> Result<Uri, GatewayError> {
    let mut text = String::with_capacity(
        settings.origin.len() + settings.base_path.len() + path.len() + query.len() + 1,
    );
    text.push_str(&settings.origin);
    text.push_str(&settings.base_path);
    text.push_str(path);
    if !query.is_empty() {
        text.push('?');
        text.push_str(query);
    }
    Uri::try_from(text).map_err(|_| GatewayError::BadGateway {
        cause: UpstreamFailure::UpstreamUri,
    })
}

/// The upstream path and query, rebuilt from the validated values only: path parameters in
/// canonical form into the route's `upstream_path`, and the canonical query (CONTRACT §2.7).
pub fn upstream_target(
    template: &PathTemplate,
    validated: &Validated,
    params: &RouteParams,
) -> (String, String) {
    let path_texts: Vec<(&str, String)> = validated
        .path
        .iter()
        .map(|(name, value)| {
            let mut text = String::new();
            value.write_canonical(&mut text);
            (&**name, text)
        })
        .collect();
    let mut path = String::with_capacity(64);
    template.render(&mut path, |name| {
        path_texts
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.as_str())
    });
    (path, validated.upstream_query(params))
}

/// What the gateway knows when building upstream headers.
pub struct HeaderFacts<'a> {
    /// The client's headers, from which only allowed ones are copied.
    pub client_headers: &'a HeaderMap,
    /// The TCP peer.
    pub peer: std::net::IpAddr,
    /// Whether the peer is in `trusted_proxies` (its `X-Forwarded-*` are kept).
    pub peer_trusted: bool,
    /// Whether the client connection used TLS.
    pub https: bool,
    /// Sent as `X-Request-Id`.
    pub request_id: &'a str,
    /// The authenticated caller.
    pub principal: &'a Principal,
    /// Whether to add the `X-Auth-*` headers.
    pub forward_identity: bool,
    /// The validated body's `Content-Type` and length (stage 7), if any.
    pub body: Option<(&'static str, usize)>,
    /// The route has no views, so the caller's conditional headers may go upstream.
    pub conditional: bool,
    /// The gateway reads the answer (views, owner rules or a record count): `Accept` goes as
    /// `application/json` whatever the caller asked, so a caller cannot pick a format the
    /// gateway could not check or count (on a counting route, `Accept: text/csv` from an
    /// upstream that serves CSV would otherwise pass uncounted).
    pub json_answer: bool,
}

/// Every `X-Forwarded-For` line the client sent, joined as one list (RFC 9110 §5.3: the lines
/// are one comma-separated field). A proxy that adds its own line instead of extending the one
/// it got must not have the upstream see only the first, client-written one. `None` without
/// the header, or when a line is not visible ASCII.
fn forwarded_chain(headers: &HeaderMap) -> Option<String> {
    let mut chain: Option<String> = None;
    for line in headers.get_all(&X_FORWARDED_FOR) {
        let text = line.to_str().ok()?;
        match &mut chain {
            Some(joined) => {
                joined.push_str(", ");
                joined.push_str(text);
            }
            None => chain = Some(text.to_owned()),
        }
    }
    chain
}

/// Builds the upstream request headers from the allow-list and the gateway's own.
pub fn upstream_headers(facts: &HeaderFacts<'_>) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(16);
    let conditional: &[HeaderName] = if facts.conditional {
        &CONDITIONAL_CLIENT_HEADERS
    } else {
        &[]
    };
    for name in FORWARDED_CLIENT_HEADERS.iter().chain(conditional) {
        if facts.json_answer && name == http::header::ACCEPT {
            headers.insert(
                http::header::ACCEPT,
                HeaderValue::from_static("application/json"),
            );
            continue;
        }
        for value in facts.client_headers.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some((content_type, len)) = facts.body {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    let peer = facts.peer.to_string();
    let forwarded_for = match forwarded_chain(facts.client_headers) {
        Some(chain) if facts.peer_trusted => format!("{chain}, {peer}"),
        _ => peer,
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if facts.https { "https" } else { "http" }),
    );
    if let Ok(v) = HeaderValue::from_str(facts.request_id) {
        headers.insert(crate::stage::request_id::X_REQUEST_ID.clone(), v);
    }
    if facts.forward_identity {
        let p = facts.principal;
        headers.insert(X_AUTH_SUBJECT.clone(), header_safe(&p.id));
        headers.insert(
            X_AUTH_KIND.clone(),
            HeaderValue::from_static(p.kind.as_str()),
        );
        headers.insert(X_AUTH_SCOPES.clone(), p.scope_header.clone());
        if let Some(tenant) = &p.tenant {
            headers.insert(X_AUTH_TENANT.clone(), header_safe(tenant));
        }
    }
    headers
}

/// What stage 10 builds the upstream request from: the validated request and the connection.
pub struct Outgoing<'a> {
    /// The client's method.
    pub method: &'a Method,
    /// The upstream path and query from [`upstream_target`].
    pub target: &'a (String, String),
    /// The validated body (stage 7), if any.
    pub body: Option<ValidatedBody>,
    /// The header facts, `body` left `None` (it is filled from the body above).
    pub headers: HeaderFacts<'a>,
}

/// Stage 10's upstream request for the pipeline: the URI on `settings`' origin, the rebuilt
/// headers (with `X-Auth-*` when the upstream wants them) and the validated body.
pub fn request(
    settings: &UpstreamSettings,
    outgoing: Outgoing<'_>,
) -> Result<UpstreamRequest, GatewayError> {
    let (path, query) = outgoing.target;
    let uri = upstream_uri(settings, path, query)?;
    let headers = upstream_headers(&HeaderFacts {
        forward_identity: settings.forward_identity,
        body: outgoing
            .body
            .as_ref()
            .map(|b| (b.kind.content_type(), b.bytes.len())),
        ..outgoing.headers
    });
    Ok(UpstreamRequest {
        method: outgoing.method.clone(),
        uri,
        headers,
        body: outgoing.body.map(|b| b.bytes).unwrap_or_default(),
    })
}

/// An identity value (`X-Auth-Subject`, `X-Auth-Tenant`) as a header, injectively: printable
/// ASCII and inner spaces as they are, every other byte — `%` itself, control and non-ASCII
/// bytes, a leading or trailing space (which header parsers trim) — as `%XX`. So two different
/// ids never arrive as one value (`a%01b` is sent as `a%2501b`, `a\u{1}b` as `a%01b`), and ids
/// without such bytes arrive unchanged. Together with `X-Auth-Kind`, always sent alongside, the
/// upstream can tell every principal apart.
fn header_safe(text: &str) -> HeaderValue {
    let bytes = text.as_bytes();
    let last = bytes.len().saturating_sub(1);
    let literal = |(i, b): (usize, &u8)| {
        (b.is_ascii_graphic() && *b != b'%') || (*b == b' ' && i != 0 && i != last)
    };
    if bytes.iter().enumerate().all(literal)
        && let Ok(v) = HeaderValue::from_str(text)
    {
        return v;
    }
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if literal((i, b)) {
            out.push(char::from(*b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::authn::principal::Claims;
    use crate::vocab::principal_kind::PrincipalKind;
    use crate::vocab::scopes::ScopeSet;
    use std::sync::Arc;

    #[test]
    fn only_allowed_and_gateway_headers_go_upstream() {
        let mut client = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer secret"),
            ("x-api-key", "ogk_secret"),
            ("cookie", "session=1"),
            ("x-auth-subject", "admin"),
            ("x-auth-scopes", "orders:read:full"),
            ("connection", "keep-alive, x-custom"),
            ("x-custom", "1"),
            ("te", "trailers"),
            ("x-forwarded-for", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
            ("accept", "application/json"),
            ("user-agent", "partner/1.0"),
            ("host", "evil.example"),
            ("if-none-match", "\"guess\""),
            ("if-match", "\"guess\""),
            ("if-range", "\"guess\""),
            ("range", "bytes=0-3"),
            ("if-unmodified-since", "Wed, 02 Dec 2026 00:00:00 GMT"),
        ] {
            client.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let principal = Principal {
            id: Arc::from("C0000001"),
            kind: PrincipalKind::Jwt,
            tenant: Some(Arc::from("acme")),
            scopes: ScopeSet::default(),
            scope_header: HeaderValue::from_static("orders:read"),
            claims: Claims::Attributes(Default::default()),
            expires_at: None,
            allow_ips: Vec::new(),
        };
        let facts = HeaderFacts {
            client_headers: &client,
            peer: "127.0.0.9".parse().unwrap(),
            peer_trusted: false,
            https: true,
            request_id: "req-1",
            principal: &principal,
            forward_identity: true,
            body: None,
            conditional: true,
            json_answer: false,
        };
        let up = upstream_headers(&facts);
        let names: Vec<&str> = up.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "accept",
                "user-agent",
                "if-none-match",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-request-id",
                "x-auth-subject",
                "x-auth-kind",
                "x-auth-scopes",
                "x-auth-tenant"
            ]
        );
        assert_eq!(up["x-forwarded-for"], "127.0.0.9");
        assert_eq!(up["x-auth-subject"], "C0000001");
        assert_eq!(up["x-auth-scopes"], "orders:read");
        let trusted = upstream_headers(&HeaderFacts {
            peer_trusted: true,
            forward_identity: false,
            ..facts
        });
        assert_eq!(trusted["x-forwarded-for"], "1.2.3.4, 127.0.0.9");
        let mut two_lines = client.clone();
        two_lines.append("x-forwarded-for", HeaderValue::from_static("5.6.7.8"));
        let joined = upstream_headers(&HeaderFacts {
            peer_trusted: true,
            client_headers: &two_lines,
            ..facts
        });
        assert_eq!(joined["x-forwarded-for"], "1.2.3.4, 5.6.7.8, 127.0.0.9");
        assert_eq!(joined.get_all("x-forwarded-for").iter().count(), 1);
        assert!(trusted.get("x-auth-subject").is_none());
        let viewed = upstream_headers(&HeaderFacts {
            conditional: false,
            ..facts
        });
        assert!(
            viewed.get("if-none-match").is_none(),
            "no conditional request on a route with views"
        );
        let mut csv = client.clone();
        csv.insert("accept", HeaderValue::from_static("text/csv"));
        let read = upstream_headers(&HeaderFacts {
            client_headers: &csv,
            json_answer: true,
            ..facts
        });
        assert_eq!(read["accept"], "application/json");
        assert_eq!(read.get_all("accept").iter().count(), 1);
        let passed = upstream_headers(&HeaderFacts {
            client_headers: &csv,
            ..facts
        });
        assert_eq!(passed["accept"], "text/csv", "a route that reads nothing");
    }

    #[test]
    fn budget_allows_a_share_of_retries() {
        let budget = RetryBudget::new(0.2);
        let mut retries = 0;
        for _ in 0..1000 {
            budget.deposit();
            if budget.withdraw() {
                retries += 1;
            }
        }
        assert!((200..=210).contains(&retries), "{retries}");
    }

    #[test]
    fn identity_values_reach_the_upstream_injectively() {
        assert_eq!(header_safe("a\u{1}b"), "a%01b");
        assert_eq!(header_safe("a%01b"), "a%2501b");
        assert_eq!(header_safe("C0000001"), "C0000001");
        assert_eq!(header_safe("JD Partner"), "JD Partner");
        assert_eq!(header_safe(" x "), "%20x%20");
        assert_eq!(header_safe("é"), "%C3%A9");
        assert_eq!(header_safe(""), "");
        let ids = [
            "a\u{1}b", "a%01b", "a%2501b", "x", "x ", " x", "%20x", "é", "%C3%A9", "a b", "a%20b",
        ];
        let values: std::collections::HashSet<HeaderValue> =
            ids.iter().map(|id| header_safe(id)).collect();
        assert_eq!(values.len(), ids.len(), "two ids share a header value");
    }
}
