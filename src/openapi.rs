//! `ordergate openapi`: the OpenAPI 3.1 document of what a policy allows — routes, their
//! parameters with schemas, security schemes, and the problem+json error answers — so partners
//! can generate clients and the gateway can be tested against its own spec.

use serde_json::{Map, Value, json};

use crate::policy::Policy;
use crate::stage::validate::ParamSchema;
use crate::stage::validate::schema::Kind;

/// The document.
pub fn document(policy: &Policy) -> Value {
    let mut security_schemes = Map::new();
    let mut security = Vec::new();
    if policy.auth.jwt.is_some() {
        security_schemes.insert(
            "bearerAuth".into(),
            json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}),
        );
        security.push(json!({"bearerAuth": []}));
    }
    if let Some(keys) = &policy.auth.api_keys {
        security_schemes.insert(
            "apiKeyAuth".into(),
            json!({"type": "apiKey", "in": "header", "name": keys.header.as_str()}),
        );
        security.push(json!({"apiKeyAuth": []}));
    }
    if !policy.auth.mtls.is_empty() {
        security_schemes.insert("mutualTLS".into(), json!({"type": "mutualTLS"}));
        security.push(json!({"mutualTLS": []}));
    }
    let mut paths = Map::new();
    for route in &policy.routes {
        let mut parameters = Vec::new();
        for p in &route.params.path {
            parameters.push(parameter(p, "path", true));
        }
        for p in &route.params.query {
            parameters.push(parameter(p, "query", p.required));
        }
        if route.require_signature {
            // RFC 9421: every caller signs (CONTRACT §7.1); `ordergate sign` prints both.
            for name in ["Signature-Input", "Signature"] {
                parameters.push(json!({
                    "name": name,
                    "in": "header",
                    "required": true,
                    "description": "RFC 9421 HTTP Message Signature covering @method, @authority, @path, @query (and content-digest with a body), with created, nonce and keyid.",
                    "schema": {"type": "string"},
                }));
            }
        }
        let mut responses = Map::new();
        responses.insert(
            "200".into(),
            json!({
                "description": if route.views.is_empty() { "The order service's answer." } else { "The order service's answer, filtered by the caller's view." },
                "content": {"application/json": {"schema": {}}},
            }),
        );
        for (status, name) in [
            ("400", "BadRequest"),
            ("401", "Unauthenticated"),
            ("403", "Forbidden"),
            ("405", "MethodNotAllowed"),
            ("413", "PayloadTooLarge"),
            ("429", "RateLimited"),
            ("502", "BadGateway"),
            ("503", "Unavailable"),
            ("504", "GatewayTimeout"),
        ] {
            responses.insert(
                status.into(),
                json!({"$ref": format!("#/components/responses/{name}")}),
            );
        }
        let mut operation = json!({
            "operationId": &*route.id,
            "parameters": parameters,
            "security": security,
            "responses": responses,
            "x-required-scopes": route.require_scope_names,
        });
        if let Some(summary) = &route.summary {
            operation["summary"] = Value::from(summary.clone());
        }
        if !route.views.is_empty() {
            operation["x-views"] = Value::from(
                route
                    .views
                    .iter()
                    .map(|v| v.scope_name.to_string())
                    .collect::<Vec<_>>(),
            );
        }
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[route.method.as_str().to_ascii_lowercase()] = operation;
    }
    let problem_ref =
        json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
    let response =
        |description: &str| json!({"description": description, "content": problem_ref.clone()});
    let listen = policy.server.listen;
    let scheme = if policy.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ordergate",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Order-history queries through ordergate. Unknown or repeated parameters are refused; every error is application/problem+json."
        },
        "servers": [{"url": format!("{scheme}://{listen}")}],
        "paths": paths,
        "components": {
            "securitySchemes": security_schemes,
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail", "instance"],
                    "properties": {
                        "type": {"type": "string", "format": "uri"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "instance": {"type": "string", "description": "The request id."},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["param", "reason"],
                                "properties": {"param": {"type": "string"}, "reason": {"type": "string"}}
                            }
                        }
                    }
                }
            },
            "responses": {
                "BadRequest": response("Malformed request or invalid parameters (`bad_request`, `invalid_parameter`)."),
                "Unauthenticated": response("No valid credential (`unauthenticated`)."),
                "Forbidden": response("Not allowed (`forbidden`), or frozen by the abuse guard (`frozen`)."),
                "MethodNotAllowed": response("The path does not accept this method; see `Allow`."),
                "PayloadTooLarge": response("The request body is too large."),
                "RateLimited": response("Over a rate limit; see `Retry-After` and `RateLimit-*`."),
                "BadGateway": response("The order service is unreachable or answered unusably."),
                "Unavailable": response("Overloaded, circuit open, or audit unavailable; see `Retry-After`."),
                "GatewayTimeout": response("The order service did not answer in time.")
            }
        }
    })
}

fn parameter(p: &ParamSchema, location: &str, required: bool) -> Value {
    let mut schema = match &p.kind {
        Kind::String { .. } => json!({"type": "string"}),
        Kind::Integer { min, max } => {
            let mut s = json!({"type": "integer"});
            if let Some(m) = min {
                s["minimum"] = Value::from(*m);
            }
            if let Some(m) = max {
                s["maximum"] = Value::from(*m);
            }
            s
        }
        Kind::Number { min, max } => {
            let mut s = json!({"type": "number"});
            if let Some(m) = min {
                s["minimum"] = Value::from(*m);
            }
            if let Some(m) = max {
                s["maximum"] = Value::from(*m);
            }
            s
        }
        Kind::Boolean => json!({"type": "boolean"}),
        Kind::Date => json!({"type": "string", "format": "date"}),
        Kind::Datetime => json!({"type": "string", "format": "date-time"}),
        Kind::Enum { values } => json!({"type": "string", "enum": values}),
    };
    if let Some(pattern) = &p.pattern_source {
        schema["pattern"] = Value::from(format!("^(?:{pattern})$"));
    }
    if matches!(p.kind, Kind::String { .. }) {
        schema["maxLength"] = Value::from(p.max_length);
        if p.min_length > 0 {
            schema["minLength"] = Value::from(p.min_length);
        }
    }
    if let Some(default) = &p.default {
        schema["default"] = default.to_json();
    }
    let mut out = json!({"name": &*p.name, "in": location, "required": required, "schema": schema});
    if let Some(d) = &p.description {
        out["description"] = Value::from(d.clone());
    }
    out
}
