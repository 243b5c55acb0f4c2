//! API keys: their text form, their stored hash, and checking one.
//!
//! A key is `bk_{id}_{secret}`: `id` is 16 lowercase hex digits and names
//! the stored record; `secret` is 32 random bytes as 64 lowercase hex
//! digits. Only the SHA-256 of the secret is stored (KV `apikeys`), so a
//! leaked bucket does not leak keys; the whole key is shown once, when it is
//! created. Checking compares hashes in constant time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use beacon_contract::api::{ApiKeyView, ApiScope};
use beacon_contract::event::Message;
use rand::RngCore;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// An HTTP API key as the api daemon stores it: the value under `{id}` in
/// KV `apikeys`. Only a hash of the secret is kept; the key itself is shown
/// once, when it is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRecord {
    /// Key id: the public part of the key, `bk_{id}_…`.
    pub id: String,
    /// The page it may act on.
    pub page: String,
    /// A name for people, e.g. `ci deploys`.
    pub name: String,
    /// What it may do, e.g. `incidents:write`.
    pub scopes: Vec<ApiScope>,
    /// SHA-256 of the secret part, lowercase hex.
    pub secret_sha256: String,
    /// Requests per minute it may make.
    pub rate_per_minute: u32,
    /// When it was created (Unix milliseconds).
    pub created_at_ms: u64,
    /// Who created it.
    pub created_by: String,
    /// When it was revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<u64>,
}

impl Message for ApiKeyRecord {
    const KIND: &'static str = "api_key";
    const VERSION: u32 = 1;
}

/// Default requests per minute of a key.
pub const DEFAULT_RATE_PER_MINUTE: u32 = 600;
/// Most requests per minute a key may be given.
pub const MAX_RATE_PER_MINUTE: u32 = 100_000;

/// A freshly made key: the text to hand out once, and what to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// `bk_{id}_{secret}`.
    pub text: String,
    /// The id.
    pub id: String,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
}

/// Makes a new random key.
pub fn generate() -> NewKey {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    let mut rng = rand::rng();
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let (id, secret) = (hex(&id), hex(&secret));
    NewKey {
        text: format!("bk_{id}_{secret}"),
        secret_sha256: sha256_hex(&secret),
        id,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `text`, lowercase hex.
pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// Splits key text into (id, secret); `None` when it is not a key.
pub fn parse(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix("bk_")?;
    let (id, secret) = rest.split_once('_')?;
    let hex_of = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    (hex_of(id, 16) && hex_of(secret, 64)).then_some((id, secret))
}

/// Equality that takes the same time wherever the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a key was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No key was sent.
    #[error("an API key is required: send `Authorization: Bearer <key>` (or `OAuth <key>`)")]
    Missing,
    /// What was sent is not a key.
    #[error("the API key is malformed")]
    Malformed,
    /// No such key, or the secret does not match.
    #[error("the API key is not valid")]
    Unknown,
    /// The key was revoked.
    #[error("the API key was revoked")]
    Revoked,
    /// The key is for another page.
    #[error("the API key is not for this page")]
    WrongPage,
    /// The key lacks the scope the route needs.
    #[error("the API key lacks the scope this needs")]
    MissingScope,
}

impl Refused {
    /// A bounded label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Missing => "missing",
            Refused::Malformed => "malformed",
            Refused::Unknown => "unknown",
            Refused::Revoked => "revoked",
            Refused::WrongPage => "wrong_page",
            Refused::MissingScope => "missing_scope",
        }
    }

    /// 401 when the caller is not known, 403 when it is but may not.
    pub fn is_forbidden(self) -> bool {
        matches!(self, Refused::WrongPage | Refused::MissingScope)
    }
}

/// What the cache knows of one key id: the bucket revision it was read at
/// and the record, or `None` once the key was deleted.
#[derive(Debug, Clone)]
struct Known {
    revision: u64,
    record: Option<ApiKeyRecord>,
}

/// Every stored key, kept equal to KV `apikeys` by a follower and filled on
/// a miss by reading the bucket ([`crate::admin::read_through`]), so a key
/// is accepted as soon as its creation was acknowledged, whichever instance
/// is asked and however far its follower lags.
///
/// Each id keeps the bucket revision it was last seen at, and an older
/// revision never replaces a newer one: a read-through that raced the
/// follower cannot bring back a record the follower has since revoked or
/// deleted (a deletion is kept as a tombstone for that reason).
#[derive(Debug, Clone, Default)]
pub struct Keys(Arc<RwLock<HashMap<String, Known>>>);

impl Keys {
    /// Records what the bucket holds for `id` at `revision` (`None`: deleted),
    /// unless a later revision is already known.
    pub fn set(&self, id: &str, revision: u64, record: Option<ApiKeyRecord>) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        match map.get(id) {
            Some(known) if known.revision > revision => {}
            _ => {
                map.insert(id.to_owned(), Known { revision, record });
            }
        }
    }

    /// Whether the bucket's entry for `id` has been seen (a deletion counts).
    pub fn has_seen(&self, id: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
    }

    /// The record of `id`.
    pub fn get(&self, id: &str) -> Option<ApiKeyRecord> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .and_then(|known| known.record.clone())
    }

    /// Every record, by id.
    pub fn all(&self) -> Vec<ApiKeyRecord> {
        let mut all: Vec<ApiKeyRecord> = self
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(|known| known.record.clone())
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// The record a key text names, if its secret matches and it is not
    /// revoked.
    pub fn authenticate(&self, text: &str) -> Result<ApiKeyRecord, Refused> {
        let (id, secret) = parse(text).ok_or(Refused::Malformed)?;
        let record = self.get(id).ok_or(Refused::Unknown)?;
        if !constant_time_eq(
            sha256_hex(secret).as_bytes(),
            record.secret_sha256.as_bytes(),
        ) {
            return Err(Refused::Unknown);
        }
        if record.revoked_at_ms.is_some() {
            return Err(Refused::Revoked);
        }
        Ok(record)
    }
}

/// Whether `record` may do what `scope` guards on `page`.
pub fn authorize(record: &ApiKeyRecord, page: &str, scope: ApiScope) -> Result<(), Refused> {
    if record.page != page {
        return Err(Refused::WrongPage);
    }
    if !record.scopes.iter().any(|held| held.allows(scope)) {
        return Err(Refused::MissingScope);
    }
    Ok(())
}

/// A record as listed: without its hash.
pub fn view(record: &ApiKeyRecord) -> ApiKeyView {
    ApiKeyView {
        id: record.id.clone(),
        page: record.page.clone(),
        name: record.name.clone(),
        scopes: record.scopes.clone(),
        rate_per_minute: record.rate_per_minute,
        created_at_ms: record.created_at_ms,
        created_by: record.created_by.clone(),
        revoked_at_ms: record.revoked_at_ms,
    }
}

/// The actor an API key's writes are recorded as.
pub fn actor(record: &ApiKeyRecord) -> String {
    format!("apikey:{} ({})", record.id, record.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stored(new: &NewKey, scopes: Vec<ApiScope>) -> ApiKeyRecord {
        ApiKeyRecord {
            id: new.id.clone(),
            page: "demo".into(),
            name: "ci".into(),
            scopes,
            secret_sha256: new.secret_sha256.clone(),
            rate_per_minute: 60,
            created_at_ms: 1,
            created_by: "alice".into(),
            revoked_at_ms: None,
        }
    }

    #[test]
    fn a_generated_key_parses_and_authenticates_and_a_changed_one_does_not() {
        let keys = Keys::default();
        let new = generate();
        keys.set(
            &new.id,
            1,
            Some(stored(&new, vec![ApiScope::IncidentsWrite])),
        );
        let record = keys.authenticate(&new.text).expect("valid");
        assert_eq!(record.id, new.id);
        let mut forged = new.text.clone();
        let last = forged.pop().expect("a char");
        forged.push(if last == '0' { '1' } else { '0' });
        assert_eq!(keys.authenticate(&forged), Err(Refused::Unknown));
        assert_eq!(keys.authenticate("bk_nope"), Err(Refused::Malformed));
        assert_eq!(keys.authenticate(&generate().text), Err(Refused::Unknown));
        let mut revoked = stored(&new, vec![]);
        revoked.revoked_at_ms = Some(2);
        keys.set(&new.id, 2, Some(revoked));
        assert_eq!(keys.authenticate(&new.text), Err(Refused::Revoked));
    }

    #[test]
    fn an_older_revision_never_replaces_a_newer_one() {
        let keys = Keys::default();
        let new = generate();
        assert!(!keys.has_seen(&new.id));
        let mut revoked = stored(&new, vec![ApiScope::IncidentsRead]);
        revoked.revoked_at_ms = Some(2);
        keys.set(&new.id, 5, Some(revoked));
        // A read-through that read revision 4 before the revocation landed.
        keys.set(
            &new.id,
            4,
            Some(stored(&new, vec![ApiScope::IncidentsRead])),
        );
        assert_eq!(keys.authenticate(&new.text), Err(Refused::Revoked));
        // A deletion is remembered, so a stale read cannot bring the key back.
        keys.set(&new.id, 6, None);
        keys.set(
            &new.id,
            5,
            Some(stored(&new, vec![ApiScope::IncidentsRead])),
        );
        assert!(keys.has_seen(&new.id));
        assert_eq!(keys.authenticate(&new.text), Err(Refused::Unknown));
        assert!(keys.all().is_empty());
    }

    #[test]
    fn scopes_and_pages_are_enforced_and_write_implies_read() {
        let new = generate();
        let record = stored(
            &new,
            vec![ApiScope::IncidentsWrite, ApiScope::ComponentsRead],
        );
        assert!(authorize(&record, "demo", ApiScope::IncidentsWrite).is_ok());
        assert!(authorize(&record, "demo", ApiScope::IncidentsRead).is_ok());
        assert!(authorize(&record, "demo", ApiScope::ComponentsRead).is_ok());
        assert_eq!(
            authorize(&record, "demo", ApiScope::ComponentsWrite),
            Err(Refused::MissingScope)
        );
        assert_eq!(
            authorize(&record, "other", ApiScope::IncidentsRead),
            Err(Refused::WrongPage)
        );
    }

    proptest! {
        #[test]
        fn nothing_but_a_well_formed_key_parses(text in ".{0,100}") {
            if let Some((id, secret)) = parse(&text) {
                prop_assert_eq!(id.len(), 16);
                prop_assert_eq!(secret.len(), 64);
                prop_assert!(text.starts_with("bk_"));
            }
        }
    }
}
