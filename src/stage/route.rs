//! Stage 3, routing: method + path template. Refuses
//! - 404 `not_found` when no template matches (nothing unmatched reaches the upstream),
//! - 405 `method_not_allowed` with `Allow` when the path exists for other methods,
//! - 400 `bad_request` for `.`/`..` or empty segments, encoded `/` or `\`, a raw `\`, malformed
//!   escapes, invalid UTF-8 or control characters: such paths are refused, never normalised
//!   into another route.
//!
//! Adds to the context: the route and its path parameters, percent-decoded exactly once.

use std::sync::Arc;

use http::{HeaderValue, Method};

use crate::vocab::error::{BadRequest, GatewayError};
use crate::vocab::percent::{self, DecodeError};

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Must appear exactly.
    Literal(String),
    /// Captures one whole segment.
    Param(Arc<str>),
}

/// A path template such as `/v1/customers/{customer_id}/orders`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    segments: Vec<Segment>,
}

impl PathTemplate {
    /// Parses a template: `/`-separated segments, each a literal of URL-safe characters or one
    /// whole `{name}`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix('/')
            .ok_or_else(|| format!("path `{text}` must start with `/`"))?;
        if rest.is_empty() {
            return Ok(Self {
                segments: Vec::new(),
            });
        }
        let mut segments = Vec::new();
        for segment in rest.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let valid = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(format!(
                        "path `{text}`: parameter `{{{name}}}` needs a name of letters, digits and `_`"
                    ));
                }
                if segments
                    .iter()
                    .any(|s| matches!(s, Segment::Param(p) if &**p == name))
                {
                    return Err(format!("path `{text}` names `{{{name}}}` twice"));
                }
                segments.push(Segment::Param(Arc::from(name)));
            } else if segment.is_empty() || segment == "." || segment == ".." {
                return Err(format!("path `{text}` has an empty or dot segment"));
            } else if !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b))
            {
                return Err(format!(
                    "path `{text}`: segment `{segment}` may hold only URL-safe characters or one whole `{{param}}`"
                ));
            } else {
                segments.push(Segment::Literal(segment.to_owned()));
            }
        }
        Ok(Self { segments })
    }

    /// The parameter names, in order.
    pub fn params(&self) -> impl Iterator<Item = &Arc<str>> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(p) => Some(p),
            Segment::Literal(_) => None,
        })
    }

    /// The template in `matchit` syntax (which is ours).
    fn as_matchit(&self) -> String {
        self.to_string()
    }

    /// Writes the path with each parameter replaced by the canonical encoding of its value.
    /// `value_of` returns `None` only for names the policy check guaranteed exist.
    pub fn render<'v>(&self, out: &mut String, value_of: impl Fn(&str) -> Option<&'v str>) {
        if self.segments.is_empty() {
            out.push('/');
        }
        for segment in &self.segments {
            out.push('/');
            match segment {
                Segment::Literal(l) => out.push_str(l),
                Segment::Param(p) => percent::encode_into(value_of(p).unwrap_or(""), out),
            }
        }
    }
}

impl std::fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("/");
        }
        for segment in &self.segments {
            match segment {
                Segment::Literal(l) => write!(f, "/{l}")?,
                Segment::Param(p) => write!(f, "/{{{p}}}")?,
            }
        }
        Ok(())
    }
}

/// The routes that share one path template, by method.
#[derive(Debug)]
struct PathEntry {
    methods: Vec<(Method, usize)>,
    allow: HeaderValue,
}

/// Every route's template in a radix tree, built once per policy.
#[derive(Debug)]
pub struct RouteTable {
    router: matchit::Router<usize>,
    entries: Vec<PathEntry>,
}

/// A matched route: its index in the policy and its decoded path parameters, in template order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// Index into the policy's routes.
    pub route: usize,
    /// Path parameters, percent-decoded, in template order.
    pub params: Vec<(Arc<str>, String)>,
}

impl RouteTable {
    /// Builds the table from `(method, template)` per route index. Errors name the route index.
    pub fn build(routes: &[(Method, PathTemplate)]) -> Result<Self, (usize, String)> {
        let mut router = matchit::Router::new();
        let mut entries: Vec<PathEntry> = Vec::new();
        let mut by_template: Vec<(String, usize)> = Vec::new();
        for (index, (method, template)) in routes.iter().enumerate() {
            let key = template.as_matchit();
            let entry = match by_template.iter().find(|(t, _)| *t == key) {
                Some((_, entry)) => *entry,
                None => {
                    router.insert(key.clone(), entries.len()).map_err(|e| {
                        (
                            index,
                            format!("path `{key}` conflicts with another route: {e}"),
                        )
                    })?;
                    by_template.push((key, entries.len()));
                    entries.push(PathEntry {
                        methods: Vec::new(),
                        allow: HeaderValue::from_static(""),
                    });
                    entries.len() - 1
                }
            };
            let methods = &mut entries[entry].methods;
            if methods.iter().any(|(m, _)| m == method) {
                return Err((
                    index,
                    format!("another route already serves {method} {template}"),
                ));
            }
            methods.push((method.clone(), index));
        }
        for entry in &mut entries {
            let allow: Vec<&str> = entry.methods.iter().map(|(m, _)| m.as_str()).collect();
            entry.allow = HeaderValue::from_str(&allow.join(", "))
                .map_err(|_| (0, "method names must be header-safe".to_owned()))?;
        }
        Ok(Self { router, entries })
    }

    /// Matches a request. `path` is the raw path of the request URI (without the query).
    pub fn lookup(&self, method: &Method, path: &str) -> Result<RouteMatch, GatewayError> {
        check_path(path)?;
        let matched = self.router.at(path).map_err(|_| GatewayError::NotFound)?;
        let entry = &self.entries[*matched.value];
        let Some(&(_, route)) = entry.methods.iter().find(|(m, _)| m == method) else {
            return Err(GatewayError::MethodNotAllowed {
                allow: entry.allow.clone(),
            });
        };
        let mut params = Vec::with_capacity(matched.params.len());
        for (name, raw) in matched.params.iter() {
            let value = decode_segment(raw)?;
            params.push((Arc::from(name), value));
        }
        Ok(RouteMatch { route, params })
    }
}

/// The strict path rules, on the raw path.
fn check_path(path: &str) -> Result<(), GatewayError> {
    let bad = |b| Err(GatewayError::BadRequest(b));
    let Some(rest) = path.strip_prefix('/') else {
        return bad(BadRequest::PathEmptySegment);
    };
    if rest.is_empty() {
        return Ok(());
    }
    // A trailing `/` is simply another (unknown) path; an empty segment inside is `//`.
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    for segment in rest.split('/') {
        if segment.is_empty() {
            return bad(BadRequest::PathEmptySegment);
        }
        decode_segment(segment)?;
    }
    Ok(())
}

/// Decodes one raw segment once, refusing encoded separators, dot segments, bad escapes,
/// invalid UTF-8 and control characters.
fn decode_segment(raw: &str) -> Result<String, GatewayError> {
    let bad = |b| Err(GatewayError::BadRequest(b));
    if raw.contains('\\') {
        return bad(BadRequest::PathEncodedSeparator);
    }
    let decoded = match percent::decode(raw, false) {
        Ok(d) => d,
        Err(DecodeError::BadEscape) => return bad(BadRequest::PathBadEncoding),
        Err(DecodeError::InvalidUtf8) => return bad(BadRequest::PathInvalidUtf8),
    };
    if decoded.contains(['/', '\\']) {
        return bad(BadRequest::PathEncodedSeparator);
    }
    if decoded == "." || decoded == ".." {
        return bad(BadRequest::PathDotSegment);
    }
    if decoded.chars().any(char::is_control) {
        return bad(BadRequest::PathControlCharacter);
    }
    Ok(decoded.into_owned())
}

/// Stage 1's header limit, checked here where the headers are parsed: more than `max` bytes
/// (names, values and separators) is 431.
pub fn refuse_large_headers(headers: &http::HeaderMap, max: usize) -> Result<(), GatewayError> {
    let bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if bytes > max {
        return Err(GatewayError::BadRequest(BadRequest::HeadersTooLarge));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table() -> RouteTable {
        RouteTable::build(&[
            (
                Method::GET,
                PathTemplate::parse("/v1/customers/{customer_id}/orders").unwrap(),
            ),
            (
                Method::GET,
                PathTemplate::parse("/v1/orders/{order_id}").unwrap(),
            ),
            (
                Method::DELETE,
                PathTemplate::parse("/v1/orders/{order_id}").unwrap(),
            ),
        ])
        .unwrap()
    }

    fn cause(result: Result<RouteMatch, GatewayError>) -> &'static str {
        match result {
            Err(e) => e.cause().unwrap_or(e.reason()),
            Ok(_) => "matched",
        }
    }

    #[test]
    fn matches_and_decodes_parameters_once() {
        let m = table()
            .lookup(&Method::GET, "/v1/customers/C%31234567/orders")
            .unwrap();
        assert_eq!(m.route, 0);
        assert_eq!(
            m.params,
            vec![(Arc::from("customer_id"), "C1234567".to_owned())]
        );
        let m = table()
            .lookup(&Method::GET, "/v1/customers/%2525/orders")
            .unwrap();
        assert_eq!(m.params[0].1, "%25");
    }

    #[test]
    fn refuses_what_it_must() {
        let t = table();
        assert_eq!(cause(t.lookup(&Method::GET, "/v1/nothing")), "not_found");
        assert_eq!(cause(t.lookup(&Method::GET, "/v1/orders/1/")), "not_found");
        assert_eq!(cause(t.lookup(&Method::GET, "/V1/orders/1")), "not_found");
        assert_eq!(cause(t.lookup(&Method::GET, "/v1/%6Frders/1")), "not_found");
        match t.lookup(&Method::POST, "/v1/orders/1") {
            Err(GatewayError::MethodNotAllowed { allow }) => assert_eq!(allow, "GET, DELETE"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            cause(t.lookup(&Method::GET, "/v1/orders/..")),
            "path_dot_segment"
        );
        assert_eq!(
            cause(t.lookup(&Method::GET, "/v1/orders/%2e%2E")),
            "path_dot_segment"
        );
        assert_eq!(
            cause(t.lookup(&Method::GET, "/v1/customers/../orders/1")),
            "path_dot_segment"
        );
        assert_eq!(
            cause(t.lookup(&Method::GET, "/v1//orders/1")),
            "path_empty_segment"
        );
        assert_eq!(
            cause(t.lookup(&Method::GET, "/v1/orders/a%2Fb")),
            "path_encoded_separator"
        );
        assert_eq!(
            cause(t.lookup(&Method::GET, "/v1/orders/a%5cb")),
            "path_encoded_separator"
        );
        assert_eq!(
            cause(t.lookup(&Method::GET, "/v1/orders/a\\b")),
            "path_encoded_separator"
        );
        assert_eq!(
            cause(t.lookup(&Method::GET, "/v1/orders/%zz")),
            "path_bad_encoding"
        );
        assert_eq!(
            cause(t.lookup(&Method::GET, "/v1/orders/%C0%AF")),
            "path_invalid_utf8"
        );
        assert_eq!(
            cause(t.lookup(&Method::GET, "/v1/orders/a%00")),
            "path_control_character"
        );
        assert_eq!(
            cause(t.lookup(&Method::GET, "/v1/orders/a%0D%0A")),
            "path_control_character"
        );
    }

    #[test]
    fn templates_are_checked() {
        assert!(PathTemplate::parse("v1/x").is_err());
        assert!(PathTemplate::parse("/v1//x").is_err());
        assert!(PathTemplate::parse("/v1/{a}/{a}").is_err());
        assert!(PathTemplate::parse("/v1/{a-b}").is_err());
        assert!(PathTemplate::parse("/v1/x{a}").is_err());
        assert!(PathTemplate::parse("/v1/{*rest}").is_err());
        assert!(PathTemplate::parse("/v1/a b").is_err());
        let conflict = RouteTable::build(&[
            (Method::GET, PathTemplate::parse("/v1/orders/{a}").unwrap()),
            (Method::GET, PathTemplate::parse("/v1/orders/{b}").unwrap()),
        ]);
        assert_eq!(conflict.unwrap_err().0, 1);
        let twice = RouteTable::build(&[
            (Method::GET, PathTemplate::parse("/v1/orders").unwrap()),
            (Method::GET, PathTemplate::parse("/v1/orders").unwrap()),
        ]);
        assert!(twice.unwrap_err().1.contains("already serves"));
    }

    #[test]
    fn renders_with_canonical_encoding() {
        let t = PathTemplate::parse("/api/orders/{order_id}").unwrap();
        let mut out = String::new();
        t.render(&mut out, |_| Some("O 1/2"));
        assert_eq!(out, "/api/orders/O%201%2F2");
        assert_eq!(t.to_string(), "/api/orders/{order_id}");
    }

    proptest! {
        #[test]
        fn lookup_never_panics(path in "/[a-zA-Z0-9%./\\\\{}*:_-]{0,40}") {
            let _ = table().lookup(&Method::GET, &path);
        }
    }
}
