//! Stage 7, the request body. A body that was not validated is never forwarded: an order
//! service that does not read GET bodies would parse one as the *next* request on the pooled
//! connection — a request with no owner binding, no whitelist and no audit record. So a route
//! without `[routes.body]` refuses any non-empty body (400 `bad_request`, `body_not_allowed`;
//! over `max_request_body`: 413). A route with one accepts only its declared media types
//! (`text/plain`: UTF-8 without control characters but tab and line breaks; `application/json`:
//! a JSON document, re-serialised), within its `max_bytes` (413), and the upstream receives the
//! validated bytes with the declared `Content-Type`, never the client's. An empty body passes.

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body;
use http_body_util::{BodyExt, Limited};

use crate::stage::authn::{FailedAuth, charged};
use crate::stage::signature::{self, DigestCheck};
use crate::vocab::error::{BadRequest, GatewayError};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A media type a route may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `text/plain` (UTF-8).
    Text,
    /// `application/json`.
    Json,
}

impl BodyKind {
    /// Parses a declared media type.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "text/plain" => Some(BodyKind::Text),
            "application/json" => Some(BodyKind::Json),
            _ => None,
        }
    }

    /// The `Content-Type` sent upstream.
    pub fn content_type(self) -> &'static str {
        match self {
            BodyKind::Text => "text/plain",
            BodyKind::Json => "application/json",
        }
    }

    fn essence(self) -> &'static str {
        match self {
            BodyKind::Text => "text/plain",
            BodyKind::Json => "application/json",
        }
    }
}

/// `[routes.body]`, compiled.
#[derive(Debug, Clone)]
pub struct BodyRule {
    /// Accepted media types.
    pub kinds: Vec<BodyKind>,
    /// The most bytes accepted.
    pub max_bytes: u64,
}

/// A body that passed its rule: what goes upstream.
#[derive(Debug, Clone)]
pub struct ValidatedBody {
    /// The body exactly as received.
    pub bytes: Bytes,
    /// What it was checked as.
    pub kind: BodyKind,
}

/// Checks the body against the route's rule (none: no body at all). Returns the body to forward.
pub async fn check<B>(
    headers: &HeaderMap,
    body: B,
    rule: Option<&BodyRule>,
    server_max: u64,
) -> Result<Option<ValidatedBody>, GatewayError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    check_raw(headers, body, rule, server_max, |_| Ok(())).await
}

/// Stage 7's body for the pipeline: [`check_raw`] with the body compared to the signed
/// `Content-Digest` (stage 5b). A mismatch is a 401: it clears `signed` (the request is no
/// longer taken as signed) and charges the caller's failed-authentication `allowance`.
pub async fn stage<B>(
    headers: &HeaderMap,
    body: B,
    limits: (Option<&BodyRule>, u64),
    digest: Option<&DigestCheck>,
    signed: &mut bool,
    allowance: &impl FailedAuth,
) -> Result<Option<ValidatedBody>, GatewayError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (rule, server_max) = limits;
    let checked = check_raw(headers, body, rule, server_max, |raw| {
        signature::check_body(digest, raw)
    })
    .await;
    match checked {
        Err(error @ GatewayError::Unauthenticated { .. }) => {
            *signed = false;
            Err(charged(error, allowance).await)
        }
        other => other,
    }
}

/// [`check`], showing `raw` the body bytes exactly as received before they are validated (the
/// signature stage compares them with the signed `Content-Digest`).
pub async fn check_raw<B>(
    headers: &HeaderMap,
    body: B,
    rule: Option<&BodyRule>,
    server_max: u64,
    raw: impl FnOnce(&[u8]) -> Result<(), GatewayError>,
) -> Result<Option<ValidatedBody>, GatewayError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let Some(rule) = rule else {
        refuse(headers, body, server_max).await?;
        raw(&[])?;
        return Ok(None);
    };
    let bytes = read(headers, body, rule.max_bytes).await?;
    raw(&bytes)?;
    if bytes.is_empty() {
        return Ok(None);
    }
    let not_valid = || GatewayError::BadRequest(BadRequest::BodyInvalid);
    let kind = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| media_type(v, rule))
        .ok_or(not_valid())?;
    let bytes = match kind {
        BodyKind::Text => {
            let text = std::str::from_utf8(&bytes).map_err(|_| not_valid())?;
            if text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
            {
                return Err(not_valid());
            }
            bytes
        }
        BodyKind::Json => {
            let value: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|_| not_valid())?;
            Bytes::from(serde_json::to_vec(&value).map_err(|_| not_valid())?)
        }
    };
    Ok(Some(ValidatedBody { bytes, kind }))
}

/// The declared kind a `Content-Type` names: its essence (case-insensitive), and no parameter
/// but `charset=utf-8`.
fn media_type(value: &str, rule: &BodyRule) -> Option<BodyKind> {
    let mut parts = value.split(';');
    let essence = parts.next()?.trim();
    for param in parts {
        let (name, v) = param.split_once('=')?;
        let v = v.trim().trim_matches('"');
        if !name.trim().eq_ignore_ascii_case("charset") || !v.eq_ignore_ascii_case("utf-8") {
            return None;
        }
    }
    rule.kinds
        .iter()
        .copied()
        .find(|k| k.essence().eq_ignore_ascii_case(essence))
}

/// The `Content-Length` the client declared, if it is a number.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads the body within `max` (413 beyond, declared or streamed).
async fn read<B>(headers: &HeaderMap, body: B, max: u64) -> Result<Bytes, GatewayError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if declared_length(headers).is_some_and(|n| n > max) {
        return Err(GatewayError::PayloadTooLarge);
    }
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(GatewayError::PayloadTooLarge),
        Err(_) => Err(GatewayError::BadRequest(BadRequest::BodyUnreadable)),
    }
}

/// Refuses any request body; reads at most `max` bytes to tell 413 from 400.
async fn refuse<B>(headers: &HeaderMap, body: B, max: u64) -> Result<(), GatewayError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let not_allowed = || GatewayError::BadRequest(BadRequest::BodyNotAllowed);
    if declared_length(headers).is_some_and(|n| n > 0 && n <= max) {
        return Err(not_allowed());
    }
    if read(headers, body, max).await?.is_empty() {
        Ok(())
    } else {
        Err(not_allowed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Empty, Full, StreamBody};

    fn headers(content_length: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(n) = content_length {
            h.insert("content-length", n.parse().unwrap());
        }
        h
    }

    #[tokio::test]
    async fn empty_bodies_pass() {
        assert!(
            refuse(&headers(None), Empty::<Bytes>::new(), 10)
                .await
                .is_ok()
        );
        assert!(
            refuse(&headers(Some("0")), Empty::<Bytes>::new(), 10)
                .await
                .is_ok()
        );
        assert!(
            refuse(&headers(None), Full::new(Bytes::new()), 10)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn get_body_is_refused_not_forwarded() {
        let five = headers(Some("5"));
        let declared = refuse(&five, Full::new(Bytes::from_static(b"hello")), 10);
        assert!(matches!(
            declared.await,
            Err(GatewayError::BadRequest(BadRequest::BodyNotAllowed))
        ));
        // Chunked: no Content-Length, the bytes arrive anyway.
        let none = headers(None);
        let streamed = refuse(&none, Full::new(Bytes::from_static(b"GET /x")), 10);
        assert!(matches!(
            streamed.await,
            Err(GatewayError::BadRequest(BadRequest::BodyNotAllowed))
        ));
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_413() {
        let declared = refuse(&headers(Some("11")), Full::new(Bytes::new()), 10).await;
        assert!(matches!(declared, Err(GatewayError::PayloadTooLarge)));
        let streamed = refuse(&headers(None), Full::new(Bytes::from(vec![0u8; 11])), 10).await;
        assert!(matches!(streamed, Err(GatewayError::PayloadTooLarge)));
    }

    #[tokio::test]
    async fn a_broken_body_is_unreadable() {
        let chunks: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = vec![
            Ok(http_body::Frame::data(Bytes::from_static(b"ab"))),
            Err(std::io::Error::other("reset")),
        ];
        let broken = refuse(&headers(None), StreamBody::new(Items(chunks.into())), 10).await;
        assert!(matches!(
            broken,
            Err(GatewayError::BadRequest(BadRequest::BodyUnreadable))
        ));
    }

    fn rule(kinds: &[BodyKind]) -> BodyRule {
        BodyRule {
            kinds: kinds.to_vec(),
            max_bytes: 64,
        }
    }

    fn typed(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", ct.parse().unwrap());
        h
    }

    #[tokio::test]
    async fn a_declared_body_is_validated_and_rebuilt() {
        let json = rule(&[BodyKind::Json]);
        let sent = Full::new(Bytes::from_static(b"{ \"note\" : \"call\" }"));
        let body = check(&typed("application/json"), sent, Some(&json), 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(body.bytes, r#"{"note":"call"}"#);
        let text = rule(&[BodyKind::Text]);
        let sent = Full::new(Bytes::from_static(b"call before noon"));
        let ok = check(&typed("Text/Plain; charset=UTF-8"), sent, Some(&text), 10).await;
        assert_eq!(ok.unwrap().unwrap().kind, BodyKind::Text);
    }

    #[tokio::test]
    async fn a_body_outside_its_rule_is_refused() {
        let text = rule(&[BodyKind::Text]);
        for (ct, bytes) in [
            ("application/json", &b"{}"[..]),
            ("text/plain; boundary=x", b"hi"),
            ("text/plain", b"nul\0byte"),
            ("text/plain", b"\xff\xfe"),
        ] {
            let refused = check(
                &typed(ct),
                Full::new(Bytes::from(bytes.to_vec())),
                Some(&text),
                10,
            )
            .await;
            assert!(
                matches!(
                    refused,
                    Err(GatewayError::BadRequest(BadRequest::BodyInvalid))
                ),
                "{ct}"
            );
        }
        let json = rule(&[BodyKind::Json]);
        let broken = check(
            &typed("application/json"),
            Full::new(Bytes::from_static(b"{")),
            Some(&json),
            10,
        )
        .await;
        assert!(matches!(
            broken,
            Err(GatewayError::BadRequest(BadRequest::BodyInvalid))
        ));
        let large = check(
            &typed("text/plain"),
            Full::new(Bytes::from(vec![b'a'; 65])),
            Some(&text),
            10,
        )
        .await;
        assert!(matches!(large, Err(GatewayError::PayloadTooLarge)));
    }

    struct Items<T>(std::collections::VecDeque<T>);

    impl<T: Unpin> futures_core::Stream for Items<T> {
        type Item = T;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            std::task::Poll::Ready(self.0.pop_front())
        }
    }
}
