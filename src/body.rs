//! The gateway's response body: a buffer the gateway wrote, or the upstream's body streamed
//! through. It counts the bytes sent and finishes the request's audit record when it ends — or
//! when it is dropped early because the client went away — so every exit writes one record.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::audit::Pending;
use crate::load_shed::InFlight;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

enum Inner {
    Full(Option<Bytes>),
    Upstream(hyper::body::Incoming),
}

/// A response body that ends the request's bookkeeping when it ends.
pub struct GatewayBody {
    inner: Inner,
    sent: u64,
    pending: Option<Pending>,
    in_flight: Option<InFlight>,
}

impl GatewayBody {
    /// A body of bytes the gateway made.
    pub fn full(bytes: Bytes) -> Self {
        Self {
            inner: Inner::Full(Some(bytes)),
            sent: 0,
            pending: None,
            in_flight: None,
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::full(Bytes::new())
    }

    /// The upstream's body, streamed.
    pub fn upstream(body: hyper::body::Incoming) -> Self {
        Self {
            inner: Inner::Upstream(body),
            sent: 0,
            pending: None,
            in_flight: None,
        }
    }

    /// Attaches the audit record to finish when the body ends.
    pub fn set_pending(&mut self, pending: Pending) {
        self.pending = Some(pending);
    }

    /// Attaches the in-flight slot to release when the body ends.
    pub fn set_in_flight(&mut self, in_flight: Option<InFlight>) {
        self.in_flight = in_flight;
    }

    fn finish(&mut self, completed: bool) {
        self.in_flight.take();
        if let Some(mut pending) = self.pending.take() {
            pending.completed = completed;
            pending.finish(self.sent);
        }
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = match &mut this.inner {
            Inner::Full(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Inner::Upstream(body) => match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e) as BoxError))),
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
            }
            Poll::Ready(None) => this.finish(true),
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Inner::Upstream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::Upstream(body) => body.size_hint(),
        }
    }
}

impl Drop for GatewayBody {
    fn drop(&mut self) {
        // Ended normally only if nothing was left to send.
        let completed = self.is_end_stream();
        self.finish(completed);
    }
}
