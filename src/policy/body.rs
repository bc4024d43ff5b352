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
