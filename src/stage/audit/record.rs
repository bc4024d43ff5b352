//! One audit record: the fields the request path fills in ([`Entry`]), and their serialisation
//! as one compact JSON line with the keys in CONTRACT.md §4 order and the hash chain:
//! `hash` = hex SHA-256 of `prev_hash` + "\n" + the line without its trailing `,"hash":"…"`.
//!
//! Redaction happens here, once, for every string a client or upstream could have shaped; then
//! each such string is cut to [`FIELD_MAX_BYTES`] (on a character boundary, ending in
//! [`CUT_MARK`]), so a record's length is bounded whatever the client sends and one request can
//! never make a line the writer cannot resume from. Redacting before cutting matters: a phone
//! number cut in half would no longer look like one and would escape its mask.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::stage::authn::Principal;
use crate::stage::validate::Value;
pub use crate::vocab::redact::{CUT_MARK, FIELD_MAX_BYTES, bounded};
use crate::vocab::redact::{mask_param, recorded_method, recorded_path, redact, redact_number};

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Redacts, then bounds.
fn clean(text: &str) -> Cow<'_, str> {
    bounded(redact(text))
}

/// What the request path knows about one request when it ends.
#[derive(Debug, Clone)]
pub struct Entry {
    /// When the request arrived.
    pub ts: SystemTime,
    /// The request id, as sent to the client and upstream.
    pub request_id: String,
    /// The client address (the peer, or from `X-Forwarded-For` behind a trusted proxy).
    pub client_ip: IpAddr,
    /// `TLSv1.2` / `TLSv1.3`, or `None` on plain HTTP.
    pub tls_version: Option<&'static str>,
    /// The verified client certificate's subject.
    pub client_subject: Option<Arc<str>>,
    /// The authenticated caller, if any.
    pub principal: Option<Arc<Principal>>,
    /// The request method.
    pub method: http::Method,
    /// The matched route's id.
    pub route: Option<Arc<str>>,
    /// The raw path, without the query.
    pub path: String,
    /// The validated query parameters (sensitive ones are masked when written).
    pub query: Vec<(Arc<str>, Value)>,
    /// The outcome's reason code.
    pub reason: &'static str,
    /// A finer cause from the closed list of audit details.
    pub detail: Option<&'static str>,
    /// The status sent to the client.
    pub status: u16,
    /// The upstream's status, if it answered.
    pub upstream_status: Option<u16>,
    /// Total time in the gateway.
    pub duration: Duration,
    /// Time spent waiting on the upstream.
    pub upstream: Option<Duration>,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// Records returned, from the route's `count` path (CONTRACT §8.3), when known.
    pub records: Option<u64>,
    /// The named upstream that answered (CONTRACT §10).
    pub upstream_name: Option<Arc<str>>,
    /// Where the answer came from, once one was sent.
    pub served: Option<Served>,
    /// A §7.1 signature was verified.
    pub signed: bool,
}

/// Where an answer came from (the record's `served`, CONTRACT §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Served {
    /// Fresh from the upstream.
    Upstream,
    /// A `stale_if_error` answer (CONTRACT §10).
    Stale,
}

#[derive(Serialize)]
struct Tls<'a> {
    version: Option<&'static str>,
    client_subject: Option<&'a str>,
}

#[derive(Serialize)]
struct PrincipalOut<'a> {
    id: Option<&'a str>,
    kind: &'static str,
    tenant: Option<&'a str>,
}

/// The record without `hash`, in §4 key order.
#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    seq: u64,
    request_id: &'a str,
    client_ip: String,
    tls: Tls<'a>,
    principal: PrincipalOut<'a>,
    method: &'a str,
    route: Option<&'a str>,
    path: &'a str,
    query: QueryOut<'a>,
    decision: &'static str,
    reason: &'static str,
    detail: Option<&'static str>,
    status: u16,
    upstream_status: Option<u16>,
    duration_ms: f64,
    upstream_ms: Option<f64>,
    bytes_out: u64,
    records: Option<u64>,
    upstream_name: Option<&'a str>,
    served: Option<Served>,
    signed: bool,
    prev_hash: Option<&'a str>,
}

/// The validated query as recorded: in the order validated (names are unique: a repeated
/// parameter is refused), written straight into the line.
struct QueryOut<'a> {
    query: &'a [(Arc<str>, Value)],
    sensitive: &'a [String],
}

impl Serialize for QueryOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(self.query.len()))?;
        for (name, value) in self.query {
            let sensitive = self.sensitive.iter().any(|p| **p == **name);
            map.serialize_entry(&**name, &recorded_value(name, value, sensitive))?;
        }
        map.end()
    }
}

/// One query value as recorded: a sensitive parameter masked, numbers that could be personal
/// data masked, text cleaned of control characters and masked the same way.
fn recorded_value(name: &str, value: &Value, sensitive: bool) -> serde_json::Value {
    match value {
        // `YYYY-MM-DD`, written by the gateway itself: nothing in it to clean or mask.
        Value::Date(_) if !sensitive => value.to_json(),
        _ => match value.to_json() {
            serde_json::Value::String(s) if sensitive => {
                serde_json::Value::String(bounded(Cow::Owned(mask_param(name, &s))).into_owned())
            }
            serde_json::Value::String(s) => serde_json::Value::String(clean(&s).into_owned()),
            other if sensitive => serde_json::Value::String(
                bounded(Cow::Owned(mask_param(name, &other.to_string()))).into_owned(),
            ),
            serde_json::Value::Number(n) => {
                redact_number(&n).map_or(serde_json::Value::Number(n), serde_json::Value::String)
            }
            other => other,
        },
    }
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1_000.0
}

/// RFC 3339 UTC with milliseconds (`2026-12-02T03:04:05.678Z`). Written digit by digit: once
/// per record, where parsing a format string cost more than the rest of the timestamp.
pub fn format_ts(ts: SystemTime) -> String {
    use crate::vocab::date_text::{push_date, push_digits};
    use chrono::{Datelike, Timelike};
    let at = chrono::DateTime::<chrono::Utc>::from(ts);
    // Four digits cover every clock this runs on; chrono's own format writes the others.
    if !(0..=9_999).contains(&at.year()) {
        return at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    }
    let millis = at.timestamp_subsec_millis().min(999);
    let mut out = String::with_capacity(24);
    push_date(&mut out, at.date_naive());
    for (value, width, before) in [
        (at.hour(), 2, 'T'),
        (at.minute(), 2, ':'),
        (at.second(), 2, ':'),
        (millis, 3, '.'),
    ] {
        out.push(before);
        push_digits(&mut out, value, width);
    }
    out.push('Z');
    out
}

/// Bytes reserved for a record line: a typical one (about 600) with its hash and room to spare.
const LINE_CAPACITY: usize = 1024;

impl Entry {
    /// Serialises the record as it is written (without the trailing newline), chained to
    /// `prev_hash` when given. Returns the line and its hash.
    pub fn to_line(
        &self,
        seq: u64,
        prev_hash: Option<&str>,
        sensitive: &[String],
    ) -> (String, Option<String>) {
        let request_id = clean(&self.request_id);
        let subject = self.client_subject.as_deref().map(clean);
        let principal_id = self.principal.as_ref().map(|p| clean(&p.id));
        let tenant = self
            .principal
            .as_ref()
            .and_then(|p| p.tenant.as_deref())
            .map(clean);
        let path = recorded_path(&self.path);
        let query = QueryOut {
            query: &self.query,
            sensitive,
        };
        let line = Line {
            ts: format_ts(self.ts),
            seq,
            request_id: &request_id,
            client_ip: self.client_ip.to_string(),
            tls: Tls {
                version: self.tls_version,
                client_subject: subject.as_deref(),
            },
            principal: PrincipalOut {
                id: principal_id.as_deref(),
                kind: self.principal.as_ref().map_or("none", |p| p.kind.as_str()),
                tenant: tenant.as_deref(),
            },
            method: recorded_method(&self.method),
            route: self.route.as_deref(),
            path: &path,
            query,
            decision: if self.reason == "ok" { "allow" } else { "deny" },
            reason: self.reason,
            detail: self.detail,
            status: self.status,
            upstream_status: self.upstream_status,
            duration_ms: millis(self.duration),
            upstream_ms: self.upstream.map(millis),
            bytes_out: self.bytes_out,
            records: self.records,
            upstream_name: self.upstream_name.as_deref(),
            served: self.served,
            signed: self.signed,
            prev_hash,
        };
        // Serialising strings, numbers and maps of them cannot fail. Sized for a typical record
        // with its hash, so the line is not grown (and copied) as it is written.
        let mut text = Vec::with_capacity(LINE_CAPACITY);
        if serde_json::to_writer(&mut text, &line).is_err() {
            text.clear();
        }
        let mut text = String::from_utf8(text).unwrap_or_default();
        let hash = prev_hash.map(|prev| chain_hash(prev, &text));
        text.pop();
        match &hash {
            Some(h) => {
                text.push_str(",\"hash\":\"");
                text.push_str(h);
                text.push_str("\"}");
            }
            None => text.push_str(",\"hash\":null}"),
        }
        (text, hash)
    }
}

/// `hash` = hex SHA-256 of `prev_hash` + "\n" + `body` (the line without its `hash` member).
pub fn chain_hash(prev_hash: &str, body: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(body.as_bytes());
    hex::encode(hasher.finalize())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The shortcut for dates writes what cleaning the date's text would have written.
    #[test]
    fn dates_are_recorded_as_their_cleaned_text() {
        let mut day = chrono::NaiveDate::from_ymd_opt(1999, 12, 25).unwrap();
        for _ in 0..800 {
            let text = day.format("%Y-%m-%d").to_string();
            let cleaned = serde_json::Value::String(clean(&text).into_owned());
            assert_eq!(
                recorded_value("start_date", &Value::Date(day), false),
                cleaned
            );
            day = day.succ_opt().unwrap();
        }
        // A sensitive date is still masked.
        let masked = recorded_value("start_date", &Value::Date(day), true);
        assert_ne!(masked, Value::Date(day).to_json());
    }

    pub(crate) fn entry() -> Entry {
        Entry {
            ts: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            request_id: "req-1".into(),
            client_ip: "127.0.0.1".parse().unwrap(),
            tls_version: Some("TLSv1.3"),
            client_subject: None,
            principal: None,
            method: http::Method::GET,
            route: Some(Arc::from("customer-orders")),
            path: "/v1/customers/13812345678/orders".into(),
            query: vec![
                (Arc::from("phone"), Value::String("13900001111".into())),
                (Arc::from("page_size"), Value::Integer(20)),
            ],
            reason: "unauthenticated",
            detail: Some("token_expired"),
            status: 401,
            upstream_status: None,
            duration: Duration::from_micros(1234),
            upstream: None,
            bytes_out: 210,
            records: None,
            upstream_name: None,
            served: None,
            signed: false,
        }
    }

    #[test]
    fn timestamps_match_the_rfc3339_format_they_replaced() {
        let slow = |ts: SystemTime| {
            chrono::DateTime::<chrono::Utc>::from(ts)
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        };
        let mut ms: u64 = 0;
        // Bounded: every step of a few primes through 1970..2200, millisecond edges included.
        for step in [1u64, 999, 86_399_999, 2_629_743_831, 31_556_952_001] {
            for i in 0..200u64 {
                ms = (ms + step * (i + 1)) % 7_258_118_400_000;
                let ts = SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
                assert_eq!(format_ts(ts), slow(ts), "{ms}");
            }
        }
        let before_1970 = SystemTime::UNIX_EPOCH - Duration::from_millis(1);
        assert_eq!(format_ts(before_1970), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            format_ts(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn keys_in_contract_order_and_chained() {
        let (line, hash) = entry().to_line(7, Some(GENESIS), &["phone".into()]);
        let keys: Vec<String> =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&line)
                .map(|m| m.keys().cloned().collect())
                .unwrap();
        assert_eq!(
            keys,
            [
                "ts",
                "seq",
                "request_id",
                "client_ip",
                "tls",
                "principal",
                "method",
                "route",
                "path",
                "query",
                "decision",
                "reason",
                "detail",
                "status",
                "upstream_status",
                "duration_ms",
                "upstream_ms",
                "bytes_out",
                "records",
                "upstream_name",
                "served",
                "signed",
                "prev_hash",
                "hash"
            ]
        );
        assert!(
            line.starts_with("{\"ts\":\"2023-11-14T22:13:20.123Z\",\"seq\":7,"),
            "{line}"
        );
        assert!(line.contains("\"principal\":{\"id\":null,\"kind\":\"none\",\"tenant\":null}"));
        assert!(line.contains("\"decision\":\"deny\""));
        assert!(line.contains("\"duration_ms\":1.234"));
        assert!(
            !line.contains("13812345678") && !line.contains("13900001111"),
            "{line}"
        );
        assert!(line.contains("\"phone\":\"139****1111\""));
        let hash = hash.unwrap();
        let body = line
            .strip_suffix(&format!(",\"hash\":\"{hash}\"}}"))
            .unwrap()
            .to_owned()
            + "}";
        assert_eq!(chain_hash(GENESIS, &body), hash);
    }

    #[test]
    fn client_shaped_fields_are_cut_with_a_mark_on_a_char_boundary() {
        let mut long = entry();
        long.path = format!("/v1/{}", "a".repeat(100_000));
        long.request_id = "r".repeat(5_000);
        long.client_subject = Some(Arc::from("CN=".to_owned() + &"x".repeat(5_000)));
        // Three-byte characters, so the cut lands inside one unless it is placed with care.
        long.query = vec![(Arc::from("note"), Value::String("张".repeat(2_000)))];
        let (line, _) = long.to_line(1, Some(GENESIS), &[]);
        let record: serde_json::Value = serde_json::from_str(&line).unwrap();
        for field in [
            &record["path"],
            &record["request_id"],
            &record["tls"]["client_subject"],
            &record["query"]["note"],
        ] {
            let text = field.as_str().unwrap();
            assert!(text.len() <= FIELD_MAX_BYTES, "{} bytes", text.len());
            assert!(text.ends_with(CUT_MARK), "{text}");
        }
        assert!(line.len() < 8 * FIELD_MAX_BYTES, "{} bytes", line.len());
        assert!(
            record["query"]["note"]
                .as_str()
                .unwrap()
                .starts_with("张张")
        );
    }

    #[test]
    fn short_fields_are_kept_whole() {
        let text = "/v1/customers/C0000001/orders";
        assert_eq!(bounded(Cow::Borrowed(text)), text);
        let exact = "é".repeat(FIELD_MAX_BYTES / 2);
        assert_eq!(bounded(Cow::Borrowed(&exact)), exact.as_str());
    }

    #[test]
    fn a_phone_number_at_the_cut_is_masked_before_it_is_cut() {
        let mut long = entry();
        // A phone number straddling the cut: cut first, it would no longer look like one.
        // Cut first, the record would keep "/a…a/13812345", eight clear digits.
        long.path = format!("/{}/13812345678/bbb", "a".repeat(FIELD_MAX_BYTES - 13));
        let (line, _) = long.to_line(1, Some(GENESIS), &[]);
        assert!(!line.contains("1381234"), "{line}");
        assert!(line.contains("138****5"), "{line}");
    }
}
