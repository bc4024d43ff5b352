//! The JSON body of one event: `{"kind","ts","principal","client_ip","route","detail",
//! "policy_sha256"}`, every client-shaped string redacted and bounded exactly as in audit records
//! (a principal id that looks like a phone number is masked here too), and `"suppressed"` last
//! when repeats of a per-request event were held back before it.

use std::borrow::Cow;

use serde::Serialize;

use crate::stage::audit::record::{bounded, format_ts};
use crate::vocab::event::Event;
use crate::vocab::redact::redact;

#[derive(Serialize)]
struct Body<'a> {
    kind: &'static str,
    ts: String,
    principal: Option<Cow<'a, str>>,
    client_ip: Option<String>,
    route: Option<Cow<'a, str>>,
    detail: Option<&'static str>,
    policy_sha256: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    suppressed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The body sent for `event`, raised under the policy whose hash is `policy_sha256`.
pub fn render(event: &Event, policy_sha256: &str) -> Vec<u8> {
    let body = Body {
        kind: event.kind.as_str(),
        ts: format_ts(event.ts),
        principal: event.principal.as_deref().map(|p| bounded(redact(p))),
        client_ip: event.client_ip.map(|ip| ip.to_string()),
        route: event.route.as_deref().map(|r| bounded(redact(r))),
        detail: event.detail,
        policy_sha256,
        suppressed: event.suppressed,
    };
    // Serialising a struct of strings into memory cannot fail; an empty object would still be
    // signed and sent, never a panic.
    serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::event::EventKind;

    #[test]
    fn the_body_has_the_contract_keys_in_order_and_is_redacted() {
        let mut event = Event::new(EventKind::Freeze);
        event.principal = Some("jwt:13812345678".into());
        event.client_ip = Some("127.0.0.1".parse().unwrap());
        event.route = Some("customer-orders".into());
        event.detail = Some("owner_mismatch");
        let text = String::from_utf8(render(&event, "ab")).unwrap();
        assert!(text.starts_with("{\"kind\":\"freeze\",\"ts\":\""), "{text}");
        assert!(
            text.ends_with(
                "\"principal\":\"jwt:138****5678\",\"client_ip\":\"127.0.0.1\",\"route\":\"customer-orders\",\"detail\":\"owner_mismatch\",\"policy_sha256\":\"ab\"}"
            ),
            "{text}"
        );
        assert!(!text.contains("13812345678"));
        let bare = String::from_utf8(render(&Event::new(EventKind::Reload), "ab")).unwrap();
        assert!(
            bare.contains("\"principal\":null,\"client_ip\":null,\"route\":null,\"detail\":null")
        );
        let mut repeated = Event::new(EventKind::SignatureReplayed);
        repeated.suppressed = 41;
        let text = String::from_utf8(render(&repeated, "ab")).unwrap();
        assert!(
            text.ends_with("\"policy_sha256\":\"ab\",\"suppressed\":41}"),
            "{text}"
        );
    }
}
