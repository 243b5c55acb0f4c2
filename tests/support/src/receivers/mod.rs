//! Loopback servers that speak the protocols of the paid providers the
//! notifier talks to, so tests send real traffic over real sockets:
//!
//! - [`smtp`]: an SMTP server (hand-written, RFC 5321's happy path plus
//!   scripted refusals) that keeps every message it accepts.
//! - [`web`]: an HTTP server that keeps every request and answers as the
//!   test says: a webhook receiver that checks Standard Webhooks
//!   signatures, a Twilio Messages API, Slack and Teams webhooks.
//! - [`signatures`]: the receiving side's signature checks and the
//!   provider's own signing, written from the specifications apart from
//!   the notifier's code.

pub mod signatures;
pub mod smtp;
pub mod web;
