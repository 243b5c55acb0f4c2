//! Beacon's bus contract: everything two daemons must agree on to talk.
//! It depends on nothing else of Beacon's; `beacon-runtime` and
//! `beacon-page` build on it, and every daemon on all three.
//!
//! # Layout
//!
//! - [`names`]: every stream, subject, KV bucket and API subject, the id
//!   rules, and how a page is assigned to a partition.
//! - [`topology`]: stream/bucket settings and the idempotent [`topology::ensure`].
//! - [`degradation`]: the levels 0–3 of what still works when parts are gone.
//! - [`hlc`]: hybrid logical clock timestamps.
//! - [`event`]: the versioned envelope, event ids and decoding.
//! - [`messages`]: the body of every message and KV value, one module per
//!   stream or bucket (health, status, incident, maintenance, probes,
//!   changelog, subscribers, deliveries, uptime); records only one daemon
//!   reads or writes live in that daemon.
//! - [`incident`]: an incident as an order-independent fold over its events.
//! - [`maintenance`]: a maintenance window as a fold, and its next step.
//! - [`api`]: the reply envelope and the request/reply types of every
//!   owner's endpoints, one module per owner (decider, notifier, recorder,
//!   publisher, the api daemon's keys).
//! - [`schema`]: JSON Schemas generated from the types above.
//!
//! The incident and maintenance folds live here rather than with the page
//! domain: they are what the events mean, every reader (decider, publisher,
//! notifier, recorder, every region) must fold them alike to converge, and
//! the decider's replies carry their result.

pub mod api;
pub mod degradation;
pub mod event;
pub mod hlc;
pub mod incident;
pub mod maintenance;
pub mod messages;
pub mod names;
pub mod schema;
pub mod topology;
