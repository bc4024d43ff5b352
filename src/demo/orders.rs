//! The demo's sample order service: what a company's existing order service looks like from
//! ordergate's side — plain HTTP, no authentication, every field of every order, happy to answer
//! anything. Seeded data: ~50 customers and a few hundred orders over two years with names,
//! phones, emails, resident ID numbers, addresses, payment and shipping details.
//!
//! `GET /api/orders?customer_id&start_date&end_date&status&page_size&cursor`,
//! `GET /api/orders/{order_id}`, and `POST /__demo/fail?on=true|false` to make it fail (500s),
//! for showing the circuit breaker.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{Duration, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::vocab::redact::{luhn_check_digit, resident_id_check_char};

/// The seeded orders and the failure switch.
pub struct OrderStore {
    /// Newest first.
    orders: Vec<Value>,
    failing: AtomicBool,
}

const SURNAMES: [(&str, &str); 20] = [
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("黄", "huang"),
    ("赵", "zhao"),
    ("吴", "wu"),
    ("周", "zhou"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("马", "ma"),
    ("朱", "zhu"),
    ("胡", "hu"),
    ("郭", "guo"),
    ("何", "he"),
    ("林", "lin"),
    ("罗", "luo"),
    ("高", "gao"),
];
const GIVEN: [(&str, &str); 16] = [
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("秀英", "xiuying"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("洋", "yang"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("娟", "juan"),
    ("涛", "tao"),
    ("明", "ming"),
];
const PLACES: [(&str, &str); 8] = [
    ("110105", "北京市朝阳区建国路"),
    ("310115", "上海市浦东新区世纪大道"),
    ("440305", "深圳市南山区科技园路"),
    ("330106", "杭州市西湖区文三路"),
    ("510107", "成都市武侯区天府大道"),
    ("420106", "武汉市武昌区中南路"),
    ("320106", "南京市鼓楼区中山北路"),
    ("610113", "西安市雁塔区科技路"),
];
const PRODUCTS: [(&str, &str, u32); 10] = [
    ("P1001", "无线降噪耳机", 89900),
    ("P1002", "不锈钢保温杯", 8900),
    ("P1003", "机械键盘", 45900),
    ("P1004", "运动跑鞋", 59900),
    ("P1005", "电动牙刷", 19900),
    ("P1006", "羊毛围巾", 25900),
    ("P1007", "咖啡豆 1kg", 16800),
    ("P1008", "儿童绘本套装", 12800),
    ("P1009", "空气炸锅", 39900),
    ("P1010", "移动电源", 14900),
];
const STATUSES: [&str; 6] = [
    "pending",
    "paid",
    "shipped",
    "delivered",
    "refunded",
    "cancelled",
];
const CARRIERS: [&str; 3] = ["SF Express", "JD Logistics", "ZTO Express"];

fn money(fen: u32) -> Value {
    json!(f64::from(fen) / 100.0)
}

impl OrderStore {
    /// Seeds the same data on every run.
    pub fn seeded() -> Self {
        let mut rng = StdRng::seed_from_u64(2026);
        let customers: Vec<Value> = (1..=50)
            .map(|n| {
                let (surname, s_py) = SURNAMES[rng.random_range(0..SURNAMES.len())];
                let (given, g_py) = GIVEN[rng.random_range(0..GIVEN.len())];
                let (region, street) = PLACES[rng.random_range(0..PLACES.len())];
                let birth = NaiveDate::from_ymd_opt(1960, 1, 1).unwrap_or_default()
                    + Duration::days(rng.random_range(0..15_000));
                let first17 = format!(
                    "{region}{}{:03}",
                    birth.format("%Y%m%d"),
                    rng.random_range(1..999)
                );
                let id_number = format!(
                    "{first17}{}",
                    resident_id_check_char(&first17).unwrap_or('0')
                );
                let phone = format!(
                    "1{}{:09}",
                    rng.random_range(3..=9),
                    rng.random_range(0..1_000_000_000u32)
                );
                json!({
                    "customer_id": format!("C{n:07}"),
                    "name": format!("{surname}{given}"),
                    "phone": phone,
                    "email": format!("{g_py}.{s_py}{n}@example.com"),
                    "id_number": id_number,
                    "address": format!("{street}{}号", rng.random_range(1..300)),
                })
            })
            .collect();
        let start = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or_default();
        let mut orders: Vec<Value> = (0..420)
            .map(|n| {
                let customer = &customers[rng.random_range(0..customers.len())];
                let day = start + Duration::days(rng.random_range(0..690));
                let created_at = format!("{}T{:02}:{:02}:{:02}+08:00", day, rng.random_range(8..23), rng.random_range(0..60), rng.random_range(0..60));
                let items: Vec<Value> = (0..rng.random_range(1..4))
                    .map(|_| {
                        let (sku, name, price) = PRODUCTS[rng.random_range(0..PRODUCTS.len())];
                        json!({"sku": sku, "name": name, "qty": rng.random_range(1..3), "price": money(price)})
                    })
                    .collect();
                let total: f64 = items.iter().map(|i| i["price"].as_f64().unwrap_or(0.0) * i["qty"].as_f64().unwrap_or(0.0)).sum();
                let status = STATUSES[[0, 1, 1, 2, 2, 3, 3, 3, 3, 4, 5][rng.random_range(0..11)]];
                let method = ["card", "alipay", "wechat_pay"][rng.random_range(0..3)];
                let mut payment = json!({"method": method, "amount": (total * 100.0).round() / 100.0, "currency": "CNY", "paid_at": created_at});
                if method == "card" {
                    payment["card_number"] = {
                        let payload = format!("6222{:011}", rng.random_range(0..100_000_000_000u64));
                        json!(format!("{payload}{}", luhn_check_digit(&payload)))
                    };
                    payment["bank"] = json!(["ICBC", "China Merchants Bank", "Bank of China"][rng.random_range(0..3)]);
                }
                json!({
                    "order_id": format!("O{}{:06}", day.format("%Y%m%d"), 100_000 + n),
                    "customer_id": customer["customer_id"],
                    "status": status,
                    "created_at": created_at,
                    "total": (total * 100.0).round() / 100.0,
                    "currency": "CNY",
                    "items": items,
                    "customer": {
                        "name": customer["name"],
                        "phone": customer["phone"],
                        "email": customer["email"],
                        "id_number": customer["id_number"],
                    },
                    "payment": payment,
                    "shipping": {
                        "recipient": customer["name"],
                        "phone": customer["phone"],
                        "address": customer["address"],
                        "carrier": CARRIERS[rng.random_range(0..CARRIERS.len())],
                        "tracking_no": format!("SF{:012}", rng.random_range(0..1_000_000_000_000u64)),
                    },
                    "internal": {"warehouse": "WH-EAST-2", "margin": 0.18, "risk_score": rng.random_range(0..100)},
                })
            })
            .collect();
        orders.sort_by(|a, b| b["created_at"].as_str().cmp(&a["created_at"].as_str()));
        Self {
            orders,
            failing: AtomicBool::new(false),
        }
    }

    /// Every order, newest first.
    pub fn orders(&self) -> &[Value] {
        &self.orders
    }

    /// Makes the service fail (or recover).
    pub fn set_failing(&self, on: bool) {
        self.failing.store(on, Ordering::Release);
    }
}

/// The service's routes.
pub fn router(store: Arc<OrderStore>) -> Router {
    Router::new()
        .route("/api/orders", get(list))
        .route("/api/orders/{order_id}", get(detail))
        .route("/__demo/fail", post(fail))
        .with_state(store)
}

fn failure() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(json!({"error": "connection pool exhausted", "trace": "at com.acme.erp.OrderRepository.find(OrderRepository.java:214)"})),
    )
        .into_response()
}

async fn list(
    State(store): State<Arc<OrderStore>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if store.failing.load(Ordering::Acquire) {
        return failure();
    }
    let date = |k: &str| q.get(k).cloned().unwrap_or_default();
    let (from, to) = (date("start_date"), date("end_date"));
    let matching: Vec<&Value> = store
        .orders
        .iter()
        .filter(|o| {
            q.get("customer_id")
                .is_none_or(|c| o["customer_id"] == c.as_str())
        })
        .filter(|o| q.get("status").is_none_or(|s| o["status"] == s.as_str()))
        .filter(|o| {
            let day = o["created_at"]
                .as_str()
                .unwrap_or("")
                .get(..10)
                .unwrap_or("");
            (from.is_empty() || day >= from.as_str()) && (to.is_empty() || day <= to.as_str())
        })
        .collect();
    let page_size: usize = q
        .get("page_size")
        .and_then(|p| p.parse().ok())
        .unwrap_or(20)
        .clamp(1, 500);
    let offset: usize = q
        .get("cursor")
        .and_then(|c| c.strip_prefix('o'))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let page: Vec<&Value> = matching
        .iter()
        .skip(offset)
        .take(page_size)
        .copied()
        .collect();
    let next = (offset + page_size < matching.len()).then(|| format!("o{}", offset + page_size));
    axum::Json(json!({"orders": page, "next_cursor": next})).into_response()
}

async fn detail(State(store): State<Arc<OrderStore>>, Path(order_id): Path<String>) -> Response {
    if store.failing.load(Ordering::Acquire) {
        return failure();
    }
    match store
        .orders
        .iter()
        .find(|o| o["order_id"] == order_id.as_str())
    {
        Some(order) => axum::Json(order.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "order not found"})),
        )
            .into_response(),
    }
}

async fn fail(
    State(store): State<Arc<OrderStore>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let on = q.get("on").is_none_or(|v| v != "false");
    store.set_failing(on);
    (StatusCode::OK, if on { "failing\n" } else { "healthy\n" }).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_data_is_realistic_and_stable() {
        let a = OrderStore::seeded();
        let b = OrderStore::seeded();
        assert_eq!(a.orders().len(), 420);
        assert_eq!(
            a.orders()[0],
            b.orders()[0],
            "the same seed gives the same data"
        );
        let id = a.orders()[0]["customer"]["id_number"].as_str().unwrap();
        assert_eq!(id.len(), 18);
        assert_eq!(id.chars().last(), resident_id_check_char(&id[..17]));
        let masked = crate::vocab::redact::redact(&a.orders()[0].to_string()).into_owned();
        assert!(
            !masked.contains(id),
            "the redactor recognises the generated ID numbers"
        );
        let customers: std::collections::HashSet<&str> = a
            .orders()
            .iter()
            .filter_map(|o| o["customer_id"].as_str())
            .collect();
        assert!(customers.len() >= 45);
    }
}
