//! `[roles.NAME]`: named sets of scopes that API keys and mTLS clients refer to.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::problems::KeyPath;
use crate::config::raw;
use crate::policy::compile::Ctx;
use crate::vocab::scopes::{RoleScopes, Roles, ScopeRegistry};

/// `[roles.*]`, each role's scopes registered so principals and routes share their bits.
pub(super) fn compile(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: &BTreeMap<String, Option<raw::Role>>,
    scopes: &mut ScopeRegistry,
) -> Roles {
    let mut roles = HashMap::new();
    for (name, role) in raw {
        let Some(role) = role else { continue };
        if role
            .scopes
            .iter()
            .any(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            ctx.bad(
                &at.k(name).k("scopes"),
                "scopes must be non-empty and contain no spaces",
            );
        }
        let set = scopes.set_of(role.scopes.iter().map(String::as_str));
        let names = role.scopes.iter().map(|s| Arc::from(s.as_str())).collect();
        let allow_ips = super::ip_lists::compile(ctx, &at.k(name).k("allow_ips"), &role.allow_ips);
        roles.insert(
            name.clone(),
            RoleScopes {
                names,
                set,
                allow_ips,
            },
        );
    }
    roles
}

#[cfg(test)]
mod tests {
    use crate::policy::fixtures::check;

    #[test]
    fn bad_role_scopes_are_reported_at_their_keys() {
        check(&[
            (
                "[roles.clerk]\nscopes = [\"orders:read\", \"\"]\n",
                &["2:10: scopes must be non-empty and contain no spaces"],
            ),
            (
                "[roles.clerk]\nscopes = [\"orders read\"]\n",
                &["2:10: scopes must be non-empty and contain no spaces"],
            ),
            (
                "[roles.clerk]\nscope = [\"orders:read\"]\n",
                &["2:1: unknown field `scope`, expected `scopes` or `allow_ips`"],
            ),
            ("[roles.clerk]\nscopes = [\"orders:read\"]\n", &[]),
        ]);
    }
}
