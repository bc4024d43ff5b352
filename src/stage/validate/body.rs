//! Stage 7, the request body. No route declares a request body (every route is a query), and
//! a body that was not validated is never forwarded: an order service that does not read GET
//! bodies would parse one as the *next* request on the pooled connection — a request with no
//! owner binding, no whitelist and no audit record. So any non-empty body is refused: over
//! `max_request_body` with 413 `payload_too_large`, otherwise with 400 `bad_request`
//! (`body_not_allowed`). An empty body (`Content-Length: 0`, an empty chunked body) passes.

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body;
use http_body_util::{BodyExt, Limited};

use crate::vocab::error::{BadRequest, GatewayError};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Refuses any request body; reads at most `max` bytes to tell 413 from 400.
pub async fn refuse<B>(headers: &HeaderMap, body: B, max: u64) -> Result<(), GatewayError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > max => return Err(GatewayError::PayloadTooLarge),
        Some(n) if n > 0 => return Err(GatewayError::BadRequest(BadRequest::BodyNotAllowed)),
        _ => {}
    }
    if body.is_end_stream() {
        return Ok(());
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => {
            if collected.to_bytes().is_empty() {
                Ok(())
            } else {
                Err(GatewayError::BadRequest(BadRequest::BodyNotAllowed))
            }
        }
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(GatewayError::PayloadTooLarge),
        Err(_) => Err(GatewayError::BadRequest(BadRequest::BodyUnreadable)),
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
