//! `[events]`: where security events are sent (https, or http to a loopback address), the
//! secret that signs them, and how many may wait.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::files;
use crate::config::problems::KeyPath;
use crate::config::raw;
use crate::policy::compile::Ctx;
use crate::stage::events::EventsSettings;
use crate::vocab::secret::long_enough;

/// The shortest webhook secret accepted: an HMAC key no weaker than its 256-bit output allows.
/// The most events that may wait (each is small; this bounds the queue's memory).
const MAX_QUEUE: u32 = 1_000_000;

/// `[events]`; absent, events are only logged.
pub(super) fn compile(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: Option<&raw::Events>,
) -> Option<EventsSettings> {
    let raw = raw?;
    let url = webhook_url(&raw.webhook_url).map_err(|e| ctx.bad(&at.k("webhook_url"), e));
    let secret_at = if raw.webhook_secret_file.is_some() && raw.webhook_secret_env.is_none() {
        at.k("webhook_secret_file")
    } else {
        at.k("webhook_secret_env")
    };
    let secret = match files::secret(
        ctx.base,
        raw.webhook_secret_env.as_deref(),
        raw.webhook_secret_file.as_deref(),
    ) {
        Ok(Some(s)) => match long_enough(s.expose().as_bytes(), "the webhook secret") {
            Ok(()) => Some(s),
            Err(e) => {
                ctx.bad(&secret_at, e);
                None
            }
        },
        Ok(None) => {
            ctx.bad(
                at,
                "[events] needs `webhook_secret_env` or `webhook_secret_file`: receivers verify every event's signature",
            );
            None
        }
        Err(e) => {
            ctx.bad(&secret_at, e);
            None
        }
    };
    let queue_capacity = match raw.queue_capacity {
        Some(0) => {
            ctx.bad(&at.k("queue_capacity"), "must be at least 1");
            None
        }
        Some(n) if n > MAX_QUEUE => {
            ctx.bad(
                &at.k("queue_capacity"),
                format!("must be at most {MAX_QUEUE}"),
            );
            None
        }
        other => Some(other.unwrap_or(10_000) as usize),
    };
    let ca = raw.webhook_ca.as_deref().and_then(|path| {
        files::certificates(&files::resolve(ctx.base, path))
            .map_err(|e| ctx.bad(&at.k("webhook_ca"), e))
            .ok()
    });
    let timeout = ctx.duration(
        &at.k("timeout"),
        raw.timeout.as_deref(),
        Duration::from_secs(5),
    );
    let max_attempts = match raw.max_attempts {
        Some(n) if !(1..=20).contains(&n) => {
            ctx.bad(&at.k("max_attempts"), "must be between 1 and 20");
            5
        }
        other => other.unwrap_or(5),
    };
    if raw.webhook_ca.is_some() && ca.is_none() {
        return None;
    }
    Some(EventsSettings {
        webhook_url: url.ok()?,
        secret: secret?,
        queue_capacity: queue_capacity?,
        ca,
        timeout,
        max_attempts,
    })
}

/// An https URL, or an http one whose host is a loopback address written as an IP (a name could
/// resolve elsewhere); never credentials in it.
fn webhook_url(text: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = text.parse().map_err(|_| format!("`{text}` is not a URL"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| format!("`{text}` needs a host"))?;
    if authority.as_str().contains('@') {
        return Err("the webhook URL must not carry credentials".into());
    }
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") => {
            let host = authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']');
            match host.parse::<IpAddr>() {
                Ok(ip) if ip.is_loopback() => Ok(uri),
                _ => Err("an http webhook URL must point at a loopback address (127.0.0.1 or [::1]); use https".into()),
            }
        }
        _ => Err("the webhook URL must start with https:// (or http:// on loopback)".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::webhook_url;
    use crate::policy::fixtures::{check, compiled};

    #[test]
    fn only_https_or_loopback_http_receivers_are_accepted() {
        for good in [
            "https://siem.example.com/hooks/ordergate",
            "http://127.0.0.1:9000/hook",
            "http://[::1]:9000/hook",
        ] {
            assert!(webhook_url(good).is_ok(), "{good}");
        }
        for bad in [
            "http://siem.example.com/hook",
            "http://localhost:9000/hook",
            "http://10.0.0.1/hook",
            "https://user:pw@siem.example.com/",
            "ftp://127.0.0.1/",
            "siem.example.com",
            "",
        ] {
            assert!(webhook_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_events_values_are_reported_at_their_keys() {
        check(&[
            (
                "[events]\nwebhook_url = \"http://siem.example.com/\"\nwebhook_secret_env = \"ORDERGATE_TEST_UNSET_SECRET\"\nqueue_capacity = 0\ntimeout = \"soon\"\nmax_attempts = 0\n",
                &[
                    "2:15: an http webhook URL must point at a loopback address (127.0.0.1 or [::1]); use https",
                    "3:22: environment variable `ORDERGATE_TEST_UNSET_SECRET` is not set",
                    "4:18: must be at least 1",
                    "5:11: duration `soon` must start with a whole number",
                    "6:16: must be between 1 and 20",
                ],
            ),
            (
                "[events]\nwebhook_url = \"https://siem.example.com/\"\n",
                &[
                    "1:1: [events] needs `webhook_secret_env` or `webhook_secret_file`: receivers verify every event's signature",
                ],
            ),
        ]);
    }

    #[test]
    fn a_short_secret_is_refused_and_a_good_one_compiles() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("short"), "tooshort\n").unwrap();
        std::fs::write(dir.path().join("good"), format!("{}\n", "k".repeat(32))).unwrap();
        let short = crate::policy::fixtures::problems_in(
            dir.path(),
            "[events]\nwebhook_url = \"https://siem.example.com/\"\nwebhook_secret_file = \"short\"\n",
        );
        assert!(
            short.contains("3:23: the webhook secret must be at least 32 bytes"),
            "{short}"
        );
        let policy = compiled(
            dir.path(),
            "[events]\nwebhook_url = \"http://127.0.0.1:9/e\"\nwebhook_secret_file = \"good\"\n",
        );
        let events = policy.events.unwrap();
        assert_eq!(events.secret.expose(), "k".repeat(32));
        assert_eq!(events.queue_capacity, 10_000);
        assert_eq!(events.max_attempts, 5);
        assert!(
            compiled(Path::new("/nonexistent-ordergate"), "")
                .events
                .is_none()
        );
    }
}
