//! The test policy and the text edits tests make to it.

use std::net::SocketAddr;

use ordergate::demo::policy_template::{ApiKeyEntry, Backend, PolicyTemplate, Rate};

use super::pki::{ISSUER, Keys, hash};

/// The test policy: the reference policy's routes and roles, small limits, test files.
pub fn base_policy(keys: &Keys, upstream: SocketAddr) -> String {
    let (erp, logistics, expired, future) = (
        hash(&keys.erp_key),
        hash(&keys.logistics_key),
        hash(&keys.expired_key),
        hash(&keys.future_key),
    );
    let upstream = upstream.to_string();
    PolicyTemplate {
        header: "\n",
        listen: "127.0.0.1:0",
        admin_listen: "127.0.0.1:0",
        max_connections: 200,
        // Every test client is 127.0.0.1.
        max_connections_per_ip: Some(200),
        max_in_flight: 64,
        header_read_timeout: "2s",
        request_timeout: "5s",
        max_header_bytes: "8KiB",
        max_request_body: "1KiB",
        shutdown_grace: "3s",
        cert: "server.crt",
        key: "server.key",
        client_ca: Some("partners-ca.pem"),
        upstream: &upstream,
        connect_timeout: "500ms",
        upstream_timeout: "1s",
        pool_idle_per_host: None,
        open_for: "1s",
        issuer: ISSUER,
        jwks_file: "jwks.json",
        api_keys: &[
            ApiKeyEntry {
                tenant: Some("acme"),
                not_before: Some("2026-01-01T00:00:00Z"),
                ..ApiKeyEntry::new("erp-sync", &erp, &["erp"])
            },
            ApiKeyEntry {
                tenant: Some("acme"),
                ..ApiKeyEntry::new("sf-logistics", &logistics, &["logistics_partner"])
            },
            ApiKeyEntry {
                not_after: Some("2020-01-01T00:00:00Z"),
                ..ApiKeyEntry::new("old-key", &expired, &["erp"])
            },
            ApiKeyEntry {
                not_before: Some("2099-01-01T00:00:00Z"),
                ..ApiKeyEntry::new("next-key", &future, &["erp"])
            },
        ],
        summaries: false,
        customer_orders_rate: Rate::new("120/min", 20),
        phone_query: true,
        contact_deny: &["orders[].payment"],
        contact_mask: &[
            ("orders[].customer.phone", "phone"),
            ("orders[].customer.email", "email"),
            ("orders[].customer.id_number", "id_number"),
        ],
        order_detail_rate: Rate::new("300/min", 50),
        order_detail_views: true,
        extra_routes: EXTRA_ROUTES,
        backend: Backend::Local,
        on_backend_error: Some("local"),
        per_principal_rate: Rate::new("1000/min", 100),
        max_denials: 1000,
        freeze_for: "15m",
        rotate_bytes: "100MiB",
    }
    .render()
}

/// The routes only the tests use: a write route, and one that shows the order unfiltered.
const EXTRA_ROUTES: &str = r#"[[routes]]
id = "order-notes"
method = "POST"
path = "/v1/orders/{order_id}/notes"
upstream_path = "/api/orders/{order_id}/notes"
require_scopes = ["orders:write"]
[routes.params.order_id]
type = "string"
pattern = "^O[0-9]{8,16}$"
[routes.body]
content_types = ["text/plain"]

[[routes]]
id = "order-raw"
method = "GET"
path = "/v1/raw/orders/{order_id}"
upstream_path = "/api/orders/{order_id}"
require_scopes = ["orders:read:full"]
[routes.params.order_id]
type = "string"
pattern = "^O[0-9]{8,16}$"

"#;

/// Text edits applied to the base policy; each must match, so a typo fails the test.
pub fn edit(policy: &str, edits: &[(&str, &str)]) -> String {
    let mut text = policy.to_owned();
    for (from, to) in edits {
        assert!(text.contains(from), "the test policy has no `{from}`");
        text = text.replacen(from, to, 1);
    }
    text
}
