//! Stage 6, authorisation. Refuses with 403 `forbidden`:
//! - `scope_missing`: the principal lacks one of the route's `require_scopes` (all are needed);
//! - `owner_mismatch`: the route's `owner` parameter differs from the principal's claim and the
//!   principal holds none of `bypass_scopes` — this is what keeps one customer out of another's
//!   orders; a claim or attribute that is an array is a set, matched by any element;
//! - `no_view`: the route has response views and none is for a scope the principal holds.
//!
//! Nothing is sent upstream for a refused request. Adds to the context: the chosen view.

use std::sync::Arc;

use crate::stage::authn::Principal;
use crate::vocab::cause::Denied;
use crate::vocab::error::GatewayError;
use crate::vocab::query::RawQuery;
use crate::vocab::scopes::ScopeSet;

/// Where an owner binding reads the customer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerParam {
    /// A path parameter, by name.
    Path(Arc<str>),
    /// A query parameter, by name.
    Query(Arc<str>),
}

/// `owner = { param, claim, bypass_scopes }`, compiled.
#[derive(Debug, Clone)]
pub struct OwnerBinding {
    /// Which parameter holds the customer id.
    pub param: OwnerParam,
    /// The principal's claim it must equal.
    pub claim: Arc<str>,
    /// Scopes that skip the check (support staff, say).
    pub bypass: ScopeSet,
    /// The same scopes as written, for `ordergate explain` and `diff`.
    pub bypass_names: Vec<Arc<str>>,
}

/// A route's access rules, compiled: the stage's own settings.
#[derive(Debug, Clone)]
pub struct Access {
    /// All of these are needed.
    pub require_scopes: ScopeSet,
    /// The owner binding, if the route has one.
    pub owner: Option<OwnerBinding>,
    /// The scope of each response view, in order: the first the caller holds applies.
    pub view_scopes: Vec<ScopeSet>,
}

/// Authorises `principal` for a route's `access`; returns the index of the response view that
/// applies.
pub fn authorize(
    route: &Access,
    principal: &Principal,
    path_params: &[(Arc<str>, String)],
    query: &RawQuery,
) -> Result<Option<usize>, GatewayError> {
    if !principal.scopes.contains_all(&route.require_scopes) {
        return Err(GatewayError::Forbidden {
            cause: Denied::ScopeMissing,
        });
    }
    if let Some(owner) = &route.owner
        && !principal.scopes.contains_any(&owner.bypass)
    {
        let requested = match &owner.param {
            OwnerParam::Path(name) => path_params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str()),
            OwnerParam::Query(name) => query.get(name),
        };
        // An array claim is a set of owners (§7.3): any element may match.
        match requested {
            Some(requested) if principal.claim_holds(&owner.claim, requested) => {}
            _ => {
                return Err(GatewayError::Forbidden {
                    cause: Denied::OwnerMismatch,
                });
            }
        }
    }
    if route.view_scopes.is_empty() {
        return Ok(None);
    }
    route
        .view_scopes
        .iter()
        .position(|scope| principal.scopes.contains_all(scope))
        .map(Some)
        .ok_or(GatewayError::Forbidden {
            cause: Denied::NoView,
        })
}
