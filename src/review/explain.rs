//! `ordergate explain`: what one caller may do under a policy — its credential, its limits, and
//! per route whether it is allowed (own customer only, or any) or refused and by which rule, the
//! view that applies, and with `--field` what it sees of that field; and the wave-2 rules that
//! apply to it (IP lists, signatures, response owners, upstream and canary side, stale answers,
//! the volume guard). It prints the caller's
//! exposure facts ([`super::exposure`]), so it reads exactly what `diff` compares.

use serde_json::{Value, json};

use crate::policy::Policy;
use crate::review::exposure::{self, Fact, FactKey, Facts, Gather};
use crate::review::who::{Who, file_name};
use crate::stage::views::FieldPath;

/// What `explain` was asked.
#[derive(Debug, Clone, Default)]
pub struct Question {
    /// `--as`.
    pub who: String,
    /// `--route`: only this route.
    pub route: Option<String>,
    /// `--field`: decide this field on every route the caller reaches.
    pub field: Option<String>,
}

/// An answer: the caller and its facts.
#[derive(Debug, Clone)]
pub struct Explanation {
    label: String,
    file: String,
    kind: &'static str,
    id: String,
    tenant: Option<String>,
    scopes: Vec<String>,
    routes: Vec<String>,
    facts: Facts,
}

/// Answers `question` about `policy`; `Err` says what is wrong with the question.
pub fn explain(policy: &Policy, question: &Question) -> Result<Explanation, String> {
    let caller = Who::parse(&question.who)?.resolve(policy)?;
    if let Some(route) = &question.route
        && !policy.routes.iter().any(|r| *r.id == **route)
    {
        return Err(format!("no route `{route}` in {}", file_name(policy)));
    }
    let field = question
        .field
        .as_deref()
        .map(FieldPath::parse)
        .transpose()?;
    let fields = |_: &crate::policy::Route| field.iter().cloned().collect();
    let callers = [caller];
    let facts = exposure::facts(
        policy,
        &Gather {
            callers: &callers,
            fields: &fields,
            views: false,
            route: question.route.as_deref(),
        },
    );
    let [caller] = callers;
    let principal = &caller.principal;
    let scopes = principal
        .scope_header
        .to_str()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    Ok(Explanation {
        label: caller.label,
        file: file_name(policy),
        kind: principal.kind.as_str(),
        id: principal.id.to_string(),
        tenant: principal.tenant.as_ref().map(|t| t.to_string()),
        scopes,
        routes: policy
            .routes
            .iter()
            .filter(|r| question.route.as_deref().is_none_or(|id| *r.id == *id))
            .map(|r| r.id.to_string())
            .collect(),
        facts,
    })
}

impl Explanation {
    fn get(&self, subject: &str, route: Option<&str>, item: &str) -> Option<&Fact> {
        self.facts.get(&FactKey {
            subject: subject.to_owned(),
            route: route.map(str::to_owned),
            item: item.to_owned(),
        })
    }

    fn fields<'a>(&'a self, route: &'a str) -> impl Iterator<Item = (&'a str, &'a Fact)> + 'a {
        self.facts.iter().filter_map(move |(k, f)| {
            (k.subject == self.label && k.route.as_deref() == Some(route))
                .then(|| k.item.strip_prefix("field ").map(|p| (p, f)))
                .flatten()
        })
    }

    /// For people.
    pub fn text(&self) -> String {
        let mut out = format!("explain {} in {}\n", self.label, self.file);
        out.push_str(&format!(
            "caller: {} {}, tenant {}, scopes {}\n",
            self.kind,
            self.id,
            self.tenant.as_deref().unwrap_or("-"),
            if self.scopes.is_empty() {
                "(none)".to_owned()
            } else {
                self.scopes.join(" ")
            }
        ));
        if let Some(c) = self.get(&self.label, None, "credential") {
            out.push_str(&format!("credential: {}\n", c.text()));
        }
        if let Some(l) = self.get("policy", None, "rate_limit per_principal") {
            out.push_str(&format!(
                "rate limit per principal (all routes): {}\n",
                l.text()
            ));
        }
        for (label, subject, item) in [
            ("server IP list", "policy", "allow_ips server"),
            (
                "IP lists of the credential and its roles",
                self.label.as_str(),
                "allow_ips",
            ),
            ("signature", self.label.as_str(), "signature"),
            ("volume guard", "policy", "volume"),
        ] {
            if let Some(f) = self.get(subject, None, item) {
                out.push_str(&format!("{label}: {}\n", f.text()));
            }
        }
        for route in &self.routes {
            let r = Some(route.as_str());
            out.push_str(&format!("\nroute {route}"));
            if let Some(f) = self.get("route", r, "route") {
                out.push_str(&format!(": {}", f.text()));
            }
            out.push('\n');
            if let Some(f) = self.get(&self.label, r, "reach") {
                out.push_str(&format!("  {}\n", f.text()));
            }
            if let Some(f) = self.get("route", r, "rate_limit") {
                out.push_str(&format!("  rate limit: {}\n", f.text()));
            }
            for (label, subject, item) in [
                ("upstream", "route", "upstream"),
                ("canary side", self.label.as_str(), "canary side"),
                ("IP list", "route", "allow_ips"),
                ("signature", "route", "require_signature"),
                ("response owners", "route", "response owners"),
                ("stale", "route", "stale_if_error"),
            ] {
                // A rule the route does not have is left out of the text (JSON has it).
                match self.get(subject, r, item) {
                    Some(Fact::IpList(l)) if l.lists.is_empty() => {}
                    Some(Fact::Signature(s)) if !s.required => {}
                    Some(Fact::Owners(o)) if o.entries.is_empty() => {}
                    Some(Fact::Stale(s)) if s.max_age_ms.is_none() => {}
                    Some(f) => out.push_str(&format!("  {label}: {}\n", f.text())),
                    None => {}
                }
            }
            for (path, f) in self.fields(route) {
                out.push_str(&format!("  field {path}: {}\n", f.text()));
            }
        }
        out
    }

    /// For tools.
    pub fn json(&self) -> Value {
        let fact = |f: Option<&Fact>| serde_json::to_value(f).unwrap_or(Value::Null);
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|route| {
                let r = Some(route.as_str());
                let fields: serde_json::Map<String, Value> = self
                    .fields(route)
                    .map(|(p, f)| (p.to_owned(), fact(Some(f))))
                    .collect();
                json!({
                    "id": route,
                    "route": fact(self.get("route", r, "route")),
                    "rate_limit": fact(self.get("route", r, "rate_limit")),
                    "reach": fact(self.get(&self.label, r, "reach")),
                    "allow_ips": fact(self.get("route", r, "allow_ips")),
                    "require_signature": fact(self.get("route", r, "require_signature")),
                    "response_owners": fact(self.get("route", r, "response owners")),
                    "upstream": fact(self.get("route", r, "upstream")),
                    "canary_side": fact(self.get(&self.label, r, "canary side")),
                    "stale_if_error": fact(self.get("route", r, "stale_if_error")),
                    "fields": fields,
                })
            })
            .collect();
        json!({
            "as": self.label,
            "policy": self.file,
            "caller": {
                "kind": self.kind,
                "id": self.id,
                "tenant": self.tenant,
                "scopes": self.scopes,
            },
            "credential": fact(self.get(&self.label, None, "credential")),
            "rate_limit_per_principal": fact(self.get("policy", None, "rate_limit per_principal")),
            "server_allow_ips": fact(self.get("policy", None, "allow_ips server")),
            "allow_ips": fact(self.get(&self.label, None, "allow_ips")),
            "signature": fact(self.get(&self.label, None, "signature")),
            "volume": fact(self.get("policy", None, "volume")),
            "routes": routes,
        })
    }
}
