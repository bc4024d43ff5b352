//! A local security-events receiver: records every delivery (signature header and body) and
//! answers as told — `200`, a status, or never. Tests wait on it with a bounded wait that wakes
//! on each delivery, no polling sleeps.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::Notify;

/// One delivery as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `Ordergate-Signature`.
    pub signature: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// True when the signature is `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
    pub fn verifies(&self, secret: &[u8]) -> bool {
        let Some((t, v1)) = self
            .signature
            .strip_prefix("t=")
            .and_then(|rest| rest.split_once(",v1="))
        else {
            return false;
        };
        if t.parse::<u64>().is_err() {
            return false;
        }
        let mut message = t.as_bytes().to_vec();
        message.push(b'.');
        message.extend_from_slice(&self.body);
        hex::encode(ordergate::stage::events::signature::hmac_sha256(
            secret, &message,
        )) == v1
    }
}

/// What the receiver answers.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Status(u16),
    /// Accepts the request and never answers.
    Never,
}

/// The receiver.
pub struct Receiver {
    pub addr: SocketAddr,
    deliveries: Mutex<Vec<Delivery>>,
    answers: Mutex<VecDeque<Answer>>,
    default: Mutex<Answer>,
    arrived: Notify,
}

impl Receiver {
    pub async fn start(default: Answer) -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Arc::new(Self {
            addr: listener.local_addr().unwrap(),
            deliveries: Mutex::new(Vec::new()),
            answers: Mutex::new(VecDeque::new()),
            default: Mutex::new(default),
            arrived: Notify::new(),
        });
        let state = receiver.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let state = state.clone();
            async move { state.answer(request).await }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        receiver
    }

    /// The URL events are to be sent to.
    pub fn url(&self) -> String {
        format!("http://{}/hooks/ordergate", self.addr)
    }

    /// The next deliveries get these answers, then the default.
    pub fn answer_next(&self, answers: &[Answer]) {
        self.answers.lock().extend(answers.iter().copied());
    }

    async fn answer(&self, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let delivery = Delivery {
            signature: header("ordergate-signature"),
            content_type: header("content-type"),
            body: axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default()
                .to_vec(),
        };
        self.deliveries.lock().push(delivery);
        self.arrived.notify_waiters();
        let answer = self
            .answers
            .lock()
            .pop_front()
            .unwrap_or(*self.default.lock());
        match answer {
            Answer::Status(status) => StatusCode::from_u16(status).unwrap().into_response(),
            Answer::Never => {
                std::future::pending::<()>().await;
                StatusCode::OK.into_response()
            }
        }
    }

    /// Every delivery so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().clone()
    }

    /// Waits (at most 10 s) until a delivery satisfies `done` and returns all of them.
    pub async fn wait_until(&self, done: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let arrived = self.arrived.notified();
            let now = self.deliveries();
            if done(&now) {
                return now;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("the receiver did not get the expected events: {now:#?}");
            }
        }
    }
}

/// The `kind` of each delivery, in order.
pub fn kinds(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| d.json()["kind"].as_str().unwrap_or("").to_owned())
        .collect()
}
