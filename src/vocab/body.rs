//! The gateway's response body: a buffer the gateway wrote, or the upstream's body streamed
//! through. It counts the bytes sent and finishes the request's audit record when it ends — or
//! when it is dropped early because the client went away — so every exit writes one record.
//! Under `on_error = "reject"` it also holds back its last frame until that record is written
//! (commit before completion).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::vocab::cause::Interrupted;
use crate::vocab::cutoff::Cutoff;
use crate::vocab::send_watch::SendWatch;

/// How long a response waits for its audit record before it is aborted instead of completed.
pub const COMMIT_WAIT: Duration = Duration::from_secs(5);

/// The audit writer's answer for one record: `true` once written (and synced, per `fsync`),
/// `false` (or the sender dropped) when it could not be.
pub type Written = tokio::sync::oneshot::Receiver<bool>;

/// What a body finishes when it ends: the request's audit record (stage 12). A trait, so that
/// the body every stage returns depends on no stage.
pub trait BodyEnd: Send + Sync + 'static {
    /// True when the response must not complete before the record is written.
    fn commits(&self) -> bool;
    /// Sends the record with the last figures; `interrupted` names why the body did not end
    /// normally. Returns the writer's acknowledgement when the response waits for it.
    fn finish(self: Box<Self>, bytes_out: u64, interrupted: Option<Interrupted>)
    -> Option<Written>;
}

/// A slot held until the body ends (the in-flight count of stage 9), released on drop.
pub type Held = Box<dyn Send + Sync>;

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

/// The writer could not write this response's record (or did not say so within
/// [`COMMIT_WAIT`]): the response is cut before its last frame instead of completing.
#[derive(Debug)]
struct Unrecorded;

impl std::fmt::Display for Unrecorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the response's audit record could not be written")
    }
}

impl std::error::Error for Unrecorded {}

/// Where a body that waits for its record stands.
enum Commit {
    /// `on_error = "continue"` (or nothing to record): frames pass as they come.
    Off,
    /// Frames pass one behind: the newest is held, as it may be the last.
    HoldingLast,
    /// The body ended; the last frame waits for the writer's acknowledgement.
    Waiting {
        written: Written,
        /// Armed only if the acknowledgement does not come at once.
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    },
    /// The record is written: the held frame, then the end, may go.
    Released,
    /// The record could not be written: the body ended in an error.
    Aborted,
}

/// A response body that ends the request's bookkeeping when it ends.
///
/// Commit before completion (CONTRACT.md §11): under `on_error = "reject"` the body holds back
/// its last frame — the whole buffer for a body the gateway made, one frame of look-ahead for a
/// streamed one — until the writer says the record is written, so the client never sees the
/// last byte (h1) or END_STREAM (h2) of an answer that has no record. If the record cannot be
/// written the body ends in an error: hyper cuts the h1 connection before the last byte, or
/// resets the h2 stream.
pub struct GatewayBody {
    inner: Inner,
    sent: u64,
    pending: Option<Box<dyn BodyEnd>>,
    in_flight: Option<Held>,
    commit: Commit,
    held: Option<Frame<Bytes>>,
    /// Told of every frame, so the connection can abort a response the client stopped taking.
    send_watch: Option<Arc<SendWatch>>,
    /// Says why a body dropped unfinished was cut: shutdown rather than the client leaving.
    cutoff: Option<Cutoff>,
}

impl GatewayBody {
    /// A body of bytes the gateway made.
    pub fn full(bytes: Bytes) -> Self {
        Self::new(Inner::Full(Some(bytes)))
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::full(Bytes::new())
    }

    /// The bytes of a body the gateway made (not yet sent), for keeping a copy of the answer.
    pub fn as_full(&self) -> Option<&Bytes> {
        match &self.inner {
            Inner::Full(bytes) => bytes.as_ref(),
            Inner::Upstream { .. } => None,
        }
    }

    /// The upstream's body, streamed; a pause longer than `idle` between frames ends it with an
    /// error (the client sees a broken response, the record says so).
    pub fn upstream(body: hyper::body::Incoming, idle: Duration) -> Self {
        Self::new(Inner::Upstream {
            body,
            idle,
            stall: None,
        })
    }

    fn new(inner: Inner) -> Self {
        Self {
            inner,
            sent: 0,
            pending: None,
            in_flight: None,
            commit: Commit::Off,
            held: None,
            send_watch: None,
            cutoff: None,
        }
    }

    /// Attaches the audit record to finish when the body ends.
    pub fn set_pending(&mut self, pending: Box<dyn BodyEnd>) {
        if pending.commits() {
            self.commit = Commit::HoldingLast;
        }
        self.pending = Some(pending);
    }

    /// Attaches the in-flight slot to release when the body ends.
    pub fn set_in_flight(&mut self, in_flight: Option<Held>) {
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
    /// The send watch and the in-flight slot are released only when the body is dropped: with
    /// commit before completion the record is finished one frame ahead of the client, and the
    /// response still occupies its slot (and may still stall) until its last frame is taken.
    fn finish(&mut self, interrupted: Option<Interrupted>) {
        if let Some(pending) = self.pending.take() {
            // A held frame counts only when it is about to go; a cut response never sends it.
            let held = match interrupted {
                None => self
                    .held
                    .as_ref()
                    .and_then(Frame::data_ref)
                    .map_or(0, |d| d.len() as u64),
                Some(_) => 0,
            };
            let written = pending.finish(self.sent + held, interrupted);
            if let (Commit::HoldingLast, Some(written)) = (&self.commit, written) {
                self.commit = Commit::Waiting {
                    written,
                    deadline: None,
                };
            }
        }
        if matches!(self.commit, Commit::HoldingLast) {
            self.commit = Commit::Released;
        }
    }

    /// The next frame of the inner body, with the stall timer.
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.inner {
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
        }
    }

    /// True when the inner body has nothing more to give.
    fn inner_done(&self) -> bool {
        match &self.inner {
            Inner::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Inner::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    /// Hands out `frame`, counting its bytes.
    fn pass(&mut self, frame: Frame<Bytes>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(data) = frame.data_ref() {
            self.sent += data.len() as u64;
        }
        if let Some(watch) = &self.send_watch {
            watch.progressed();
        }
        Poll::Ready(Some(Ok(frame)))
    }

    /// Polls `step`; while it is pending the response waits on the upstream or the audit
    /// writer, not on the client, so the send watch does not count it as a stall.
    fn waiting<T>(
        &mut self,
        cx: &mut Context<'_>,
        step: impl FnOnce(&mut Self, &mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        let polled = step(self, cx);
        if polled.is_pending()
            && let Some(watch) = &self.send_watch
        {
            watch.waiting_on_upstream();
        }
        polled
    }

    /// Splits the held data frame into what may go now and its last byte, which stays held.
    fn split_held(&mut self) -> Option<Frame<Bytes>> {
        let data = self.held.as_mut()?.data_mut()?;
        if data.len() < 2 {
            return None;
        }
        let tail = data.split_off(data.len() - 1);
        let head = std::mem::replace(data, tail);
        Some(Frame::data(head))
    }

    /// Waits for the writer's acknowledgement; `Ready(true)` once the record is written.
    fn poll_written(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let Commit::Waiting { written, deadline } = &mut self.commit else {
            return Poll::Ready(matches!(self.commit, Commit::Released | Commit::Off));
        };
        let outcome = match Pin::new(written).poll(cx) {
            Poll::Ready(answer) => answer.unwrap_or(false),
            Poll::Pending => {
                let timer =
                    deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(COMMIT_WAIT)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => false,
                    Poll::Pending => return Poll::Pending,
                }
            }
        };
        self.commit = if outcome {
            Commit::Released
        } else {
            metrics::counter!("ordergate_audit_aborted_total").increment(1);
            tracing::warn!("response aborted: its audit record could not be written");
            self.held = None;
            Commit::Aborted
        };
        Poll::Ready(outcome)
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
        // Bounded: each turn either returns or moves the state forward (a frame taken from the
        // inner body that ends it, or the held frame replaced by a new one, which then returns).
        loop {
            match &this.commit {
                Commit::Aborted => return Poll::Ready(None),
                Commit::Waiting { .. } => {
                    if !ready!(this.waiting(cx, Self::poll_written)) {
                        return Poll::Ready(Some(Err(Box::new(Unrecorded) as BoxError)));
                    }
                    continue;
                }
                Commit::Released => {
                    if let Some(frame) = this.held.take() {
                        return this.pass(frame);
                    }
                    if this.pending.is_none() && this.inner_done() {
                        return Poll::Ready(None);
                    }
                }
                Commit::Off | Commit::HoldingLast => {}
            }
            let holding = matches!(this.commit, Commit::HoldingLast);
            match ready!(this.waiting(cx, Self::poll_inner)) {
                Some(Ok(frame)) if holding => {
                    let previous = this.held.replace(frame);
                    if let Some(previous) = previous {
                        return this.pass(previous);
                    }
                    // The last frame: all but its last byte goes now; the record is written
                    // when the connection asks for more (the client is taking the answer), and
                    // only then does the last byte follow. A client that stops reading never
                    // gets that far: its response is cut and recorded as such.
                    if this.inner_done()
                        && let Some(head) = this.split_held()
                    {
                        return this.pass(head);
                    }
                }
                Some(Ok(frame)) => return this.pass(frame),
                Some(Err(e)) => {
                    this.held = None;
                    this.finish(Some(if e.is::<Stalled>() {
                        Interrupted::UpstreamStalled
                    } else {
                        Interrupted::UpstreamBodyError
                    }));
                    this.commit = Commit::Aborted;
                    return Poll::Ready(Some(Err(e)));
                }
                None if holding => {
                    this.finish(None);
                    continue;
                }
                None => {
                    this.finish(None);
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self.commit {
            // Not ended while anything is held or the record is not yet acknowledged, so even an
            // empty body is polled (and its END_STREAM held back) until then.
            Commit::HoldingLast | Commit::Waiting { .. } => false,
            Commit::Released => self.held.is_none() && self.inner_done(),
            Commit::Off | Commit::Aborted => self.inner_done(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        let held = self
            .held
            .as_ref()
            .and_then(Frame::data_ref)
            .map_or(0, |d| d.len() as u64);
        let mut hint = match &self.inner {
            Inner::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::Upstream { body, .. } => body.size_hint(),
        };
        if held > 0 {
            hint.set_lower(hint.lower() + held);
            if let Some(upper) = hint.upper() {
                hint.set_upper(upper + held);
            }
        }
        if matches!(self.commit, Commit::HoldingLast) && hint.exact() == Some(0) {
            // An exact zero lets HTTP/1.1 finish the response with its headers; an inexact hint
            // makes it chunked, whose last chunk then waits for the record.
            return SizeHint::default();
        }
        hint
    }
}

impl Drop for GatewayBody {
    fn drop(&mut self) {
        // Dropped with something left to send: the connection aborted a stalled response, the
        // shutdown cutoff was reached, or else the client went away mid-response.
        let interrupted = (!self.inner_done() || self.held.is_some()).then(|| {
            if self.send_watch.as_ref().is_some_and(|w| w.is_stalled()) {
                Interrupted::SendStalled
            } else if self.cutoff.as_ref().is_some_and(Cutoff::is_cut) {
                Interrupted::Shutdown
            } else {
                Interrupted::ClientDisconnected
            }
        });
        self.finish(interrupted);
        if let Some(watch) = self.send_watch.take() {
            watch.finish();
        }
        self.in_flight.take();
    }
}
