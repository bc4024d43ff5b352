//! The demo's security-events receiver: a tiny webhook on loopback that checks each event's
//! `Ordergate-Signature` with the demo secret and appends it to `events.jsonl` in the state
//! directory, so the newcomer sees where events go and what a SIEM would get. Also the demo
//! policy's `[abuse.volume]` and `[events]` sections.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use serde_json::Value;
use subtle::ConstantTimeEq;
use tokio::sync::Notify;

use crate::stage::events::signature::hmac_sha256;

/// Distinct customers one principal may read per window in the demo (the tour's scraper walks
/// past it).
pub const DEMO_DISTINCT_MAX: u32 = 10;

/// The receiver and what it got.
pub struct DemoReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where it writes each event, one JSON line.
    pub log: PathBuf,
    secret: Vec<u8>,
    received: Mutex<Vec<(bool, Value)>>,
    arrived: Notify,
}

impl DemoReceiver {
    /// Makes a secret (written to `keys/events.secret`) and starts listening on 127.0.0.1.
    pub async fn start(state: &Path) -> anyhow::Result<Arc<Self>> {
        let secret = hex::encode(rand::random::<[u8; 32]>());
        std::fs::write(state.join("keys/events.secret"), &secret)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let receiver = Arc::new(Self {
            addr: listener.local_addr()?,
            log: state.join("events.jsonl"),
            secret: secret.into_bytes(),
            received: Mutex::new(Vec::new()),
            arrived: Notify::new(),
        });
        let _ = std::fs::remove_file(&receiver.log);
        let state = receiver.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move { state.receive(&headers, &body) }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(receiver)
    }

    /// The webhook URL for the policy.
    pub fn url(&self) -> String {
        format!("http://{}/hooks/ordergate", self.addr)
    }

    fn receive(&self, headers: &HeaderMap, body: &[u8]) -> StatusCode {
        let signature = headers
            .get("ordergate-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let verified = verify(&self.secret, signature, body);
        let event: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let line = serde_json::json!({"signature_ok": verified, "event": event});
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
        {
            let _ = writeln!(file, "{line}");
        }
        self.received.lock().push((verified, event));
        self.arrived.notify_waiters();
        if verified {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::UNAUTHORIZED
        }
    }

    /// Waits up to `wait` until an event of `kind` arrived; returns every event so far.
    pub async fn wait_for(&self, kind: &str, wait: Duration) -> Vec<(bool, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let arrived = self.arrived.notified();
            let now = self.received.lock().clone();
            if now.iter().any(|(_, e)| e["kind"] == kind) {
                return now;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return now;
            }
        }
    }
}

/// Checks `t=<unix>,v1=<hex>` against the body, in constant time.
fn verify(secret: &[u8], header: &str, body: &[u8]) -> bool {
    let Some((t, v1)) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let Ok(given) = hex::decode(v1) else {
        return false;
    };
    let mut message = Vec::with_capacity(t.len() + 1 + body.len());
    message.extend_from_slice(t.as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    bool::from(hmac_sha256(secret, &message).as_slice().ct_eq(&given))
}

/// The demo policy's guard and events sections, appended to the rendered template.
pub fn policy_sections(webhook_url: &str) -> String {
    format!(
        "\n[abuse.volume]\n\
         # a caller reading more than {DEMO_DISTINCT_MAX} customers' orders within 10 minutes is frozen\n\
         distinct = {{ param = \"customer_id\", max = {DEMO_DISTINCT_MAX}, window = \"10m\" }}\n\
         action = \"freeze\"\n\n\
         [events]\n\
         webhook_url = \"{webhook_url}\"\n\
         webhook_secret_file = \"keys/events.secret\"\n\
         queue_capacity = 1000\n"
    )
}

/// The tour's step: a customer-service token walks through customer ids, one after another,
/// until the distinct guard freezes it; then the events the receiver got are shown.
pub(super) async fn scraper_step(
    setup: &super::Setup,
    client: &super::DemoClient,
    base: &str,
    n: u32,
) -> anyhow::Result<()> {
    let token = format!(
        "Bearer {}",
        super::read(&setup.state, "tokens/mallory.jwt")?
    );
    let range = "start_date=2025-01-01&end_date=2025-12-31&page_size=1";
    let mut statuses = Vec::new();
    for customer in 1..=DEMO_DISTINCT_MAX + 3 {
        let (status, _, _) = super::get(
            client,
            &format!("{base}/v1/customers/C{customer:07}/orders?{range}"),
            &[("authorization", &token)],
        )
        .await?;
        statuses.push(status);
        if status == 403 {
            break;
        }
    }
    let answered = statuses.iter().filter(|s| **s == 200).count();
    println!(
        "\n{n}. mallory (customer service, JWT) walks through customer ids C0000001, C0000002, … \
         staying under every rate limit:\n   {answered} answered, then → {} frozen: the volume guard \
         allows {DEMO_DISTINCT_MAX} distinct customers per 10 minutes",
        statuses.last().copied().unwrap_or(0)
    );
    let receiver = &setup.events;
    let got = receiver.wait_for("freeze", Duration::from_secs(5)).await;
    println!(
        "   security events pushed to {} (signed; each checked and written to {}):",
        receiver.url(),
        receiver.log.display()
    );
    for (verified, event) in got.iter().filter(|(_, e)| e["principal"] == "jwt:mallory") {
        println!(
            "   {} {} detail={} route={} signature {}",
            event["kind"].as_str().unwrap_or("?"),
            event["principal"].as_str().unwrap_or("-"),
            event["detail"].as_str().unwrap_or("-"),
            event["route"].as_str().unwrap_or("-"),
            if *verified { "ok" } else { "BAD" }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_signature_verifies() {
        let body = b"{\"kind\":\"freeze\"}";
        let good = crate::stage::events::signature::header_value(b"s", 1700000000, body);
        assert!(verify(b"s", &good, body));
        assert!(!verify(b"t", &good, body));
        assert!(!verify(b"s", &good, b"{\"kind\":\"unfreeze\"}"));
        assert!(!verify(b"s", "t=1,v1=zz", body));
        assert!(!verify(b"s", "", body));
    }
}
