//! The recording, steerable fake order service, and the sample orders it serves: every kind of
//! personal data, so a test can see what a view lets through.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// What the fake order service answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A JSON body with this status.
    Json(u16, Value),
    /// A body with this status and content type.
    Raw(u16, &'static str, String),
    /// A body with this status and these headers.
    Headers(u16, Vec<(&'static str, &'static str)>, String),
    /// Never answers.
    Hang,
    /// Waits, then answers like `Orders`.
    Delay(u64),
    /// Sends headers, then breaks the connection mid-body.
    Abort,
    /// Sends headers and a first chunk, then goes silent (connection kept open).
    Stall,
    /// The default: a realistic orders page, or one order for `/api/orders/{id}`.
    Orders,
}

/// One request the fake order service received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// A recording, steerable stand-in for the order service.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    requests: Mutex<Vec<Recorded>>,
    queue: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
}

impl FakeUpstream {
    pub async fn start() -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = Arc::new(Self {
            addr: listener.local_addr().unwrap(),
            requests: Mutex::new(Vec::new()),
            queue: Mutex::new(VecDeque::new()),
            default: Mutex::new(Reply::Orders),
        });
        let state = upstream.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let state = state.clone();
            async move { state.answer(request).await }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        upstream
    }

    async fn answer(&self, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20)
            .await
            .unwrap_or_default()
            .to_vec();
        let target = parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default();
        self.requests.lock().push(Recorded {
            method: parts.method.to_string(),
            target: target.clone(),
            headers: parts.headers.clone(),
            body,
        });
        let reply = self
            .queue
            .lock()
            .pop_front()
            .unwrap_or_else(|| self.default.lock().clone());
        match reply {
            Reply::Json(status, value) => {
                (StatusCode::from_u16(status).unwrap(), axum::Json(value)).into_response()
            }
            Reply::Raw(status, content_type, body) => (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", content_type)],
                body,
            )
                .into_response(),
            Reply::Headers(status, headers, body) => {
                let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
                for (name, value) in headers {
                    response.headers_mut().insert(name, value.parse().unwrap());
                }
                response
            }
            Reply::Hang => {
                std::future::pending::<()>().await;
                StatusCode::OK.into_response()
            }
            Reply::Delay(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                axum::Json(sample_page()).into_response()
            }
            Reply::Stall => Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from_stream(stalling_stream()))
                .unwrap(),
            Reply::Abort => {
                let stream = futures_stream();
                Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(Body::from_stream(stream))
                    .unwrap()
            }
            Reply::Orders => {
                let body = if parts.uri.path().starts_with("/api/orders/") {
                    sample_order("O2025010100000001")
                } else {
                    sample_page()
                };
                let mut response = axum::Json(body).into_response();
                response
                    .headers_mut()
                    .insert("server", "OrderService/2.3 (Java)".parse().unwrap());
                response
                    .headers_mut()
                    .insert("x-powered-by", "Servlet/3.1".parse().unwrap());
                response
            }
        }
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().clone()
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.requests.lock().len()
    }

    /// Answers the next requests with these replies, then the default again.
    pub fn queue(&self, replies: impl IntoIterator<Item = Reply>) {
        self.queue.lock().extend(replies);
    }

    /// Changes the default answer.
    pub fn set_default(&self, reply: Reply) {
        *self.default.lock() = reply;
    }
}

/// One chunk, then nothing ever again.
fn stalling_stream() -> impl futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send
{
    struct Stalling(bool);
    impl futures_core::Stream for Stalling {
        type Item = Result<bytes::Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.0 {
                return std::task::Poll::Pending;
            }
            self.0 = true;
            std::task::Poll::Ready(Some(Ok(bytes::Bytes::from_static(b"{\"orders\": ["))))
        }
    }
    Stalling(false)
}

fn futures_stream() -> impl futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send
{
    struct Broken(u8);
    impl futures_core::Stream for Broken {
        type Item = Result<bytes::Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            self.0 += 1;
            std::task::Poll::Ready(Some(if self.0 == 1 {
                Ok(bytes::Bytes::from_static(b"{\"orders\": ["))
            } else {
                Err(std::io::Error::other("upstream broke"))
            }))
        }
    }
    Broken(0)
}

/// One order with every kind of personal data.
pub fn sample_order(id: &str) -> Value {
    json!({
        "order_id": id,
        "customer_id": "C0000001",
        "status": "shipped",
        "created_at": "2025-03-01T10:00:00+08:00",
        "total": 199.0,
        "items": [{"sku": "P1", "name": "耳机", "qty": 1, "price": 199.0}],
        "customer": {"name": "张三", "phone": "13812345678", "email": "zhang.san@example.com", "id_number": "11010519491231002X"},
        "payment": {"method": "card", "card_number": "6222021234567890128", "amount": 199.0},
        "shipping": {"recipient": "张三", "phone": "13987654321", "address": "北京市朝阳区建国路88号", "carrier": "SF Express"},
        "internal": {"margin": 0.2}
    })
}

/// A page of two orders.
pub fn sample_page() -> Value {
    json!({"orders": [sample_order("O2025010100000001"), sample_order("O2025010100000002")], "next_cursor": "abc"})
}
