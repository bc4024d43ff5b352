//! The `Ordergate-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
//! The timestamp is signed with the body so a receiver can refuse replays of old deliveries;
//! each attempt is signed afresh, so a retried event carries the time it was sent.
//!
//! HMAC-SHA256 comes from aws-lc-rs, the one crypto provider (request signatures use it too);
//! the RFC 4231 test vectors below pin it.

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use aws_lc_rs::hmac;
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// The header value for `body` sent at `unix` seconds.
pub fn header_value(secret: &[u8], unix: u64, body: &[u8]) -> String {
    let mut message = Vec::with_capacity(body.len() + 21);
    message.extend_from_slice(unix.to_string().as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    format!("t={unix},v1={}", hex::encode(hmac_sha256(secret, &message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 §4.2, §4.3 and §4.7 (a key longer than the block).
    #[test]
    fn matches_the_rfc_4231_vectors() {
        assert_eq!(
            hex::encode(hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm."
            )),
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"
        );
    }

    #[test]
    fn the_header_signs_the_timestamp_with_the_body() {
        let value = header_value(b"k", 1700000000, b"{}");
        let mac = hex::encode(hmac_sha256(b"k", b"1700000000.{}"));
        assert_eq!(value, format!("t=1700000000,v1={mac}"));
        assert_ne!(value, header_value(b"k", 1700000001, b"{}"));
        assert_ne!(value, header_value(b"k", 1700000000, b"{ }"));
    }
}
