//! The closed list of audit `detail` values: why a request was refused or cut short, as typed
//! causes. Each enum's `as_str()` is the `detail` written to the audit record and used as a
//! metric label; `ALL` lists every value, so metrics can export each series at 0 from the start
//! and the README can list them. No value ever comes from client input.

/// Declares a cause enum with its `detail` strings and the list of all of them.
macro_rules! causes {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* #[doc = concat!("`", $text, "`")] $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The audit `detail` and metric label.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use causes;

causes! {
    /// Why authentication failed (401).
    AuthFailure {
        MissingCredential => "missing_credential",
        RepeatedCredentialHeader => "repeated_credential_header",
        ApiKeysDisabled => "api_keys_disabled",
        MalformedAuthorization => "malformed_authorization",
        JwtDisabled => "jwt_disabled",
        TokenTooLarge => "token_too_large",
        MalformedToken => "malformed_token",
        UnsupportedCrit => "unsupported_crit",
        AlgNone => "alg_none",
        AlgNotAllowed => "alg_not_allowed",
        HmacNotConfigured => "hmac_not_configured",
        NoVerificationKeys => "no_verification_keys",
        AlgKeyMismatch => "alg_key_mismatch",
        UnknownKid => "unknown_kid",
        BadSignature => "bad_signature",
        MissingSubject => "missing_subject",
        MalformedClaims => "malformed_claims",
        MissingExp => "missing_exp",
        TokenExpired => "token_expired",
        TokenNotYetValid => "token_not_yet_valid",
        TokenIssuedInFuture => "token_issued_in_future",
        WrongIssuer => "wrong_issuer",
        WrongAudience => "wrong_audience",
        UnknownApiKey => "unknown_api_key",
        ApiKeyNotYetValid => "api_key_not_yet_valid",
        ApiKeyExpired => "api_key_expired",
        MtlsClientExpired => "mtls_client_expired",
        SignatureMissing => "signature_missing",
        SignatureMalformed => "signature_malformed",
        SignatureComponents => "signature_components",
        SignatureKeyidMismatch => "signature_keyid_mismatch",
        SignatureInvalid => "signature_invalid",
        SignatureExpired => "signature_expired",
        SignatureFuture => "signature_future",
        SignatureReplayed => "signature_replayed",
        DigestMismatch => "digest_mismatch",
    }
}

causes! {
    /// Why an authenticated caller was refused (403 `forbidden`).
    Denied {
        ScopeMissing => "scope_missing",
        OwnerMismatch => "owner_mismatch",
        NoView => "no_view",
        IpNotAllowed => "ip_not_allowed",
        OwnerMismatchResponse => "owner_mismatch_response",
    }
}

causes! {
    /// What is frozen (403 `frozen`).
    FrozenCause {
        IpFrozen => "ip_frozen",
        PrincipalFrozen => "principal_frozen",
    }
}

causes! {
    /// Which bucket refused (429).
    LimitHit {
        RouteLimit => "route_limit",
        PrincipalLimit => "principal_limit",
        FailedAuthIpLimit => "failed_auth_ip_limit",
    }
}

causes! {
    /// Why the gateway would not take the request now (503 `overloaded`).
    Overload {
        MaxInFlight => "max_in_flight",
        MaxConcurrentStreams => "max_concurrent_streams",
        RateLimitBackendUnavailable => "rate_limit_backend_unavailable",
        Shutdown => "shutdown",
        NonceStoreUnavailable => "nonce_store_unavailable",
    }
}

causes! {
    /// What went wrong upstream or with its answer (502, 504).
    UpstreamFailure {
        RequestTimeout => "request_timeout",
        UpstreamTimeout => "upstream_timeout",
        UpstreamUnreachable => "upstream_unreachable",
        UpstreamProtocolError => "upstream_protocol_error",
        UpstreamUri => "upstream_uri",
        ViewNonJson => "view_non_json",
        ViewEncodedBody => "view_encoded_body",
        ViewBodyTooLarge => "view_body_too_large",
        ViewInvalidJson => "view_invalid_json",
        UpstreamBodyTimeout => "upstream_body_timeout",
        UpstreamBodyError => "upstream_body_error",
        OwnerNonJson => "owner_non_json",
    }
}

causes! {
    /// The most telling violation of a 400 `invalid_parameter`.
    ParamFailure {
        UnknownParameter => "unknown_parameter",
        RepeatedParameter => "repeated_parameter",
        MalformedQuery => "malformed_query",
        MissingParameter => "missing_parameter",
        ConstraintFailed => "constraint_failed",
        InvalidValue => "invalid_value",
    }
}

causes! {
    /// Why a response body ended before its end (the record's `detail`).
    Interrupted {
        ClientDisconnected => "client_disconnected",
        UpstreamStalled => "upstream_stalled",
        UpstreamBodyError => "upstream_body_error",
        SendStalled => "send_stalled",
        Shutdown => "shutdown",
    }
}

causes! {
    /// What failed inside the gateway itself (500 `internal_error`); never shown to the caller.
    InternalFailure {
        Panic => "panic",
        Abandoned => "abandoned",
        NoConnectionInfo => "no_connection_info",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_distinct_snake_case_within_each_list() {
        fn check(all: &[&'static str]) {
            let mut seen = std::collections::HashSet::new();
            for d in all {
                assert!(
                    d.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                    "{d}"
                );
                assert!(seen.insert(*d), "{d} twice");
            }
        }
        check(
            &AuthFailure::ALL
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>(),
        );
        check(
            &UpstreamFailure::ALL
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>(),
        );
        check(
            &Interrupted::ALL
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>(),
        );
        assert_eq!(AuthFailure::TokenExpired.as_str(), "token_expired");
        assert_eq!(Denied::OwnerMismatch.to_string(), "owner_mismatch");
    }
}
