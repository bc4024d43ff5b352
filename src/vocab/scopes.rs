//! Scopes as bitsets. Every scope the policy mentions (roles, `require_scopes`, `bypass_scopes`,
//! view scopes) gets a bit at load time, so authorisation on the request path is a few `AND`s
//! instead of string comparisons. Scopes a token carries that the policy never mentions cannot
//! change a decision; they are kept only as text for `X-Auth-Scopes`.

use std::collections::HashMap;
use std::sync::Arc;

/// The scopes a policy knows, each with its bit.
#[derive(Debug, Default, Clone)]
pub struct ScopeRegistry {
    bits: HashMap<Arc<str>, usize>,
}

impl ScopeRegistry {
    /// Gives `scope` a bit (once) and returns it.
    pub fn intern(&mut self, scope: &str) -> usize {
        let next = self.bits.len();
        *self.bits.entry(Arc::from(scope)).or_insert(next)
    }

    /// The set of the given scopes, interning them.
    pub fn set_of<'a>(&mut self, scopes: impl IntoIterator<Item = &'a str>) -> ScopeSet {
        let mut set = ScopeSet::default();
        for scope in scopes {
            set.insert(self.intern(scope));
        }
        set
    }

    /// The set of the given scopes the policy knows; unknown ones are ignored.
    pub fn known<'a>(&self, scopes: impl IntoIterator<Item = &'a str>) -> ScopeSet {
        let mut set = ScopeSet::default();
        for scope in scopes {
            if let Some(&bit) = self.bits.get(scope) {
                set.insert(bit);
            }
        }
        set
    }

    /// How many scopes the policy knows.
    pub fn len(&self) -> usize {
        self.bits.len()
    }

    /// True when the policy names no scope.
    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }
}

/// A set of known scopes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScopeSet {
    words: Vec<u64>,
}

impl ScopeSet {
    fn insert(&mut self, bit: usize) {
        let word = bit / 64;
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        self.words[word] |= 1 << (bit % 64);
    }

    /// Adds every scope of `other`.
    pub fn extend(&mut self, other: &ScopeSet) {
        if self.words.len() < other.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            *mine |= theirs;
        }
    }

    /// True when every scope of `required` is in this set.
    pub fn contains_all(&self, required: &ScopeSet) -> bool {
        required
            .words
            .iter()
            .enumerate()
            .all(|(i, want)| self.words.get(i).copied().unwrap_or(0) & want == *want)
    }

    /// True when at least one scope of `any` is in this set.
    pub fn contains_any(&self, any: &ScopeSet) -> bool {
        any.words
            .iter()
            .zip(&self.words)
            .any(|(want, have)| want & have != 0)
    }

    /// True when the set holds no scope.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }
}

/// A role's scopes.
#[derive(Debug, Clone, Default)]
pub struct RoleScopes {
    /// The scope names, as written, for `X-Auth-Scopes`.
    pub names: Vec<Arc<str>>,
    /// The same scopes as a bitset, for checks.
    pub set: ScopeSet,
    /// The role's IP list (§7.2): every holder must come from it.
    pub allow_ips: Option<Arc<crate::vocab::ip_list::IpAllowList>>,
}

/// `[roles]`, compiled: role name → its scopes.
pub type Roles = HashMap<String, RoleScopes>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_and_any() {
        let mut registry = ScopeRegistry::default();
        let read = registry.set_of(["orders:read"]);
        let both = registry.set_of(["orders:read", "orders:read:any_customer"]);
        let many: Vec<String> = (0..130).map(|i| format!("s{i}")).collect();
        let far = registry.set_of(many.iter().map(String::as_str));
        let holder = registry.known(["orders:read", "unknown:scope"]);
        assert!(holder.contains_all(&read));
        assert!(!holder.contains_all(&both));
        assert!(holder.contains_any(&both));
        assert!(!holder.contains_any(&far));
        assert!(holder.contains_all(&ScopeSet::default()));
        assert!(!ScopeSet::default().contains_any(&read));
        let mut all = holder.clone();
        all.extend(&far);
        all.extend(&both);
        assert!(all.contains_all(&far) && all.contains_all(&both));
        assert_eq!(registry.len(), 132);
    }
}
