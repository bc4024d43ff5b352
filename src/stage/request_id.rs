//! Stage 2, request id: a client `X-Request-Id` of 1–64 characters `[A-Za-z0-9._-]` is kept,
//! anything else is replaced by one made here. Every response and the audit record carry it.
//!
//! The gateway's own ids take a form no kept client id can: `og-<8 hex>:<hex>`, with a `:`
//! outside the client alphabet. So an id that contains `:` was made by this gateway, and a
//! client cannot pass its requests off as gateway-made ones (or imitate another request's id
//! in the audit log) by sending `og-…`.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderName};

/// `x-request-id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

static PREFIX: LazyLock<u32> = LazyLock::new(rand::random);
static COUNTER: AtomicU64 = AtomicU64::new(1);

/// The request id to use for these request headers.
pub fn from_headers(headers: &HeaderMap) -> String {
    let mut values = headers.get_all(&X_REQUEST_ID).iter();
    match (values.next(), values.next()) {
        (Some(v), None) if is_valid(v.as_bytes()) => {
            String::from_utf8_lossy(v.as_bytes()).into_owned()
        }
        _ => generate(),
    }
}

fn is_valid(id: &[u8]) -> bool {
    (1..=64).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A new id: a per-process random prefix and a counter (unique, cheap, not guessable across
/// restarts), joined by the `:` no client id may contain.
pub fn generate() -> String {
    format!(
        "og-{:08x}:{:x}",
        *PREFIX,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(value: &str) -> String {
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, value.parse().unwrap());
        from_headers(&h)
    }

    #[test]
    fn keeps_valid_ids_and_replaces_others() {
        assert_eq!(id("abc-123_X.y"), "abc-123_X.y");
        assert!(id("").starts_with("og-"));
        assert!(id(&"a".repeat(65)).starts_with("og-"));
        assert!(id("a b").starts_with("og-"));
        assert!(id("<script>").starts_with("og-"));
        assert_ne!(generate(), generate());
        let mut twice = HeaderMap::new();
        twice.append(&X_REQUEST_ID, "a".parse().unwrap());
        twice.append(&X_REQUEST_ID, "b".parse().unwrap());
        assert!(from_headers(&twice).starts_with("og-"));
    }

    #[test]
    fn a_client_cannot_send_an_id_of_the_gateways_form() {
        let made = generate();
        assert!(made.contains(':') && made.starts_with("og-"), "{made}");
        assert!(
            !is_valid(made.as_bytes()),
            "a generated id is never a keepable one"
        );
        assert_ne!(id(&made), made, "sending a gateway-made id gets a new one");
        let imitation = id("og-0000abcd-1");
        assert_eq!(
            imitation, "og-0000abcd-1",
            "a look-alike is kept as the client's"
        );
        assert!(!imitation.contains(':'));
    }
}
