//! Security events to a webhook (CONTRACT §8.2), never on the request path. Reporting an event
//! ([`crate::vocab::event::Events::emit`]) logs it at WARN and hands it to the [`Webhook`], which
//! only pushes it onto a bounded queue (a full queue drops its oldest event, counted as
//! `ordergate_events_total{result="dropped"}`); one task per webhook sends them in order, each as
//! one signed JSON POST (`Ordergate-Signature`, see [`signature`]), with a per-attempt timeout
//! and a bounded number of attempts spaced by exponential backoff with full jitter
//! (`result="sent"` or `"failed"`). A dead, slow or hanging receiver therefore fills the queue,
//! never a request's latency.
//!
//! A reload builds a new webhook (its events carry the new policy's hash); the old one's task
//! finishes what it had queued, then stops.

mod body;
mod queue;
pub mod signature;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::vocab::event::{Deliver, Event, EventKind};
use crate::vocab::secret::Secret;

pub use queue::EventQueue;

/// `[events]`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsSettings {
    /// Where events are POSTed: https, or http to a loopback address.
    pub webhook_url: http::Uri,
    /// The HMAC key of `Ordergate-Signature`.
    pub secret: Secret,
    /// Events that may wait for delivery; beyond it the oldest is dropped.
    pub queue_capacity: usize,
    /// Extra trust anchors for an https receiver.
    pub ca: Option<Vec<rustls_pki_types::CertificateDer<'static>>>,
    /// Time one attempt may take, connection included.
    pub timeout: Duration,
    /// Attempts per event before it counts as failed.
    pub max_attempts: u32,
}

/// The first retry waits up to this long; each later one up to twice as long as the last.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// No wait between attempts is longer.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// What the webhook's task shares with its handle.
struct Shared {
    queue: EventQueue,
    closed: AtomicBool,
}

/// Delivers events to the webhook; dropping it lets its task drain the queue and stop.
pub struct Webhook {
    shared: Arc<Shared>,
}

impl Deliver for Webhook {
    fn deliver(&self, event: Event) {
        if let Some(dropped) = self.shared.queue.push(event) {
            count(dropped.kind, "dropped");
            // Counted, not logged again: every event was logged at WARN when it was reported.
            tracing::debug!(
                event = dropped.kind.as_str(),
                "security events queue full: dropped the oldest event"
            );
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.queue.wake();
    }
}

impl Webhook {
    /// Starts the sender task for `settings`; its events carry `policy_sha256`.
    pub fn start(
        settings: &EventsSettings,
        policy_sha256: String,
    ) -> Result<Self, crate::vocab::tls_client::TlsError> {
        let connector = crate::vocab::tls_client::https_connector(
            settings.ca.as_deref(),
            settings.timeout,
            false,
        )?;
        let client: HttpsClient = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .build(connector);
        let shared = Arc::new(Shared {
            queue: EventQueue::new(settings.queue_capacity),
            closed: AtomicBool::new(false),
        });
        let sender = Sender {
            shared: shared.clone(),
            client,
            settings: settings.clone(),
            policy_sha256,
        };
        tokio::spawn(sender.run());
        Ok(Self { shared })
    }
}

/// The task that sends queued events one by one.
struct Sender {
    shared: Arc<Shared>,
    client: HttpsClient,
    settings: EventsSettings,
    policy_sha256: String,
}

impl Sender {
    async fn run(self) {
        loop {
            while let Some(event) = self.shared.queue.pop() {
                let sent = self.send(&event).await;
                count(event.kind, if sent { "sent" } else { "failed" });
            }
            if self.shared.closed.load(Ordering::Acquire) {
                return;
            }
            self.shared.queue.wait().await;
        }
    }

    /// Sends one event, retrying as configured; true once the receiver answered 2xx.
    async fn send(&self, event: &Event) -> bool {
        let body = Bytes::from(body::render(event, &self.policy_sha256));
        let attempts = self.settings.max_attempts.max(1);
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt, rand::random::<f64>())).await;
            }
            match self.attempt(&body).await {
                Attempt::Delivered => return true,
                Attempt::Refused(status) => {
                    tracing::warn!(event = event.kind.as_str(), %status, "the events receiver refused an event");
                    return false;
                }
                Attempt::Retry(why) => {
                    tracing::debug!(event = event.kind.as_str(), attempt, why = %why, "event delivery failed; retrying");
                }
            }
        }
        tracing::warn!(
            event = event.kind.as_str(),
            attempts,
            "security event not delivered"
        );
        false
    }

    async fn attempt(&self, body: &Bytes) -> Attempt {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signature =
            signature::header_value(self.settings.secret.expose().as_bytes(), unix, body);
        let request = http::Request::post(self.settings.webhook_url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("ordergate-signature", signature)
            .body(Full::new(body.clone()));
        let request = match request {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(e.to_string()),
        };
        match tokio::time::timeout(self.settings.timeout, self.client.request(request)).await {
            Err(_) => Attempt::Retry("timed out".into()),
            Ok(Err(e)) => Attempt::Retry(e.to_string()),
            Ok(Ok(response)) => {
                let status = response.status();
                if status.is_success() {
                    Attempt::Delivered
                } else if status.is_server_error()
                    || status == http::StatusCode::TOO_MANY_REQUESTS
                    || status == http::StatusCode::REQUEST_TIMEOUT
                {
                    Attempt::Retry(format!("HTTP {status}"))
                } else {
                    Attempt::Refused(status)
                }
            }
        }
    }
}

/// How one attempt ended.
enum Attempt {
    /// 2xx.
    Delivered,
    /// A 4xx that another attempt would not change (a wrong secret, a wrong path).
    Refused(http::StatusCode),
    /// A connect error, a timeout, 5xx, 408 or 429.
    Retry(String),
}

/// The wait before attempt `attempt` (1 = the first retry): full jitter over an exponentially
/// growing, capped ceiling, so that many gateways retrying a recovering receiver spread out.
fn backoff(attempt: u32, jitter: f64) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(BACKOFF_MAX);
    ceiling.mul_f64(jitter.clamp(0.0, 1.0))
}

fn count(kind: EventKind, result: &'static str) {
    crate::vocab::metrics::event_counted(kind, result);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_under_its_cap_and_jitters_down() {
        assert_eq!(backoff(1, 1.0), Duration::from_millis(200));
        assert_eq!(backoff(2, 1.0), Duration::from_millis(400));
        assert_eq!(backoff(4, 1.0), Duration::from_millis(1600));
        assert_eq!(backoff(30, 1.0), BACKOFF_MAX);
        assert_eq!(backoff(3, 0.5), Duration::from_millis(400));
        assert_eq!(backoff(3, 0.0), Duration::ZERO);
        assert_eq!(backoff(3, 7.0), Duration::from_millis(800));
    }
}
