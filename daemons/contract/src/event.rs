//! The envelope every bus message travels in, and its encoding.
//!
//! An envelope names its kind and version, carries a sortable event id, an
//! HLC timestamp and the region it came from. Decoding checks kind and
//! version before the body, so a message from a newer or different producer
//! is refused with a precise reason instead of being half-read.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ulid::Ulid;

use crate::hlc::{Hlc, HlcClock};

/// A unique, time-sortable event id (a ULID, 26 Crockford base32 characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub Ulid);

impl EventId {
    /// A fresh id.
    pub fn new() -> Self {
        Self(Ulid::new())
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for EventId {
    type Err = ulid::DecodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ulid::from_string(s).map(Self)
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_text(deserializer)
    }
}

/// Deserializes a string into `T` with its `FromStr`, without copying the
/// string first: ids and timestamps are in every message a consumer
/// decodes.
pub(crate) fn parse_text<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    struct Text<T>(std::marker::PhantomData<T>);

    impl<T> serde::de::Visitor<'_> for Text<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
            text.parse().map_err(E::custom)
        }
    }

    deserializer.deserialize_str(Text(std::marker::PhantomData))
}

impl JsonSchema for EventId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EventId".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9A-HJKMNP-TV-Z]{26}$",
            "description": "ULID: unique and sortable by creation time"
        })
    }
}

/// A message body that travels on the bus.
///
/// `KIND` and `VERSION` are written into every envelope. Bump `VERSION` when
/// a change is not backward compatible, and keep decoding the old version
/// until no producer sends it.
pub trait Message: Serialize + DeserializeOwned + JsonSchema {
    /// Stable name of the message kind, e.g. `health_result`.
    const KIND: &'static str;
    /// Version of the body's shape.
    const VERSION: u32;
}

/// The envelope: who, when, what kind, and the body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope<T> {
    /// The message kind, equal to `T::KIND`.
    pub kind: String,
    /// The body version, equal to `T::VERSION`.
    pub version: u32,
    /// Unique id; also the `Nats-Msg-Id` the event is published with.
    pub id: EventId,
    /// When the event happened, by the origin's hybrid logical clock.
    pub hlc: Hlc,
    /// Region (or `global`) of the process that created the event.
    pub origin: String,
    /// The body.
    pub data: T,
}

/// Written by hand so the schema pins `kind` and `version` to `T`'s: a
/// derived schema would accept any kind, and a message of the wrong kind
/// would validate against another kind's schema.
impl<T: Message> JsonSchema for Envelope<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Envelope_{}_v{}", T::KIND, T::VERSION).into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "description": "A Beacon bus message: kind, version, id, HLC timestamp, origin region and body",
            "additionalProperties": false,
            "required": ["kind", "version", "id", "hlc", "origin", "data"],
            "properties": {
                "kind": {"const": T::KIND, "description": "The message kind"},
                "version": {"const": T::VERSION, "description": "The body version"},
                "id": generator.subschema_for::<EventId>(),
                "hlc": generator.subschema_for::<Hlc>(),
                "origin": {"type": "string", "description": "Region (or `global`) that created the event"},
                "data": generator.subschema_for::<T>(),
            }
        })
    }
}

impl<T: Message> Envelope<T> {
    /// Wraps `data` in a new envelope with a fresh id and timestamp.
    pub fn new(clock: &HlcClock, origin: &str, data: T) -> Self {
        Self::with_id(EventId::new(), clock.now(), origin, data)
    }

    /// Wraps `data` with a given id and timestamp (replays and tests).
    pub fn with_id(id: EventId, hlc: Hlc, origin: &str, data: T) -> Self {
        Self {
            kind: T::KIND.to_owned(),
            version: T::VERSION,
            id,
            hlc,
            origin: origin.to_owned(),
            data,
        }
    }

    /// Serializes the envelope to JSON bytes.
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Decodes an envelope of kind `T`, refusing other kinds and versions.
    ///
    /// Parses once when the bytes are a good envelope (the hot path of
    /// every consumer); only a failure parses the head again, to say
    /// whether the kind, the version or the body is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        #[derive(Deserialize)]
        struct Head {
            kind: String,
            version: u32,
        }
        let whole = match serde_json::from_slice::<Self>(bytes) {
            Ok(envelope) if envelope.kind == T::KIND && envelope.version == T::VERSION => {
                return Ok(envelope)
            }
            whole => whole,
        };
        let head: Head =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::NotAnEnvelope(e.to_string()))?;
        if head.kind != T::KIND {
            return Err(DecodeError::WrongKind {
                expected: T::KIND,
                found: head.kind,
            });
        }
        if head.version != T::VERSION {
            return Err(DecodeError::UnsupportedVersion {
                kind: T::KIND,
                found: head.version,
                supported: T::VERSION,
            });
        }
        whole.map_err(|e| DecodeError::InvalidBody {
            kind: T::KIND,
            reason: e.to_string(),
        })
    }
}

/// Why bytes could not be decoded into an envelope. Always permanent: the
/// same bytes will never decode on a retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or no `kind`/`version` fields.
    #[error("not a Beacon envelope: {0}")]
    NotAnEnvelope(String),
    /// A different message kind than the consumer expects.
    #[error("expected a {expected} message, found {found}")]
    WrongKind {
        /// The kind the consumer reads.
        expected: &'static str,
        /// The kind in the envelope.
        found: String,
    },
    /// A version this build does not read.
    #[error("{kind} version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        /// The message kind.
        kind: &'static str,
        /// The version in the envelope.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The envelope is well-formed but the body is not.
    #[error("invalid {kind} body: {reason}")]
    InvalidBody {
        /// The message kind.
        kind: &'static str,
        /// What serde reported.
        reason: String,
    },
}
