//! What checking the owner on the answer and counting its records (CONTRACT §7.3, §8.3) adds to
//! the view's pass, on a page of 20 orders: the contact view alone, the same view watching
//! `orders[].customer_id` and counting `orders`, and the observing pass a route without views
//! makes. `cargo bench --bench answer_check`.

use std::borrow::Cow;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ordergate::stage::views::watch::{Probe, Watch, inspect};
use ordergate::stage::views::{CompiledView, FieldPath};
use ordergate::vocab::mask::Masker;
use ordergate::vocab::scopes::ScopeSet;
use serde_json::json;

/// The binary's allocator, so these figures are what the gateway pays.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn path(text: &str) -> FieldPath {
    FieldPath::parse(text).unwrap()
}

fn benches(c: &mut Criterion) {
    let order = |n: usize| {
        json!({
            "order_id": format!("O20250101{n:06}"), "customer_id": "C0000001", "status": "shipped",
            "created_at": "2025-03-01T10:00:00+08:00", "total": 199.0, "currency": "CNY",
            "items": [{"sku": "P1001", "name": "无线降噪耳机", "qty": 1, "price": 199.0}],
            "customer": {"name": "张三", "phone": "13812345678", "email": "zhang.san@example.com", "id_number": "11010519491231002X"},
            "payment": {"method": "card", "card_number": "6222021234567890128", "amount": 377.0},
            "shipping": {"recipient": "张三", "phone": "13987654321", "address": "北京市朝阳区建国路88号"}
        })
    };
    let page = serde_json::to_vec(
        &json!({"orders": (0..20).map(order).collect::<Vec<_>>(), "next_cursor": "abc"}),
    )
    .unwrap();
    let view = CompiledView::new(
        Arc::from("orders:read:contact"),
        ScopeSet::default(),
        &[path("*")],
        vec![path("orders[].payment")],
        vec![
            (path("orders[].customer.phone"), Masker::Phone),
            (path("orders[].customer.email"), Masker::Email),
            (path("orders[].customer.id_number"), Masker::IdNumber),
        ],
    );
    let watch = Watch::new(&[path("orders[].customer_id")], Some(&path("orders")));
    let sought = vec![Some(vec![Cow::Borrowed("C0000001")])];

    c.bench_function("view_20_orders_contact", |b| {
        b.iter(|| black_box(view.apply_bytes(black_box(&page)).unwrap()))
    });
    c.bench_function("view_20_orders_contact_owner_and_count", |b| {
        b.iter(|| {
            let mut probe = Probe::new(&sought, true);
            let out = view
                .apply_watching(black_box(&page), false, &watch, &mut probe)
                .unwrap();
            assert!(probe.owners_hold());
            black_box((out, probe.records()))
        })
    });
    c.bench_function("no_view_20_orders_owner_and_count", |b| {
        b.iter(|| {
            let mut probe = Probe::new(&sought, true);
            inspect(black_box(&page), &watch, &mut probe).unwrap();
            black_box((probe.owners_hold(), probe.records()))
        })
    });
}

criterion_group! {
    name = answer_check;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)).sample_size(30);
    targets = benches
}
criterion_main!(answer_check);
