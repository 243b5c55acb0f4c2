//! The runtime every Beacon daemon runs on: how a process connects to the
//! bus, publishes and consumes with the guarantees of the design, holds a
//! lease, follows buckets, retries, serves its bus API, shuts down and
//! reports. It builds on `beacon-contract` and knows nothing of pages.
//!
//! # Layout
//!
//! - [`connect`]: NATS connection with credentials and start-up retries.
//! - [`publish`]: publishing with `Nats-Msg-Id` and an awaited stream ack.
//! - [`consume`]: the consumer loop with ack, nak-with-delay and dead letters.
//! - [`lease`]: leader election with fencing for singleton roles, per partition.
//! - [`buckets`]: opening KV buckets and following their values and changes.
//! - [`degradation`]: the degradation level a process sees, from its causes.
//! - [`history`]: what a stream holds: a subject's latest message, reading and following a filter.
//! - [`regional`]: operator writes to the region's own stream while the cluster is out of reach.
//! - [`retry`]: retryable vs permanent errors, the one retry policy and backoff.
//! - [`service`]: a daemon's operator API endpoints served as one NATS service.
//! - [`shutdown`]: cancellation, task tracking, grace period.
//! - [`timers`]: work due at a time: keyed timers, and durable ones rebuilt from KV `timers`.
//! - [`telemetry`]: tracing, the metrics registry and the admin port.
//! - [`daemon`]: shared flags and the start/run/finish path of every process.

pub mod buckets;
pub mod connect;
pub mod consume;
pub mod daemon;
pub mod degradation;
pub mod history;
pub mod lease;
pub mod publish;
pub mod regional;
pub mod retry;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod timers;
