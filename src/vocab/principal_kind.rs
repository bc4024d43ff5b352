//! How a caller authenticated: part of every per-principal key (buckets, denials, freezes),
//! so principals of different kinds never share state.

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// A bearer JWT.
    Jwt,
    /// An API key.
    ApiKey,
    /// A client certificate.
    Mtls,
}

impl PrincipalKind {
    /// The name used in audit records and `X-Auth-Kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Jwt => "jwt",
            PrincipalKind::ApiKey => "api_key",
            PrincipalKind::Mtls => "mtls",
        }
    }
}
