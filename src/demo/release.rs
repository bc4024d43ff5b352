//! The demo's gray release (CONTRACT §10): a second sample order service, "orders v2", that
//! `customer-orders` sends a sticky 5 % of callers plus agent-007 to, guarded; and answers kept
//! for when the order service is down. The tour makes v2 fail and shows the guard rolling the
//! route back, then stops the primary and shows a kept answer for a caller who asked before and
//! a 503 for one who did not — and brings everything back, so the printed commands work.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::orders::{self, OrderStore};
use super::{DemoClient, Setup, get, short};

/// The route the demo releases on.
pub const ROUTE: &str = "customer-orders";

/// The persona the canary always takes.
pub const CANARY_PERSONA: &str = "agent-007";

/// A sample order service on a fixed loopback port that can be stopped and started again.
pub struct SampleService {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its orders and failure switch.
    pub store: Arc<OrderStore>,
    running: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl SampleService {
    /// Starts one on `port` (0: any free port).
    pub async fn start(store: Arc<OrderStore>, port: u16) -> std::io::Result<Self> {
        let service = Self {
            port,
            store,
            running: Mutex::new(None),
        };
        let port = service.serve().await?;
        Ok(Self { port, ..service })
    }

    async fn serve(&self) -> std::io::Result<u16> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await?;
        let port = listener.local_addr()?.port();
        let app = orders::router(self.store.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        *self.running.lock() = Some((stop, task));
        Ok(port)
    }

    /// Stops it: the port refuses connections and open ones are closed (bounded wait).
    pub async fn stop(&self) {
        let running = self.running.lock().take();
        if let Some((stop, mut task)) = running {
            let _ = stop.send(());
            if tokio::time::timeout(Duration::from_secs(3), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    /// Starts it again on the same port.
    pub async fn restart(&self) -> std::io::Result<()> {
        self.serve().await.map(|_| ())
    }
}

/// The demo policy with the release keys: `customer-orders` gets a canary on `orders-v2`
/// (5 % and agent-007), a guard quick enough for a tour, and kept answers.
pub fn with_release(policy: String, v2_port: u16) -> String {
    let anchor = "forward_params = { customer_id = \"customer_id\" }\n";
    let release = format!(
        "{anchor}upstream = \"default\"\n\
         canary = {{ upstream = \"orders-v2\", percent = 5.0, principals = [\"{CANARY_PERSONA}\"] }}\n\
         [routes.canary_guard]\nwindow = \"1m\"\nmin_requests = 10\nmax_error_ratio = 2.0\nmax_p99_ratio = 1.5\n\
         [routes.stale_if_error]\nmax_age = \"15m\"\nmax_entries = 10000\nmax_bytes = \"64MiB\"\n"
    );
    let mut text = policy.replacen(anchor, &release, 1);
    text.push_str(&format!(
        "\n# The next release of the order service (the canary of `customer-orders`).\n\
         [upstreams.orders-v2]\nurl = \"http://127.0.0.1:{v2_port}\"\nconnect_timeout = \"1s\"\ntimeout = \"3s\"\n"
    ));
    text
}

fn problem_type(body: &serde_json::Value) -> &str {
    body["type"]
        .as_str()
        .and_then(|t| t.rsplit('/').next())
        .unwrap_or("")
}

/// The `ordergate_canary_state` line of `route`, from this process's metrics.
fn canary_state() -> String {
    crate::vocab::metrics::render()
        .lines()
        .find(|l| l.starts_with(&format!("ordergate_canary_state{{route=\"{ROUTE}\"}}")))
        .unwrap_or("ordergate_canary_state (not exported)")
        .to_owned()
}

/// The record of `request_id`, once written (bounded wait).
async fn record_of(setup: &Setup, request_id: &str) -> serde_json::Value {
    let audit = setup.state.join("audit/audit.jsonl");
    for _ in 0..100 {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        if let Some(record) = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|r| r["request_id"] == request_id)
        {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    serde_json::Value::Null
}

/// Tour steps 13 and 14.
pub(super) async fn tour(
    setup: &Setup,
    plain: &DemoClient,
    base: &str,
    admin_port: u16,
    tokens: (&str, &str),
    erp: &str,
) -> anyhow::Result<()> {
    let (alice, agent) = tokens;
    let v2 = &setup.v2;
    let primary = &setup.primary;
    let range = "start_date=2025-01-01&end_date=2025-12-31&page_size=2";
    let agent_url = format!("{base}/v1/customers/C0000002/orders?{range}");
    get(
        plain,
        &agent_url,
        &[("authorization", agent), ("x-request-id", "demo-canary-1")],
    )
    .await?;
    let record = record_of(setup, "demo-canary-1").await;
    println!(
        "\n14. gray release: `{ROUTE}` sends 5 % of callers (by a stable hash) and {CANARY_PERSONA} to orders v2 (http://127.0.0.1:{}):",
        v2.port
    );
    println!(
        "   {CANARY_PERSONA}'s request was answered by upstream_name = {}",
        record["upstream_name"]
    );
    v2.store.set_failing(true);
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let (st, b, h) = get(plain, &agent_url, &[("authorization", agent)]).await?;
        let from = if h.contains_key("cache-status") {
            "stale"
        } else if st == 200 {
            "fresh"
        } else {
            problem_type(&b)
        };
        statuses.push(format!("{st} {from}"));
    }
    v2.store.set_failing(false);
    println!(
        "   v2 fails (POST http://127.0.0.1:{}/__demo/fail): its circuit opens, kept answers cover, the guard trips:",
        v2.port
    );
    println!("   {}", statuses.join(", "));
    println!(
        "   the guard compared v2 with the primary and rolled the route back: {}",
        canary_state()
    );
    let reset = reset_canary(admin_port).await;
    println!(
        "   POST http://127.0.0.1:{admin_port}/admin/canary/{ROUTE}/reset → {reset} (audited); {}",
        canary_state()
    );

    // Stale-if-error: alice asked for exactly this in step 1; erp-sync never asked for it.
    let alice_url = format!("{base}/v1/customers/C0000001/orders?{range}");
    let erp_url = format!("{base}/v1/customers/C0000005/orders?{range}");
    primary.stop().await;
    println!(
        "\n15. the order service stops (http://127.0.0.1:{} refuses connections):",
        primary.port
    );
    let mut last = (0, serde_json::Value::Null, http::HeaderMap::new());
    for _ in 0..3 {
        last = get(plain, &alice_url, &[("authorization", alice)]).await?;
    }
    let (st, b, h) = last;
    let header = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    println!(
        "   alice asked before → {st} from the kept answer (Cache-Status: {}, Age: {}) {}",
        header("cache-status"),
        header("age"),
        short(&b)
    );
    let (st, b, _) = get(plain, &erp_url, &[("x-api-key", erp)]).await?;
    println!(
        "   erp-sync never asked for C0000005's orders → {st} {}",
        problem_type(&b)
    );
    primary.restart().await?;
    let healed = std::time::Instant::now();
    let mut recovered = false;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (st, _, _) = get(plain, &erp_url, &[("x-api-key", erp)]).await?;
        if st == 200 {
            recovered = true;
            break;
        }
    }
    if recovered {
        println!(
            "   the order service is back; the circuit closed again ({:.0} s)",
            healed.elapsed().as_secs_f64()
        );
    } else {
        println!("   (the circuit has not closed yet; it half-opens after `open_for`)");
    }
    Ok(())
}

/// `POST /admin/canary/<route>/reset` on the admin listener; the status, or 0.
async fn reset_canary(admin_port: u16) -> u16 {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let request = http::Request::post(format!(
        "http://127.0.0.1:{admin_port}/admin/canary/{ROUTE}/reset"
    ))
    .body(Empty::new());
    match request {
        Ok(request) => client
            .request(request)
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0),
        Err(_) => 0,
    }
}

/// The commands of the gray release, for pasting.
pub fn print_curls(admin_port: u16, v2_port: u16) {
    println!(
        r#"# gray release: the canary's state (1 on, 2 rolled back), make orders v2 fail, reset the guard (audited)
curl -s http://127.0.0.1:{admin_port}/metrics | grep ^ordergate_canary_state
curl -s -X POST "http://127.0.0.1:{v2_port}/__demo/fail?on=true"; for i in $(seq 12); do curl -s -o /dev/null -w "%{{http_code}} " --cacert $CA -H "Authorization: Bearer $AGENT" "$OG/v1/customers/C0000002/orders?start_date=2025-01-01&end_date=2025-12-31&page_size=1"; done; echo; curl -s -X POST "http://127.0.0.1:{v2_port}/__demo/fail?on=false"
curl -s -o /dev/null -w "%{{http_code}}\n" -X POST http://127.0.0.1:{admin_port}/admin/canary/{ROUTE}/reset"#
    );
}
