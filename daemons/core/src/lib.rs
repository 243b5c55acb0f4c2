//! Beacon's shared contract and plumbing. Every daemon depends on this crate
//! and nothing else of Beacon's.
//!
//! # Layout
//!
//! - [`names`]: every stream, subject, KV bucket and API subject, and the id rules.
//! - [`topology`]: stream/bucket settings and the idempotent [`topology::ensure`].
//! - [`hlc`]: hybrid logical clock timestamps.
//! - [`event`]: the versioned envelope, event ids and decoding.
//! - [`messages`]: the body of every message and KV value.
//! - [`config`]: the page config, parsed and validated in two phases.
//! - [`incident`]: an incident as an order-independent fold over its events.
//! - [`maintenance`]: a maintenance window as a fold, and its next step.
//! - [`api`]: request/reply types of the owners' endpoints.
//! - [`publish`]: publishing with `Nats-Msg-Id` and an awaited stream ack.
//! - [`consume`]: the consumer loop with ack, nak-with-delay and dead letters.
//! - [`connect`]: NATS connection with credentials and start-up retries.
//! - [`lease`]: leader election with fencing for singleton roles, per partition.
//! - [`buckets`]: opening KV buckets and following their values and changes.
//! - [`history`]: what a stream holds: a subject's latest message, reading and following a filter.
//! - [`retry`]: retryable vs permanent errors, the one retry policy and backoff.
//! - [`service`]: a daemon's operator API endpoints served as one NATS service.
//! - [`shutdown`]: cancellation, task tracking, grace period.
//! - [`timers`]: work due at a time: keyed timers, and durable ones rebuilt from KV `timers`.
//! - [`telemetry`]: tracing, the metrics registry and the admin port.
//! - [`daemon`]: shared flags and the start/run/finish path of every process.
//! - [`origin`]: the origin directory layout shared by publisher and edge.
//! - [`schema`]: JSON Schemas generated from the types above.

pub mod api;
pub mod buckets;
pub mod config;
pub mod connect;
pub mod consume;
pub mod daemon;
pub mod event;
pub mod history;
pub mod hlc;
pub mod incident;
pub mod lease;
pub mod maintenance;
pub mod messages;
pub mod names;
pub mod origin;
pub mod publish;
pub mod retry;
pub mod schema;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod timers;
pub mod topology;
