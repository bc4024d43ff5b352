//! Secrets (HMAC keys, Redis passwords, admin tokens) in a wrapper whose `Debug` never shows
//! them, so no log line or panic message can carry one.

/// The shortest secret accepted anywhere: the HMAC keys of tokens, signed requests and the
/// webhook, and the admin token. 32 bytes is SHA-256's own strength (RFC 7518 §3.2 asks it of
/// HS256 keys).
pub const MIN_SECRET_BYTES: usize = 32;

/// Refuses a secret shorter than [`MIN_SECRET_BYTES`]; `what` names it in the message ("the
/// HMAC secret").
pub fn long_enough(secret: &[u8], what: &str) -> Result<(), String> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!("{what} must be at least {MIN_SECRET_BYTES} bytes"));
    }
    Ok(())
}

/// A secret value whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_below_32_bytes_is_refused_by_name() {
        assert_eq!(
            long_enough(&[7; 31], "the admin token"),
            Err("the admin token must be at least 32 bytes".to_owned())
        );
        assert_eq!(long_enough(&[7; 32], "the admin token"), Ok(()));
        assert_eq!(format!("{:?}", Secret::new("hunter2".into())), "<redacted>");
    }
}
