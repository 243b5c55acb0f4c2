//! Everything the notifier signs or hashes with a secret.
//!
//! - **Links** ([`Keys::link`], [`Keys::verify`]): unsubscribe and
//!   confirmation tokens are `payload.mac`, both unpadded base64url; the
//!   payload names the purpose, page, subscriber and channel (and for a
//!   confirmation the nonce and expiry), the MAC is HMAC-SHA256 under the
//!   notifier's signing secret, truncated to 128 bits. A forged or altered
//!   link fails verification and changes nothing. Nothing is stored for an
//!   unsubscribe link; a confirmation is single-use because its nonce is
//!   cleared from the subscriber when it is used.
//! - **Suppression hashes** ([`Keys::suppression_hash`]): a keyed hash of
//!   an erased address, so it can be recognised without being kept (a
//!   plain hash of a phone number could be reversed by trying them all).
//! - **Webhook secrets** ([`webhook_secret`]): each webhook endpoint gets
//!   its own Standard Webhooks secret, derived from the channel's secret
//!   and the subscriber, so one receiver cannot sign for another.
//! - **Standard Webhooks** ([`standard_webhooks_signature`]) and
//!   **Twilio** ([`twilio_signature`]) request signatures.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use beacon_contract::messages::ChannelKind;
use ring::hmac;

/// Shortest signing secret accepted.
pub const MIN_SECRET_BYTES: usize = 32;

/// What a link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Removes one endpoint of a subscriber.
    Unsubscribe,
    /// Confirms a pending email endpoint (double opt-in).
    Confirm,
}

/// What a link token says, once verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// What it does.
    pub purpose: Purpose,
    /// Page id.
    pub page: String,
    /// Subscriber id.
    pub subscriber: String,
    /// The endpoint.
    pub channel: ChannelKind,
    /// For a confirmation: the nonce it was issued for.
    pub nonce: Option<String>,
    /// For a confirmation: when it stops working (Unix milliseconds).
    pub expires_at_ms: Option<u64>,
}

/// Why a token was refused. Deliberately vague towards the caller: a
/// forger learns nothing from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a token, or its signature does not match.
    #[error("the link is not valid")]
    Invalid,
}

/// The notifier's signing keys.
#[derive(Clone)]
pub struct Keys {
    key: hmac::Key,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(…)")
    }
}

const LINK_CONTEXT: &[u8] = b"beacon-notifier-link-v1\0";
const SUPPRESSION_CONTEXT: &[u8] = b"beacon-notifier-suppression-v1\0";
const MAC_BYTES: usize = 16;

impl Keys {
    /// Keys from the signing secret (at least [`MIN_SECRET_BYTES`]).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    fn mac(&self, context: &[u8], payload: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(context);
        ctx.update(payload);
        ctx.sign()
    }

    /// A signed token for `link`.
    pub fn link(&self, link: &Link) -> String {
        let purpose = match link.purpose {
            Purpose::Unsubscribe => "u",
            Purpose::Confirm => "c",
        };
        let mut payload = format!(
            "{purpose}|{}|{}|{}",
            link.page,
            link.subscriber,
            link.channel.as_str()
        );
        if link.purpose == Purpose::Confirm {
            payload.push_str(&format!(
                "|{}|{}",
                link.nonce.as_deref().unwrap_or(""),
                link.expires_at_ms.unwrap_or(0)
            ));
        }
        let tag = self.mac(LINK_CONTEXT, payload.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(&tag.as_ref()[..MAC_BYTES])
        )
    }

    /// The link a token stands for, if it was signed with these keys.
    /// Expiry is the caller's to check: it knows the time.
    pub fn verify(&self, token: &str) -> Result<Link, LinkError> {
        let (payload, mac) = token.trim().split_once('.').ok_or(LinkError::Invalid)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| LinkError::Invalid)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| LinkError::Invalid)?;
        let want = self.mac(LINK_CONTEXT, &payload);
        if !constant_time_eq(&mac, &want.as_ref()[..MAC_BYTES]) {
            return Err(LinkError::Invalid);
        }
        let text = String::from_utf8(payload).map_err(|_| LinkError::Invalid)?;
        let parts: Vec<&str> = text.split('|').collect();
        let channel = |word: &str| ChannelKind::parse(word).ok_or(LinkError::Invalid);
        match parts.as_slice() {
            ["u", page, subscriber, kind] => Ok(Link {
                purpose: Purpose::Unsubscribe,
                page: (*page).to_owned(),
                subscriber: (*subscriber).to_owned(),
                channel: channel(kind)?,
                nonce: None,
                expires_at_ms: None,
            }),
            ["c", page, subscriber, kind, nonce, expires] => Ok(Link {
                purpose: Purpose::Confirm,
                page: (*page).to_owned(),
                subscriber: (*subscriber).to_owned(),
                channel: channel(kind)?,
                nonce: Some((*nonce).to_owned()),
                expires_at_ms: Some(expires.parse().map_err(|_| LinkError::Invalid)?),
            }),
            _ => Err(LinkError::Invalid),
        }
    }

    /// The keyed hash an erased `address` of `page` is suppressed under:
    /// 32 hex digits, usable as a KV key part.
    pub fn suppression_hash(&self, page: &str, normalized_address: &str) -> String {
        let tag = self.mac(
            SUPPRESSION_CONTEXT,
            format!("{page}\0{normalized_address}").as_bytes(),
        );
        hex(&tag.as_ref()[..16])
    }
}

/// The Standard Webhooks secret (`whsec_…`) of one subscriber's webhook
/// endpoint, derived from the channel's secret.
pub fn webhook_secret(channel_secret: &[u8], page: &str, subscriber: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, channel_secret);
    let tag = hmac::sign(
        &key,
        format!("beacon-webhook-endpoint-v1\0{page}\0{subscriber}").as_bytes(),
    );
    format!("whsec_{}", STANDARD.encode(tag.as_ref()))
}

/// The `webhook-signature` value for a message: `v1,` and the base64
/// HMAC-SHA256 of `{id}.{timestamp}.{body}` under the secret's bytes.
pub fn standard_webhooks_signature(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<String> {
    let bytes = STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &bytes);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(format!("{id}.{timestamp}.").as_bytes());
    ctx.update(body);
    Some(format!("v1,{}", STANDARD.encode(ctx.sign().as_ref())))
}

/// Twilio's `X-Twilio-Signature` for a POST: base64 HMAC-SHA1, under the
/// account's auth token, of the full URL followed by every parameter's
/// name and value, sorted by name.
pub fn twilio_signature(
    auth_token: &str,
    url: &str,
    params: &std::collections::BTreeMap<String, String>,
) -> String {
    let mut data = url.to_owned();
    for (name, value) in params {
        data.push_str(name);
        data.push_str(value);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    STANDARD.encode(hmac::sign(&key, data.as_bytes()).as_ref())
}

/// Compares in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `text`, hex.
pub fn sha256_hex(text: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> Keys {
        Keys::new(b"0123456789abcdef0123456789abcdef")
    }

    fn unsubscribe() -> Link {
        Link {
            purpose: Purpose::Unsubscribe,
            page: "demo".into(),
            subscriber: "01jd5k2s9x8y7z6w5v4t3r2q1p".into(),
            channel: ChannelKind::Email,
            nonce: None,
            expires_at_ms: None,
        }
    }

    #[test]
    fn links_round_trip_and_forgeries_fail() {
        let keys = keys();
        let token = keys.link(&unsubscribe());
        assert_eq!(keys.verify(&token), Ok(unsubscribe()));
        let confirm = Link {
            purpose: Purpose::Confirm,
            nonce: Some("ab12".into()),
            expires_at_ms: Some(1_700_000_000_000),
            ..unsubscribe()
        };
        assert_eq!(keys.verify(&keys.link(&confirm)), Ok(confirm));

        // Another secret, another subscriber in the payload, a cut MAC,
        // garbage: all refused the same way.
        let other = Keys::new(b"another secret, also thirty-two bytes");
        assert_eq!(other.verify(&token), Err(LinkError::Invalid));
        let (_, mac) = token.split_once('.').expect("two parts");
        let forged_payload = URL_SAFE_NO_PAD.encode("u|demo|someone-else|email");
        assert_eq!(
            keys.verify(&format!("{forged_payload}.{mac}")),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            keys.verify(&token[..token.len() - 2]),
            Err(LinkError::Invalid)
        );
        assert_eq!(keys.verify("nonsense"), Err(LinkError::Invalid));
        assert_eq!(keys.verify(""), Err(LinkError::Invalid));
    }

    proptest! {
        #[test]
        fn any_altered_character_is_refused(index in 0usize..60, replacement in "[A-Za-z0-9_-]") {
            let keys = keys();
            let token = keys.link(&unsubscribe());
            let index = index % token.len();
            let mut altered: Vec<char> = token.chars().collect();
            let new = replacement.chars().next().expect("one char");
            prop_assume!(altered[index] != new && altered[index] != '.');
            altered[index] = new;
            let altered: String = altered.into_iter().collect();
            prop_assert!(keys.verify(&altered).is_err());
        }
    }

    /// The example of the Standard Webhooks specification.
    #[test]
    fn standard_webhooks_reference_vector() {
        let signature = standard_webhooks_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            signature.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    /// The example of Twilio's webhook security documentation.
    #[test]
    fn twilio_reference_vector() {
        let params: std::collections::BTreeMap<String, String> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(
            twilio_signature(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn webhook_secrets_differ_per_subscriber_and_verify() {
        let a = webhook_secret(b"channel secret", "demo", "a");
        let b = webhook_secret(b"channel secret", "demo", "b");
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_"));
        assert!(standard_webhooks_signature(&a, "msg_1", 1, b"{}").is_some());
        assert!(standard_webhooks_signature("not-a-secret", "msg_1", 1, b"{}").is_none());
    }

    #[test]
    fn suppression_hashes_are_keyed_and_stable() {
        let keys = keys();
        let one = keys.suppression_hash("demo", "ada@example.com");
        assert_eq!(one, keys.suppression_hash("demo", "ada@example.com"));
        assert_eq!(one.len(), 32);
        assert_ne!(one, keys.suppression_hash("other", "ada@example.com"));
        assert_ne!(
            one,
            Keys::new(b"another secret, also thirty-two bytes")
                .suppression_hash("demo", "ada@example.com")
        );
    }
}
