//! `[routes.body]`: the media types a route accepts and how large a body may be.

use http::Method;

use crate::config::problems::{KeyPath, Problems};
use crate::config::raw;
use crate::stage::validate::body::{BodyKind, BodyRule};
use crate::vocab::units::parse_size;

/// Compiles a route's body rule; `server_max` is `server.max_request_body`.
pub fn compile(
    raw: Option<&raw::RouteBody>,
    method: Option<&Method>,
    server_max: u64,
    at: &KeyPath,
    problems: &mut Problems,
) -> Option<BodyRule> {
    let raw = raw?;
    let at = at.k("body");
    if method.is_some_and(|m| matches!(*m, Method::GET | Method::HEAD | Method::DELETE)) {
        problems.at(
            &at,
            "a GET, HEAD or DELETE route takes no request body: remove `[routes.body]`",
        );
    }
    let mut kinds = Vec::new();
    for (i, text) in raw.content_types.iter().enumerate() {
        match BodyKind::parse(text) {
            Some(kind) if !kinds.contains(&kind) => kinds.push(kind),
            Some(_) => problems.at(
                &at.k("content_types").i(i),
                format!("`{text}` is listed twice"),
            ),
            None => problems.at(
                &at.k("content_types").i(i),
                format!("`{text}` is not supported: `text/plain` or `application/json`"),
            ),
        }
    }
    if raw.content_types.is_empty() {
        problems.at(&at.k("content_types"), "list at least one media type");
    }
    let max_bytes = match raw.max_bytes.as_deref().map(parse_size) {
        None => server_max,
        Some(Ok(n)) if n > 0 && n <= server_max => n,
        Some(Ok(_)) => {
            problems.at(
                &at.k("max_bytes"),
                "must be more than 0 and at most `server.max_request_body`",
            );
            server_max
        }
        Some(Err(e)) => {
            problems.at(&at.k("max_bytes"), e);
            server_max
        }
    };
    Some(BodyRule { kinds, max_bytes })
}

#[cfg(test)]
mod tests {
    use crate::policy::fixtures::check;

    #[test]
    fn bad_body_rules_are_reported_at_their_keys() {
        check(&[
            (
                r#"[[routes]]
id = "notes"
method = "POST"
path = "/notes"
require_scopes = ["orders:write"]
[routes.body]
content_types = ["text/plain", "application/xml", "text/plain"]
max_bytes = "1GiB"
"#,
                &[
                    "7:32: `application/xml` is not supported: `text/plain` or `application/json`",
                    "7:51: `text/plain` is listed twice",
                    "8:13: must be more than 0 and at most `server.max_request_body`",
                ],
            ),
            (
                r#"[[routes]]
id = "orders"
method = "GET"
path = "/orders"
require_scopes = ["orders:read"]
[routes.body]
content_types = []
"#,
                &[
                    "6:1: a GET, HEAD or DELETE route takes no request body: remove `[routes.body]`",
                    "7:17: list at least one media type",
                ],
            ),
        ]);
    }
}
