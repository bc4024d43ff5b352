//! The gateway's response body: a buffer the gateway wrote, or the upstream's body streamed
//! through. It counts the bytes sent and finishes the request's audit record when it ends — or
//! when it is dropped early because the client went away — so every exit writes one record.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::audit::Pending;
use crate::cutoff::Cutoff;
use crate::load_shed::InFlight;
use crate::send_watch::SendWatch;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

enum Inner {
    Full(Option<Bytes>),
    Upstream {
        body: hyper::body::Incoming,
        /// How long the upstream may pause between frames.
        idle: Duration,
        /// Armed only while the body waits, so a body that flows costs no timer.
        stall: Option<Pin<Box<tokio::time::Sleep>>>,
    },
}

/// The upstream paused longer than its `timeout` in the middle of a body.
#[derive(Debug)]
struct Stalled;

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the upstream stalled in the middle of the body")
    }
}

impl std::error::Error for Stalled {}

/// A response body that ends the request's bookkeeping when it ends.
pub struct GatewayBody {
    inner: Inner,
    sent: u64,
    pending: Option<Pending>,
    in_flight: Option<InFlight>,
    /// Told of every frame, so the connection can abort a response the client stopped taking.
    send_watch: Option<Arc<SendWatch>>,
    /// Says why a body dropped unfinished was cut: shutdown rather than the client leaving.
    cutoff: Option<Cutoff>,
}

impl GatewayBody {
    /// A body of bytes the gateway made.
    pub fn full(bytes: Bytes) -> Self {
        Self {
            inner: Inner::Full(Some(bytes)),
            sent: 0,
            pending: None,
            in_flight: None,
            send_watch: None,
            cutoff: None,
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::full(Bytes::new())
    }

    /// The upstream's body, streamed; a pause longer than `idle` between frames ends it with an
    /// error (the client sees a broken response, the record says so).
    pub fn upstream(body: hyper::body::Incoming, idle: Duration) -> Self {
        Self {
            inner: Inner::Upstream {
                body,
                idle,
                stall: None,
            },
            sent: 0,
            pending: None,
            in_flight: None,
            send_watch: None,
            cutoff: None,
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

    /// Attaches the watch that tells the connection how this response progresses.
    pub fn set_send_watch(&mut self, watch: Arc<SendWatch>) {
        self.send_watch = Some(watch);
    }

    /// Attaches the shutdown cutoff, so a body dropped by it is recorded as `shutdown`.
    pub fn set_cutoff(&mut self, cutoff: Cutoff) {
        self.cutoff = Some(cutoff);
    }

    /// Drops the content (an answer to HEAD carries none: HTTP/2 treats DATA on it as a stream
    /// error), keeping the bookkeeping, so the record is still written when the body ends.
    pub fn discard_content(&mut self) {
        self.inner = Inner::Full(None);
    }

    /// Ends the request's bookkeeping; `interrupted` is `None` when the body ended normally.
    fn finish(&mut self, interrupted: Option<&'static str>) {
        if let Some(watch) = self.send_watch.take() {
            watch.finish();
        }
        self.in_flight.take();
        if let Some(pending) = self.pending.take() {
            pending.finish(self.sent, interrupted);
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
            Inner::Upstream { body, idle, stall } => match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e) as BoxError))),
                Poll::Ready(Some(Ok(frame))) => {
                    *stall = None;
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => {
                    let timer = stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(*idle)));
                    match timer.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(Stalled) as BoxError))),
                        Poll::Pending => Poll::Pending,
                    }
                }
            },
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
                if let Some(watch) = &this.send_watch {
                    watch.progressed();
                }
            }
            Poll::Ready(None) => this.finish(None),
            Poll::Ready(Some(Err(e))) => this.finish(Some(if e.is::<Stalled>() {
                "upstream_stalled"
            } else {
                "upstream_body_error"
            })),
            Poll::Pending => {
                if let Some(watch) = &this.send_watch {
                    watch.waiting_on_upstream();
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Inner::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::Upstream { body, .. } => body.size_hint(),
        }
    }
}

impl Drop for GatewayBody {
    fn drop(&mut self) {
        // Dropped with something left to send: the connection aborted a stalled response, the
        // shutdown cutoff was reached, or else the client went away mid-response.
        let interrupted = (!self.is_end_stream()).then(|| {
            if self.send_watch.as_ref().is_some_and(|w| w.is_stalled()) {
                "send_stalled"
            } else if self.cutoff.as_ref().is_some_and(Cutoff::is_cut) {
                "shutdown"
            } else {
                "client_disconnected"
            }
        });
        self.finish(interrupted);
    }
}
