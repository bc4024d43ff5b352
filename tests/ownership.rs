//! Issue 11, item 5 (CONTRACT §7.3, §8.3 `count`): ownership checked on the answer before any
//! byte of it is sent, with and without a view, in lists and through bypass scopes; array claims
//! and attributes as owner sets (for `owner` too); the `records` count in the audit record.

mod support;

use serde_json::{Value, json};
use support::{Harness, Reply, edit, raw_request, sample_order};

/// A GET route `id` at `path` on the upstream's `upstream` path for `orders:read`, then its
/// `rest` (`{order_id}` in `path` is the usual order id).
fn route(id: &str, path: &str, upstream: &str, rest: &str) -> String {
    let param = if path.contains("{order_id}") {
        "[routes.params.order_id]\ntype = \"string\"\npattern = \"^O[0-9]{8,16}$\"\n"
    } else {
        ""
    };
    format!(
        "\n[[routes]]\nid = \"{id}\"\nmethod = \"GET\"\npath = \"{path}\"\n\
         upstream_path = \"{upstream}\"\nrequire_scopes = [\"orders:read\"]\n{param}{rest}"
    )
}

/// Routes addressed by an order id or listing orders, each checking the owner on the answer;
/// `orders:read:full` (the ERP key) bypasses the check.
fn routes() -> String {
    const ONE: &str = "/api/orders/{order_id}";
    const ALL: &str = "/api/orders";
    [
        route(
            "my-order",
            "/v1/my/orders/{order_id}",
            ONE,
            r#"[[routes.response.owners]]
field = "customer_id"
claim = "customer_id"
bypass_scopes = ["orders:read:full"]
"#,
        ),
        route(
            "my-order-viewed",
            "/v1/my/viewed/{order_id}",
            ONE,
            r#"[[routes.response.views]]
scope = "orders:read"
allow = ["order_id", "status"]
[[routes.response.owners]]
field = "customer_id"
claim = "customer_id"
bypass_scopes = ["orders:read:full"]
"#,
        ),
        route(
            "my-orders",
            "/v1/my/orders",
            ALL,
            r#"[routes.response]
count = "orders"
[[routes.response.owners]]
field = "orders[].customer_id"
claim = "customer_id"
bypass_scopes = ["orders:read:full"]
"#,
        ),
        route(
            "my-orders-viewed",
            "/v1/my/viewed-orders",
            ALL,
            r#"[routes.response]
count = "orders"
[[routes.response.views]]
scope = "orders:read"
allow = ["orders[].order_id", "next_cursor"]
[[routes.response.owners]]
field = "orders[].customer_id"
claim = "customer_id"
bypass_scopes = ["orders:read:full"]
"#,
        ),
        route(
            "my-order-masked",
            "/v1/my/masked/{order_id}",
            ONE,
            r#"[[routes.response.views]]
scope = "orders:read"
allow = ["*"]
mask = { "customer" = "hide" }
[[routes.response.owners]]
field = "customer.id"
claim = "customer_id"
"#,
        ),
        route(
            "counted",
            "/v1/counted/orders",
            ALL,
            r#"[routes.response]
count = "orders"
"#,
        ),
    ]
    .concat()
}

const ORDER: &str = "O2025010100000001";
/// Text only the refused answers carry: it must never reach the client.
const MARKER: &str = "SECRET-OF-C0000002";

async fn harness() -> Harness {
    Harness::with(|p| {
        let p = edit(
            p,
            &[(
                "roles = [\"logistics_partner\"]\n",
                "roles = [\"logistics_partner\"]\nattributes = { customer_id = [\"C0000002\", \"C0000003\"] }\n",
            )],
        );
        format!("{p}{}", routes())
    })
    .await
}

/// An order of another customer, carrying [`MARKER`].
fn others_order() -> Value {
    let mut order = sample_order(ORDER);
    order["customer_id"] = json!("C0000002");
    order["note"] = json!(MARKER);
    order
}

fn bearer(h: &Harness, roles: &[&str], customer: Value) -> String {
    format!(
        "Bearer {}",
        h.token("someone", roles, &[("customer_id", customer)])
    )
}

/// Status, request id and body bytes of one GET.
async fn get(h: &Harness, path: &str, auth: (&str, &str)) -> (u16, String, Vec<u8>) {
    let response = h.get(path, &[auth]).await;
    let status = response.status().as_u16();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (status, id, response.bytes().await.unwrap().to_vec())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn the_answer_must_be_the_callers_and_a_refused_one_never_leaves() {
    let h = harness().await;
    let alice = h.alice();
    let path = format!("/v1/my/orders/{ORDER}");
    let (status, id, body) = get(&h, &path, ("authorization", &alice)).await;
    assert_eq!(status, 200, "{}", text(&body));
    assert!(text(&body).contains("\"customer_id\":\"C0000001\""));
    let record = h.record_of(&id).await;
    assert_eq!(record["decision"], "allow");

    // Another customer's order: 403, and not one byte of it on the wire (raw HTTP/1.1).
    h.upstream.queue([Reply::Json(200, others_order())]);
    let (status, wire) = raw_request(
        &h,
        &format!("GET {path} HTTP/1.1"),
        &[("Authorization", &alice), ("X-Request-Id", "owner-other-1")],
    )
    .await;
    assert_eq!(status, 403, "{wire}");
    assert!(
        !wire.contains(MARKER) && !wire.contains("C0000002"),
        "{wire}"
    );
    let problem: Value = serde_json::from_str(&wire).unwrap();
    assert_eq!(problem["type"], "https://ordergate.dev/problems/forbidden");
    let record = h.record_of("owner-other-1").await;
    assert_eq!(record["decision"], "deny");
    assert_eq!(record["reason"], "forbidden");
    assert_eq!(record["detail"], "owner_mismatch_response");
    assert_eq!(record["upstream_status"], 200);
    assert_eq!(record["records"], Value::Null);

    // The same over HTTP/2: the same verdict, the same silence.
    h.upstream.queue([Reply::Json(200, others_order())]);
    let response = h.get(&path, &[("authorization", &alice)]).await;
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 403);
    let body = text(&response.bytes().await.unwrap());
    assert!(!body.contains(MARKER), "{body}");

    // A missing owner field, a null one, and an upstream 404 for an order: refused the same way.
    let mut missing = sample_order(ORDER);
    missing.as_object_mut().unwrap().remove("customer_id");
    let mut null = sample_order(ORDER);
    null["customer_id"] = Value::Null;
    for reply in [
        Reply::Json(200, missing),
        Reply::Json(200, null),
        Reply::Json(404, json!({"title": "no such order", "note": MARKER})),
    ] {
        h.upstream.queue([reply]);
        let (status, id, body) = get(&h, &path, ("authorization", &alice)).await;
        assert_eq!(status, 403, "{}", text(&body));
        assert!(!text(&body).contains(MARKER));
        assert_eq!(h.record_of(&id).await["detail"], "owner_mismatch_response");
    }

    // An answer that is not JSON cannot be checked: 502, and the body stays behind.
    h.upstream
        .queue([Reply::Raw(200, "text/plain", MARKER.to_owned())]);
    let (status, id, body) = get(&h, &path, ("authorization", &alice)).await;
    assert_eq!(status, 502);
    assert!(!text(&body).contains(MARKER));
    let record = h.record_of(&id).await;
    assert_eq!(record["reason"], "bad_gateway");
    assert_eq!(record["detail"], "owner_non_json");
    // JSON that does not parse, under a JSON content type: the same.
    h.upstream.queue([Reply::Raw(
        200,
        "application/json",
        format!("{{\"customer_id\":\"C0000001\",\"note\":\"{MARKER}\""),
    )]);
    let (status, _, body) = get(&h, &path, ("authorization", &alice)).await;
    assert_eq!(status, 502);
    assert!(!text(&body).contains(MARKER));
}

#[tokio::test]
async fn with_a_view_the_owner_is_checked_even_where_the_view_drops_it() {
    let h = harness().await;
    let alice = h.alice();
    let path = format!("/v1/my/viewed/{ORDER}");
    let (status, _, body) = get(&h, &path, ("authorization", &alice)).await;
    assert_eq!(status, 200);
    let shown: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(shown, json!({"order_id": ORDER, "status": "shipped"}));

    h.upstream.queue([Reply::Json(200, others_order())]);
    let (status, wire) = raw_request(
        &h,
        &format!("GET {path} HTTP/1.1"),
        &[("Authorization", &alice), ("X-Request-Id", "viewed-other")],
    )
    .await;
    assert_eq!(status, 403);
    assert!(!wire.contains(MARKER) && !wire.contains(ORDER), "{wire}");
    assert_eq!(
        h.record_of("viewed-other").await["detail"],
        "owner_mismatch_response"
    );
    h.upstream
        .queue([Reply::Raw(200, "text/html", format!("<p>{MARKER}</p>"))]);
    let (status, id, _) = get(&h, &path, ("authorization", &alice)).await;
    assert_eq!(status, 502);
    assert_eq!(h.record_of(&id).await["detail"], "owner_non_json");
}

/// The owner field inside a subtree the view masks: a duplicate key there is checked like any
/// other (a parsed value would keep only the last, the caller's own, and pass the other's).
#[tokio::test]
async fn a_duplicate_owner_key_inside_a_masked_subtree_is_still_refused() {
    let h = harness().await;
    let alice = h.alice();
    let path = format!("/v1/my/masked/{ORDER}");
    let own = format!(r#"{{"order_id":"{ORDER}","customer":{{"id":"C0000001","name":"x"}}}}"#);
    h.upstream.queue([Reply::Raw(200, "application/json", own)]);
    let (status, _, body) = get(&h, &path, ("authorization", &alice)).await;
    assert_eq!(status, 200, "{}", text(&body));
    let shown: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(shown, json!({"order_id": ORDER, "customer": null}));
    for ids in [
        r#""C0000002","id":"C0000001""#,
        r#""C0000001","ID":"C0000002""#,
    ] {
        let answer =
            format!(r#"{{"order_id":"{ORDER}","note":"{MARKER}","customer":{{"id":{ids}}}}}"#);
        h.upstream
            .queue([Reply::Raw(200, "application/json", answer)]);
        let (status, id, body) = get(&h, &path, ("authorization", &alice)).await;
        assert_eq!(status, 403, "{ids}: {}", text(&body));
        assert!(!text(&body).contains(MARKER));
        assert_eq!(h.record_of(&id).await["detail"], "owner_mismatch_response");
    }
}

/// A route whose answer is read asks the upstream for JSON whatever the caller accepts: the
/// caller cannot pick a format that would pass uncounted or unchecked.
#[tokio::test]
async fn routes_that_read_the_answer_ask_for_json_whatever_the_caller_accepts() {
    let h = harness().await;
    let alice = h.alice();
    let erp = h.keys.erp_key.clone();
    let sent = |path: String| {
        let (h, alice) = (&h, alice.clone());
        async move {
            let before = h.upstream.count();
            let r = h
                .get(&path, &[("authorization", &alice), ("accept", "text/csv")])
                .await;
            assert_eq!(r.status(), 200, "{path}");
            assert_eq!(h.upstream.count(), before + 1);
            let last = h.upstream.requests().pop().unwrap();
            last.headers["accept"].to_str().unwrap().to_owned()
        }
    };
    assert_eq!(
        sent("/v1/counted/orders".to_owned()).await,
        "application/json"
    );
    assert_eq!(
        sent(format!("/v1/my/orders/{ORDER}")).await,
        "application/json"
    );
    // A route that reads nothing passes the caller's choice on.
    let r = h
        .get(
            "/v1/raw/orders/O2024010100001",
            &[("x-api-key", &erp), ("accept", "text/csv")],
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    let last = h.upstream.requests().pop().unwrap();
    assert_eq!(last.headers["accept"], "text/csv");
}

#[tokio::test]
async fn every_element_of_a_list_must_be_the_callers_and_records_are_counted() {
    let h = harness().await;
    let alice = h.alice();
    for path in [
        "/v1/my/orders",
        "/v1/my/viewed-orders",
        "/v1/counted/orders",
    ] {
        let (status, id, body) = get(&h, path, ("authorization", &alice)).await;
        assert_eq!(status, 200, "{path}: {}", text(&body));
        let record = h.record_of(&id).await;
        assert_eq!(record["records"], 2, "{path}");
    }
    let three = json!({"orders": [sample_order("O1"), sample_order("O2"), sample_order("O3")]});
    h.upstream.queue([Reply::Json(200, three)]);
    let (_, id, body) = get(&h, "/v1/my/viewed-orders", ("authorization", &alice)).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"orders": [{"order_id": "O1"}, {"order_id": "O2"}, {"order_id": "O3"}]})
    );
    assert_eq!(h.record_of(&id).await["records"], 3);
    // An empty page returns nobody's orders.
    h.upstream.queue([Reply::Json(200, json!({"orders": []}))]);
    let (status, id, _) = get(&h, "/v1/my/orders", ("authorization", &alice)).await;
    assert_eq!(status, 200);
    assert_eq!(h.record_of(&id).await["records"], 0);
    // Not countable: the answer passes, `records` is null.
    h.upstream
        .queue([Reply::Json(200, json!({"orders": "none"}))]);
    let (status, id, _) = get(&h, "/v1/counted/orders", ("authorization", &alice)).await;
    assert_eq!(status, 200);
    assert_eq!(h.record_of(&id).await["records"], Value::Null);
    h.upstream
        .queue([Reply::Raw(200, "text/csv", "order_id\nO1\n".to_owned())]);
    let (status, id, body) = get(&h, "/v1/counted/orders", ("authorization", &alice)).await;
    assert_eq!((status, text(&body).as_str()), (200, "order_id\nO1\n"));
    assert_eq!(h.record_of(&id).await["records"], Value::Null);
    let broken = "{\"orders\": [1, 2".to_owned();
    h.upstream
        .queue([Reply::Raw(200, "application/json", broken.clone())]);
    let (status, id, body) = get(&h, "/v1/counted/orders", ("authorization", &alice)).await;
    assert_eq!((status, text(&body)), (200, broken));
    assert_eq!(h.record_of(&id).await["records"], Value::Null);
    // One element of another customer's: the whole page is refused, with and without a view.
    for path in ["/v1/my/orders", "/v1/my/viewed-orders"] {
        let page = json!({"orders": [sample_order("O1"), others_order()], "next_cursor": "c"});
        h.upstream.queue([Reply::Json(200, page)]);
        let (status, wire) = raw_request(
            &h,
            &format!("GET {path} HTTP/1.1"),
            &[("Authorization", &alice)],
        )
        .await;
        assert_eq!(status, 403, "{path}");
        assert!(!wire.contains(MARKER) && !wire.contains("\"O1\""), "{wire}");
        // One element without the field: refused too.
        let mut bare = sample_order("O9");
        bare.as_object_mut().unwrap().remove("customer_id");
        h.upstream.queue([Reply::Json(
            200,
            json!({"orders": [sample_order("O1"), bare]}),
        )]);
        let (status, _, _) = get(&h, path, ("authorization", &alice)).await;
        assert_eq!(status, 403, "{path}");
    }
    // Routes without `count` keep `records` null.
    let (status, id, _) = get(
        &h,
        &format!("/v1/my/orders/{ORDER}"),
        ("authorization", &alice),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(h.record_of(&id).await["records"], Value::Null);
}

#[tokio::test]
async fn bypass_scopes_sets_and_missing_claims() {
    let h = harness().await;
    let path = format!("/v1/my/orders/{ORDER}");
    // The ERP key holds the bypass scope: any customer's order.
    h.upstream.queue([Reply::Json(200, others_order())]);
    let (status, _, body) = get(&h, &path, ("x-api-key", &h.keys.erp_key)).await;
    assert_eq!(status, 200);
    assert!(text(&body).contains(MARKER));

    // A sales rep's token: its customers are a set.
    let rep = bearer(&h, &["customer"], json!(["C0000009", "C0000002"]));
    h.upstream.queue([Reply::Json(200, others_order())]);
    assert_eq!(get(&h, &path, ("authorization", &rep)).await.0, 200);
    let (status, _, _) = get(&h, &path, ("authorization", &rep)).await;
    assert_eq!(status, 403, "C0000001 is not among the rep's customers");
    // The partner key's attribute is a set too.
    let partner = ("x-api-key", h.keys.logistics_key.as_str());
    h.upstream.queue([Reply::Json(200, others_order())]);
    assert_eq!(get(&h, &path, partner).await.0, 200);
    assert_eq!(get(&h, &path, partner).await.0, 403);
    // Without the claim nothing matches, even an answer without the field.
    let support = format!("Bearer {}", h.token("agent", &["customer_service"], &[]));
    assert_eq!(get(&h, &path, ("authorization", &support)).await.0, 403);
    let mut bare = sample_order(ORDER);
    bare.as_object_mut().unwrap().remove("customer_id");
    h.upstream.queue([Reply::Json(200, bare)]);
    assert_eq!(get(&h, &path, ("authorization", &support)).await.0, 403);
    // An empty set and a non-scalar claim hold nothing either.
    for claim in [json!([]), json!({"id": "C0000001"})] {
        let odd = bearer(&h, &["customer"], claim);
        assert_eq!(get(&h, &path, ("authorization", &odd)).await.0, 403);
    }

    // `owner` on the request (§2.6) reads sets the same way.
    let orders =
        |c: &str| format!("/v1/customers/{c}/orders?start_date=2025-01-01&end_date=2025-01-31");
    let rep = bearer(&h, &["customer"], json!(["C0000009", "C0000002"]));
    assert_eq!(
        get(&h, &orders("C0000002"), ("authorization", &rep))
            .await
            .0,
        200
    );
    assert_eq!(
        get(&h, &orders("C0000009"), ("authorization", &rep))
            .await
            .0,
        200
    );
    let (status, id, _) = get(&h, &orders("C0000001"), ("authorization", &rep)).await;
    assert_eq!(status, 403);
    assert_eq!(h.record_of(&id).await["detail"], "owner_mismatch");
    let none = bearer(&h, &["customer"], json!([]));
    assert_eq!(
        get(&h, &orders("C0000002"), ("authorization", &none))
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn owner_refusals_on_the_answer_count_as_denials() {
    let h = Harness::with(|p| {
        let p = edit(p, &[("max_denials = 1000", "max_denials = 2")]);
        format!("{p}{}", routes())
    })
    .await;
    let alice = h.alice();
    let path = format!("/v1/my/orders/{ORDER}");
    for _ in 0..2 {
        h.upstream.queue([Reply::Json(200, others_order())]);
        assert_eq!(get(&h, &path, ("authorization", &alice)).await.0, 403);
    }
    let before = h.upstream.count();
    let (status, id, _) = get(&h, &path, ("authorization", &alice)).await;
    assert_eq!(status, 403);
    assert_eq!(h.record_of(&id).await["reason"], "frozen");
    assert_eq!(
        h.upstream.count(),
        before,
        "a frozen caller reaches nothing"
    );
}

#[tokio::test]
async fn a_conditional_request_cannot_tell_another_customers_order_exists() {
    let h = harness().await;
    let alice = h.alice();
    let path = format!("/v1/my/orders/{ORDER}");
    h.upstream
        .set_default(Reply::Headers(304, vec![("etag", "\"v1\"")], String::new()));
    let response = h
        .get(&path, &[("authorization", &alice), ("if-none-match", "*")])
        .await;
    assert_eq!(
        response.status(),
        403,
        "a bodiless answer cannot prove the order is the caller's"
    );
    let sent = h.upstream.requests();
    let last = sent.last().expect("the upstream was asked");
    assert!(
        last.headers.get("if-none-match").is_none(),
        "no conditional header goes upstream on an owner-checked route"
    );
    h.upstream
        .set_default(Reply::Headers(204, vec![], String::new()));
    assert_eq!(
        h.get(&path, &[("authorization", &alice)]).await.status(),
        403
    );
}

#[tokio::test]
async fn ids_beyond_64_bits_are_never_matched_after_rounding() {
    let h = harness().await;
    // Both round to the same float; they are two customers.
    let mine = bearer(&h, &["customer"], json!(12345678901234567890123.0_f64));
    let path = format!("/v1/my/orders/{ORDER}");
    h.upstream.queue([Reply::Raw(
        200,
        "application/json",
        format!(
            r#"{{"order_id":"{ORDER}","customer_id":12345678901234567890124,"note":"{MARKER}"}}"#
        ),
    )]);
    let (status, id, body) = get(&h, &path, ("authorization", &mine)).await;
    assert_eq!(status, 403, "{}", text(&body));
    assert!(!text(&body).contains(MARKER));
    assert_eq!(h.record_of(&id).await["detail"], "owner_mismatch_response");
}
