//! What a subscriber may give as an address, checked before anything is
//! stored, with an error that says what is wrong.
//!
//! - Email: one plain address (`local@domain`), at most 254 characters, no
//!   display name, no whitespace or control characters (so nothing can
//!   smuggle a header into a message), parsed by lettre's RFC 5322 parser.
//! - SMS: E.164 (`+` and 8 to 15 digits).
//! - Webhook, Slack, Teams: an http(s) URL with a host, no credentials, at
//!   most 2,048 characters; its addresses are checked by the
//!   [`crate::ssrf`] guard at sign-up and again at every send.
//!
//! [`normalize`] gives the form used to find an address again (duplicate
//! sign-ups, STOP replies, erasure, suppression hashes).

use beacon_contract::messages::{ChannelKind, SubscriberChannel};

/// Longest email address (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;
/// Longest URL.
pub const MAX_URL: usize = 2048;

/// Checks one channel's address; the error is for people.
pub fn check(channel: &SubscriberChannel) -> Result<(), String> {
    let address = channel.address();
    if address.chars().any(char::is_control) {
        return Err("must not contain control characters (line breaks, tabs)".into());
    }
    match channel.kind() {
        ChannelKind::Email => check_email(address),
        ChannelKind::Sms => {
            if beacon_page::config::channels::sms::is_e164(address) {
                Ok(())
            } else {
                Err(format!(
                    "{address:?} is not an E.164 phone number like +15551234567"
                ))
            }
        }
        ChannelKind::Webhook | ChannelKind::Slack | ChannelKind::Teams => {
            parse_url(address).map(|_| ())
        }
    }
}

fn check_email(address: &str) -> Result<(), String> {
    let bad = || format!("{address:?} is not an email address like name@example.com");
    if address.is_empty() || address.len() > MAX_EMAIL {
        return Err(format!("must be 1 to {MAX_EMAIL} characters"));
    }
    if address
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';' | '"'))
    {
        return Err(bad());
    }
    let parsed: lettre::Address = address.parse().map_err(|_| bad())?;
    // A dotless domain only works inside one organisation's mail system.
    if !parsed.domain().contains('.') {
        return Err(bad());
    }
    Ok(())
}

/// Parses a subscriber's URL: http(s), a host, no credentials.
pub fn parse_url(text: &str) -> Result<url::Url, String> {
    if text.len() > MAX_URL {
        return Err(format!("must be at most {MAX_URL} characters"));
    }
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?} must be an http or https URL"));
    }
    if url.host().is_none() {
        return Err(format!("{text:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{text:?} must not carry a user name or password"));
    }
    Ok(url)
}

/// The form an address is compared in: email addresses in lowercase (the
/// domain is case-insensitive, and nobody relies on a case-sensitive local
/// part), the rest as given.
pub fn normalize(kind: ChannelKind, address: &str) -> String {
    match kind {
        ChannelKind::Email => address.trim().to_lowercase(),
        _ => address.trim().to_owned(),
    }
}

/// The channel kind an address looks like, for erasure by address.
pub fn kind_of(address: &str) -> ChannelKind {
    if address.starts_with('+') {
        ChannelKind::Sms
    } else if address.contains("://") {
        ChannelKind::Webhook
    } else {
        ChannelKind::Email
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(a: &str) -> SubscriberChannel {
        SubscriberChannel::Email { address: a.into() }
    }

    #[test]
    fn emails_are_plain_addresses_only() {
        let table: &[(&str, bool)] = &[
            ("ada@example.com", true),
            ("ada.lovelace+status@mail.example.co.uk", true),
            ("ADA@Example.COM", true),
            ("ada", false),
            ("ada@localhost", false),
            ("@example.com", false),
            ("ada@", false),
            ("Ada <ada@example.com>", false),
            ("ada@example.com\r\nBcc: eve@example.com", false),
            ("ada@example.com\nX-Evil: 1", false),
            ("ada@example.com, eve@example.com", false),
            ("ada@exa mple.com", false),
            ("", false),
        ];
        for (address, ok) in table {
            assert_eq!(
                check(&email(address)).is_ok(),
                *ok,
                "{address:?}: {:?}",
                check(&email(address))
            );
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(check(&email(&long)).is_err());
    }

    #[test]
    fn phones_are_e164_and_urls_http() {
        let sms = |p: &str| SubscriberChannel::Sms { phone: p.into() };
        assert!(check(&sms("+15551234567")).is_ok());
        for bad in [
            "5551234567",
            "+1 555 123 4567",
            "+1555",
            "+15551234567\n",
            "tel:+15551234567",
        ] {
            let error = check(&sms(bad)).expect_err(bad);
            assert!(!error.is_empty());
        }
        let hook = |u: &str| SubscriberChannel::Webhook { url: u.into() };
        assert!(check(&hook("https://hooks.example.com/beacon?x=1")).is_ok());
        for bad in [
            "hooks.example.com",
            "ftp://example.com/",
            "https://user:pass@example.com/",
            "javascript:alert(1)",
            "https://example.com/\r\nHost: evil",
        ] {
            assert!(check(&hook(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn normal_forms() {
        assert_eq!(
            normalize(ChannelKind::Email, " Ada@Example.COM "),
            "ada@example.com"
        );
        assert_eq!(normalize(ChannelKind::Sms, "+15551234567"), "+15551234567");
        assert_eq!(kind_of("+15551234567"), ChannelKind::Sms);
        assert_eq!(kind_of("https://x.example/y"), ChannelKind::Webhook);
        assert_eq!(kind_of("a@b.example"), ChannelKind::Email);
    }
}
