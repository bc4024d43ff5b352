//! The gateway as a [`tower::Service`]: a request in, the pipeline ([`super::handle`]) inside,
//! a response out, never an error. The front door (`server/`) serves one per connection behind
//! hyper; a Rust application can mount one in its own axum `Router` (`examples/embed.rs`).
//!
//! The connection facts reach the pipeline in one of two ways: the front door builds the service
//! per connection with [`GatewayService::new`]; an embedded service ([`GatewayService::embedded`])
//! reads them from the request's extensions — an `Arc<ConnInfo>`, or axum's
//! `ConnectInfo<SocketAddr>` (plain HTTP: TLS terminated by the host). With neither, it fails
//! closed: a 500, nothing forwarded, since limits and the audit trail need the client address.

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use tower::ServiceBuilder;
use tower_http::catch_panic::{CatchPanic, CatchPanicLayer};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnFailure, MakeSpan, Trace, TraceLayer};
use tracing::Span;

use crate::context::ConnInfo;
use crate::gateway::Gateway;
use crate::stage::request_id::{self, X_REQUEST_ID};
use crate::vocab::body::GatewayBody;
use crate::vocab::cause::InternalFailure;
use crate::vocab::error::GatewayError;
use crate::vocab::problem;
use crate::vocab::send_watch::SendWatch;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The gateway behind one connection (or, embedded, behind a host application's router).
#[derive(Clone)]
pub struct GatewayService {
    gateway: Arc<Gateway>,
    conn: Option<Arc<ConnInfo>>,
}

impl GatewayService {
    /// The service for one connection whose facts are known (the front door).
    pub fn new(gateway: Arc<Gateway>, conn: Arc<ConnInfo>) -> Self {
        Self {
            gateway,
            conn: Some(conn),
        }
    }

    /// A service that reads the connection facts from each request's extensions.
    pub fn embedded(gateway: Arc<Gateway>) -> Self {
        Self {
            gateway,
            conn: None,
        }
    }

    fn conn_of<B>(&self, request: &Request<B>) -> Option<Arc<ConnInfo>> {
        if let Some(conn) = &self.conn {
            return Some(conn.clone());
        }
        let extensions = request.extensions();
        extensions.get::<Arc<ConnInfo>>().cloned().or_else(|| {
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| Arc::new(ConnInfo::plain(*peer)))
        })
    }
}

impl<B> tower::Service<Request<B>> for GatewayService
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<GatewayBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<GatewayBody>, Infallible>> + Send>>;

    /// Always ready: back-pressure is the pipeline's own (in-flight limit, load shedding), which
    /// answers 503 instead of queueing.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let gateway = self.gateway.clone();
        let conn = self.conn_of(&request);
        let head = request.method() == http::Method::HEAD;
        let watch = request.extensions().get::<Arc<SendWatch>>().cloned();
        Box::pin(async move {
            let Some(conn) = conn else {
                tracing::error!("embedded gateway service without connection info: refused");
                let error = GatewayError::Internal {
                    cause: InternalFailure::NoConnectionInfo,
                };
                return Ok(problem::render(&error, ""));
            };
            let mut response = super::handle(gateway, conn, request).await;
            if head {
                without_content(&mut response);
            }
            if let Some(watch) = watch {
                // From here the client has to take the answer.
                watch.progressed();
                response.body_mut().set_send_watch(watch);
            }
            Ok(response)
        })
    }
}

/// An answer to HEAD: the headers a GET would get (`Content-Length` included when known), no
/// content. HTTP/1 drops HEAD content itself; HTTP/2 would send it as DATA, a stream error.
fn without_content(response: &mut Response<GatewayBody>) {
    if let Some(len) = response.body().size_hint().exact()
        && !response
            .headers()
            .contains_key(http::header::CONTENT_LENGTH)
        && !response.body().is_end_stream()
    {
        response
            .headers_mut()
            .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    }
    response.body_mut().discard_content();
}

/// For `tower_http::catch_panic::CatchPanicLayer::custom`: a panic inside the service becomes a
/// 500 problem+json (its record is written by the pipeline as the panic unwinds through it). The
/// payload is logged by the pipeline's record only as `panic`: it may quote request data.
#[derive(Debug, Clone, Copy, Default)]
pub struct PanicProblem;

impl tower_http::catch_panic::ResponseForPanic for PanicProblem {
    type ResponseBody = GatewayBody;

    fn response_for_panic(
        &mut self,
        _panic: Box<dyn Any + Send + 'static>,
    ) -> Response<GatewayBody> {
        let mut response = problem::render(
            &GatewayError::Internal {
                cause: InternalFailure::Panic,
            },
            "",
        );
        let headers = response.headers_mut();
        crate::stage::response::finish_headers(headers, "", false);
        // The id is not known here; [`RequestIdFirst`] adds the one the record has.
        headers.remove(&X_REQUEST_ID);
        response
    }
}

/// The request span of `tower_http::trace::TraceLayer`: method and path only — never the query
/// (values may be personal data) nor any header (credentials).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        tracing::debug_span!(
            "request",
            method = %request.method(),
            path = %crate::vocab::redact::recorded_path(request.uri().path()),
        )
    }
}

/// The gateway service with the layers every mount should have: the request id fixed first, a
/// request span, and a panic answered as a 500 problem (recorded by the pipeline) instead of a
/// dropped connection.
pub type Layered = RequestIdFirst<
    CatchPanic<
        Trace<GatewayService, SharedClassifier<ServerErrorsAsFailures>, RequestSpan>,
        PanicProblem,
    >,
>;

/// Wraps `service` in the layers of [`Layered`]; the front door serves exactly this.
pub fn layered(service: GatewayService) -> Layered {
    let inner = ServiceBuilder::new()
        .layer(CatchPanicLayer::custom(PanicProblem))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(RequestSpan)
                // A 5xx is already counted and recorded; an error line per shed request would
                // turn an overload into a log flood.
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .service(service);
    RequestIdFirst { inner }
}

/// Put on a request by the front door when its connection already has `max_concurrent_streams`
/// requests running, counting those whose client reset the stream (they run to their end, so
/// hyper's stream limit alone does not bound them). The pipeline refuses it before anything else:
/// 503 `overloaded` (`max_concurrent_streams`), recorded like every refusal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionSaturated;

/// The request id [`RequestIdFirst`] settled; the pipeline takes it instead of reading the header.
#[derive(Debug, Clone)]
pub(crate) struct SettledRequestId(pub(crate) String);

/// Settles the request id before anything else runs (the client's if it is acceptable, else a
/// new one, exactly as the pipeline would), so an answer the pipeline did not make — a panic's —
/// still carries the id its audit record has.
#[derive(Debug, Clone)]
pub struct RequestIdFirst<S> {
    inner: S,
}

impl<S, B, R> tower::Service<Request<B>> for RequestIdFirst<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let settled = request_id::from_headers(request.headers());
        let id = HeaderValue::from_str(&settled).ok();
        request.extensions_mut().insert(SettledRequestId(settled));
        let answer = self.inner.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            if let Some(id) = id {
                response
                    .headers_mut()
                    .entry(X_REQUEST_ID.clone())
                    .or_insert(id);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_http::catch_panic::ResponseForPanic as _;

    #[test]
    fn head_answers_keep_the_length_and_lose_the_content() {
        let mut response = Response::new(GatewayBody::full(Bytes::from_static(b"{\"a\":1}")));
        without_content(&mut response);
        assert_eq!(response.headers()[http::header::CONTENT_LENGTH], "7");
        assert!(response.body().is_end_stream());
    }

    #[test]
    fn a_panic_becomes_a_problem_that_quotes_nothing_of_it() {
        let mut response = PanicProblem.response_for_panic(Box::new("secret token abc"));
        assert_eq!(response.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(response.headers()[http::header::CACHE_CONTROL], "no-store");
        let Some(Ok(frame)) = futures_poll_frame(response.body_mut()) else {
            panic!("a full body");
        };
        let text = String::from_utf8_lossy(frame.data_ref().map_or(&[][..], |d| d));
        assert!(text.contains("problems/internal_error"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    fn futures_poll_frame(
        body: &mut GatewayBody,
    ) -> Option<Result<http_body::Frame<Bytes>, <GatewayBody as Body>::Error>> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        match Pin::new(body).poll_frame(&mut cx) {
            Poll::Ready(frame) => frame,
            Poll::Pending => None,
        }
    }
}
