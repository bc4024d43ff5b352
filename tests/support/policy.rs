//! The test policy and the text edits tests make to it.

use std::net::SocketAddr;

use super::pki::{ISSUER, Keys, hash};

/// The test policy: the reference policy's routes and roles, small limits, test files.
pub fn base_policy(keys: &Keys, upstream: SocketAddr) -> String {
    POLICY
        .replace("{upstream}", &upstream.to_string())
        .replace("{issuer}", ISSUER)
        .replace("{erp_hash}", &hash(&keys.erp_key))
        .replace("{logistics_hash}", &hash(&keys.logistics_key))
        .replace("{expired_hash}", &hash(&keys.expired_key))
        .replace("{future_hash}", &hash(&keys.future_key))
}

const POLICY: &str = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
max_connections = 200
# Every test client is 127.0.0.1.
max_connections_per_ip = 200
max_in_flight = 64
header_read_timeout = "2s"
request_timeout = "5s"
max_header_bytes = "8KiB"
max_request_body = "1KiB"
shutdown_grace = "3s"

[server.tls]
cert = "server.crt"
key = "server.key"
min_version = "1.2"
client_auth = "optional"
client_ca = "partners-ca.pem"

[upstream]
url = "http://{upstream}"
connect_timeout = "500ms"
timeout = "1s"
retries = 1
forward_identity = true
expose_errors = false

[upstream.circuit_breaker]
consecutive_failures = 5
failure_rate = 0.5
window = "10s"
min_requests = 20
open_for = "1s"
half_open_probes = 2
failure_statuses = [500, 502, 503, 504]

[auth.jwt]
issuer = "{issuer}"
audiences = ["ordergate"]
algorithms = ["ES256"]
jwks_file = "jwks.json"
leeway = "30s"
scope_claim = "scope"
roles_claim = "roles"
tenant_claim = "tenant"

[auth.api_keys]
header = "X-Api-Key"

[[auth.api_keys.keys]]
id = "erp-sync"
hash = "{erp_hash}"
roles = ["erp"]
tenant = "acme"
not_before = "2026-01-01T00:00:00Z"

[[auth.api_keys.keys]]
id = "sf-logistics"
hash = "{logistics_hash}"
roles = ["logistics_partner"]
tenant = "acme"

[[auth.api_keys.keys]]
id = "old-key"
hash = "{expired_hash}"
roles = ["erp"]
not_after = "2020-01-01T00:00:00Z"

[[auth.api_keys.keys]]
id = "next-key"
hash = "{future_hash}"
roles = ["erp"]
not_before = "2099-01-01T00:00:00Z"

[[auth.mtls.clients]]
subject = "CN=jd-marketplace,O=JD Partner"
roles = ["marketplace_partner"]
tenant = "acme"

[roles.customer]
scopes = ["orders:read"]
[roles.customer_service]
scopes = ["orders:read", "orders:read:any_customer", "orders:read:contact"]
[roles.erp]
scopes = ["orders:read", "orders:read:any_customer", "orders:read:full", "orders:write"]
[roles.logistics_partner]
scopes = ["orders:read", "orders:read:any_customer", "orders:read:shipping"]
[roles.marketplace_partner]
scopes = ["orders:read", "orders:read:any_customer"]

[[routes]]
id = "customer-orders"
method = "GET"
path = "/v1/customers/{customer_id}/orders"
upstream_path = "/api/orders"
require_scopes = ["orders:read"]
owner = { param = "customer_id", claim = "customer_id", bypass_scopes = ["orders:read:any_customer"] }
rate_limit = { rate = "120/min", burst = 20 }
forward_params = { customer_id = "customer_id" }
[routes.params.customer_id]
type = "string"
pattern = "^C[0-9]{6,12}$"
[routes.query.start_date]
type = "date"
required = true
[routes.query.end_date]
type = "date"
required = true
[routes.query.status]
type = "enum"
values = ["pending", "paid", "shipped", "delivered", "refunded", "cancelled"]
[routes.query.page_size]
type = "integer"
min = 1
max = 100
default = 20
[routes.query.cursor]
type = "string"
pattern = "^[A-Za-z0-9_-]{1,64}$"
[routes.query.phone]
type = "string"
pattern = "^1[0-9]{10}$"
[[routes.constraints]]
kind = "date_range"
from = "start_date"
to = "end_date"
max_days = 366
[[routes.response.views]]
scope = "orders:read:full"
allow = ["*"]
[[routes.response.views]]
scope = "orders:read:contact"
allow = ["*"]
deny = ["orders[].payment"]
mask = { "orders[].customer.phone" = "phone", "orders[].customer.email" = "email", "orders[].customer.id_number" = "id_number" }
[[routes.response.views]]
scope = "orders:read:shipping"
allow = ["orders[].order_id", "orders[].status", "orders[].created_at", "orders[].shipping", "next_cursor"]
mask = { "orders[].shipping.phone" = "phone" }
[[routes.response.views]]
scope = "orders:read"
allow = ["orders[].order_id", "orders[].status", "orders[].created_at", "orders[].total", "orders[].items", "next_cursor"]

[[routes]]
id = "order-detail"
method = "GET"
path = "/v1/orders/{order_id}"
upstream_path = "/api/orders/{order_id}"
require_scopes = ["orders:read", "orders:read:any_customer"]
rate_limit = { rate = "300/min", burst = 50 }
[routes.params.order_id]
type = "string"
pattern = "^O[0-9]{8,16}$"
[[routes.response.views]]
scope = "orders:read:full"
allow = ["*"]
[[routes.response.views]]
scope = "orders:read:shipping"
allow = ["order_id", "status", "shipping"]
mask = { "shipping.phone" = "phone" }
[[routes.response.views]]
scope = "orders:read"
allow = ["order_id", "status", "created_at", "total", "items"]

[[routes]]
id = "order-notes"
method = "POST"
path = "/v1/orders/{order_id}/notes"
upstream_path = "/api/orders/{order_id}/notes"
require_scopes = ["orders:write"]
[routes.params.order_id]
type = "string"
pattern = "^O[0-9]{8,16}$"

[[routes]]
id = "order-raw"
method = "GET"
path = "/v1/raw/orders/{order_id}"
upstream_path = "/api/orders/{order_id}"
require_scopes = ["orders:read:full"]
[routes.params.order_id]
type = "string"
pattern = "^O[0-9]{8,16}$"

[rate_limits]
backend = "local"
on_backend_error = "local"
per_principal = { rate = "1000/min", burst = 100 }
per_ip_unauthenticated = { rate = "30/min", burst = 10 }

[abuse]
window = "1m"
max_denials = 1000
freeze_for = "15m"

[audit]
path = "audit/audit.jsonl"
rotate_bytes = "100MiB"
keep_files = 5
fsync = "batch"
on_error = "reject"
sensitive_params = ["phone", "email", "id_number"]
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
