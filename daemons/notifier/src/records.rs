//! What the notifier alone stores, and the inbound SMS it hands itself.
//!
//! - [`NoticeThread`] (KV `notices`): the planner's memory of one thread of
//!   news, with its sends ([`ThreadSend`]) and the window flushes waiting
//!   for their time ([`PendingFlush`]).
//! - [`DeliveryLedger`] (KV `ledger`): what a NOTIFY batch already sent.
//! - [`Suppression`] (KV `suppressions`): an erased address, kept only as a
//!   keyed hash.
//! - [`SmsInboundRequest`] and [`SmsInboundResult`]: an SMS reply as the
//!   provider's webhook posted it, and what it did.
//!
//! Their schemas are generated and checked by `tests/schemas.rs` into
//! `schemas/notifier/`.

use beacon_contract::event::Message;
use beacon_contract::messages::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One send of a notice thread: who got it is what the rule says, applied
/// to the subscribers in turn ([`NoticeThread`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThreadSend {
    /// Its place in the thread, from 0.
    pub index: u32,
    /// When it was planned (Unix milliseconds).
    pub at_ms: u64,
    /// What caused it: the event or update id, or `flush-{after}`.
    pub source: String,
    /// Components the news is about; a subscriber is in the audience when
    /// its filter names one of them (or it has no filter).
    pub components: Vec<String>,
    /// None: sent at once, to the audience whose window is closed (and to
    /// instant subscribers). Some(k): the window flush of those whose last
    /// message was send `k`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u32>,
    /// Notice id.
    pub notice: String,
    /// Batches per channel, fixed when planned so a replay makes the same
    /// batches.
    pub chunks: Vec<SendChunks>,
    /// Whether every batch is in `NOTIFY`.
    pub published: bool,
}

/// How many batches one channel of a send has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendChunks {
    /// Channel kind.
    pub channel: ChannelKind,
    /// Number of batches.
    pub count: u32,
}

/// A window flush waiting for its time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingFlush {
    /// The send whose recipients' window it closes.
    pub after: u32,
    /// When (Unix milliseconds).
    pub due_ms: u64,
    /// Components of the updates it holds.
    pub components: Vec<String>,
}

/// The notifier planner's memory of one thread of news (an incident, a
/// maintenance window, a component's status, the digest): the value under
/// `{page}.{thread}` in KV `notices`. It lists sends, never recipients, so
/// it stays small for a million subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoticeThread {
    /// Page id.
    pub page: String,
    /// Thread id, e.g. `incident-01j…`, `component-api`, `digest`.
    pub thread: String,
    /// Sends so far, in order.
    pub sends: Vec<ThreadSend>,
    /// Window flushes waiting.
    #[serde(default)]
    pub pending: Vec<PendingFlush>,
    /// The newest notice: what a flush sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<Notice>,
    /// Lane of the newest notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_lane: Option<Lane>,
}

impl Message for NoticeThread {
    const KIND: &'static str = "notice_thread";
    const VERSION: u32 = 1;
}

/// What became of each delivery of one batch: the value under the batch's
/// event id in KV `ledger`. A redelivered batch sends only what is still
/// pending, so a restart does not resend what a provider accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryLedger {
    /// One character per subscriber of the batch, in its order:
    /// `.` not sent yet, `r` failed and will be retried, `d` delivered,
    /// `x` given up, `s` skipped (no such subscriber or endpoint any more).
    pub states: String,
}

impl Message for DeliveryLedger {
    const KIND: &'static str = "delivery_ledger";
    const VERSION: u32 = 1;
}

/// Why an address may not be subscribed again without its owner's consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    /// Its owner's data was erased (GDPR).
    Erased,
}

/// A suppressed address: the value under `{page}.{hash}` in KV
/// `suppressions`, where the hash is a keyed hash of the address. Operator
/// adds and imports refuse it; a double opt-in (its owner's consent) lifts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Suppression {
    /// Page id.
    pub page: String,
    /// Why.
    pub reason: SuppressionReason,
    /// When (Unix milliseconds).
    pub at_ms: u64,
}

impl Message for Suppression {
    const KIND: &'static str = "suppression";
    const VERSION: u32 = 1;
}

/// An SMS the provider received for us, as its webhook posted it, for the
/// notifier to check and act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsInboundRequest {
    /// The full URL the provider posted to (it is part of what it signs).
    pub url: String,
    /// The form parameters, as posted.
    pub params: std::collections::BTreeMap<String, String>,
    /// The `X-Twilio-Signature` header.
    pub signature: String,
}

/// What an inbound SMS did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmsAction {
    /// STOP and its synonyms: the number's SMS endpoints are stopped.
    Stop,
    /// START and its synonyms: they are active again.
    Start,
    /// Anything else: nothing changed.
    Ignored,
}

/// What the notifier did with an inbound SMS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsInboundResult {
    /// What it did.
    pub action: SmsAction,
    /// Subscribers changed.
    pub changed: u32,
}
