//! Signatures as a receiver or a provider computes them, written from the
//! specifications (not shared with the notifier's code, so a test of one
//! against the other means something).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::hmac;

/// Whether `signature_header` (`v1,<b64> v1,<b64>…`) holds a valid
/// Standard Webhooks signature of `{id}.{timestamp}.{body}` under `secret`
/// (`whsec_<b64>`).
pub fn standard_webhooks_valid(
    secret: &str,
    id: &str,
    timestamp: &str,
    body: &[u8],
    signature_header: &str,
) -> bool {
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|s| STANDARD.decode(s).ok())
    else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    signature_header.split(' ').any(|part| {
        part.strip_prefix("v1,")
            .and_then(|b64| STANDARD.decode(b64).ok())
            .is_some_and(|tag| hmac::verify(&key, &signed, &tag).is_ok())
    })
}

/// `X-Twilio-Signature` of a POST to `url` with `params`, as Twilio signs
/// its webhooks.
pub fn twilio(auth_token: &str, url: &str, params: &BTreeMap<String, String>) -> String {
    let mut data = url.to_owned();
    for (name, value) in params {
        data.push_str(name);
        data.push_str(value);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    STANDARD.encode(hmac::sign(&key, data.as_bytes()).as_ref())
}
