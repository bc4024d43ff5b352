//! The owner binding, once more on the value that goes upstream. Stage 6 compares the owner
//! parameter as received with the principal's claim; validation then sends its canonical form
//! (an integer `0042` goes upstream as `42`). Were the two allowed to differ, a caller whose
//! claim is `0042` would pass the check and read customer 42's orders. So the value sent must
//! itself be one the claim holds, or the request is refused with 403 `owner_mismatch`.

use crate::stage::authn::Principal;
use crate::stage::authz::{Access, OwnerParam};
use crate::vocab::cause::Denied;
use crate::vocab::error::GatewayError;

use super::{Validated, Value};

/// Refuses a request whose owner parameter, as sent upstream, is not one the claim holds
/// (principals holding a bypass scope are not checked, as in stage 6).
pub fn confirm_owner(
    access: &Access,
    principal: &Principal,
    validated: &Validated,
) -> Result<(), GatewayError> {
    let Some(owner) = &access.owner else {
        return Ok(());
    };
    if principal.scopes.contains_any(&owner.bypass) {
        return Ok(());
    }
    let (values, name) = match &owner.param {
        OwnerParam::Path(name) => (&validated.path, name),
        OwnerParam::Query(name) => (&validated.query, name),
    };
    let holds = match values.iter().find(|(n, _)| n == name).map(|(_, v)| v) {
        Some(Value::String(sent)) => principal.claim_holds(&owner.claim, sent),
        Some(value) => {
            let mut sent = String::new();
            value.write_canonical(&mut sent);
            principal.claim_holds(&owner.claim, &sent)
        }
        // Not sent at all (a default the caller did not choose is not theirs either).
        None => false,
    };
    if holds {
        Ok(())
    } else {
        Err(GatewayError::Forbidden {
            cause: Denied::OwnerMismatch,
        })
    }
}
