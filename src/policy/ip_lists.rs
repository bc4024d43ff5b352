//! `allow_ips` (§7.2), wherever it appears (`[server]`, keys, mTLS clients, roles, routes): every
//! entry parsed strictly, each bad one reported at its own index; a whole-family block is
//! accepted with a warning, since it admits every address and makes the list pointless.

use std::sync::Arc;

use crate::config::problems::KeyPath;
use crate::policy::compile::Ctx;
use crate::vocab::ip_list::{self, IpAllowList, MAX_ENTRIES};

/// The list at `at` (the `allow_ips` key itself); `None` when it is empty (any address).
pub(super) fn compile(ctx: &mut Ctx<'_>, at: &KeyPath, raw: &[String]) -> Option<Arc<IpAllowList>> {
    if raw.len() > MAX_ENTRIES {
        ctx.bad(
            at,
            format!("at most {MAX_ENTRIES} entries (larger lists belong in a firewall)"),
        );
    }
    let mut nets = Vec::with_capacity(raw.len());
    for (i, entry) in raw.iter().enumerate() {
        match ip_list::parse_entry(entry) {
            Ok(net) => {
                if ip_list::admits_everything(&net) {
                    ctx.warn(
                        &at.i(i),
                        format!("`{entry}` admits every address of its family"),
                    );
                }
                nets.push(net);
            }
            Err(e) => ctx.bad(&at.i(i), e),
        }
    }
    IpAllowList::new(nets).map(Arc::new)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::policy::fixtures::{check, compiled};

    #[test]
    fn whole_families_load_with_a_warning_at_their_entry() {
        let policy = compiled(
            Path::new("/nonexistent-ordergate"),
            "[roles.partner]\nscopes = [\"orders:read\"]\nallow_ips = [\"10.0.0.0/8\", \"0.0.0.0/0\", \"::/0\"]\n",
        );
        let warnings: Vec<String> = policy
            .warnings
            .iter()
            .map(|w| format!("{}:{}: {}", w.line, w.col, w.message))
            .collect();
        assert_eq!(
            warnings,
            [
                "3:28: `0.0.0.0/0` admits every address of its family",
                "3:41: `::/0` admits every address of its family",
            ]
        );
        let list = policy.roles["partner"].allow_ips.as_ref().unwrap();
        assert_eq!(list.nets().len(), 3);
    }

    #[test]
    fn bad_entries_are_reported_at_their_index() {
        check(&[
            (
                "[roles.partner]\nscopes = [\"orders:read\"]\nallow_ips = [\"10.0.0.1/8\", \"nope\", \"10.0.0.0/8\"]\n",
                &[
                    "3:14: `10.0.0.1/8` has host bits set past its prefix; the block is `10.0.0.0/8`",
                    "3:28: `nope` is not a CIDR block (e.g. `203.0.113.0/24`, `2001:db8::/48`) or an address",
                ],
            ),
            (
                "[roles.partner]\nscopes = [\"orders:read\"]\nallow_ips = [\"2001:db8::1/32\", \"10.0.0.0/33\"]\n",
                &[
                    "3:14: `2001:db8::1/32` has host bits set past its prefix; the block is `2001:db8::/32`",
                    "3:32: `10.0.0.0/33` is not a CIDR block (e.g. `203.0.113.0/24`, `2001:db8::/48`) or an address",
                ],
            ),
            (
                "[roles.partner]\nscopes = [\"orders:read\"]\nallow_ips = [\"0.0.0.0/0\", \"::/0\", \"127.0.0.1\"]\n",
                &[],
            ),
        ]);
    }
}
