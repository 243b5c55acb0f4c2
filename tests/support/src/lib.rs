//! Test support for Beacon: real servers and real daemon processes.
//!
//! Everything here starts genuine external processes (`nats-server`,
//! `clickhouse-server`, the project's own binaries) on free loopback ports,
//! each with its own temporary directory, so tests can run in parallel.
//! Failures panic with a message that says what was waited for and include
//! the relevant log, because that is what a failing test needs to show.
//!
//! # Layout
//!
//! - [`ports`]: hands out free loopback TCP ports.
//! - [`wait`]: bounded async polling with a clear timeout message, and the
//!   named waits every test uses (`READY`, `LAND`, `DECIDE`, `SOON`, `PROMPT`).
//! - [`ctl`]: the one way tests run `beaconctl`.
//! - [`nats`]: a real `nats-server` with JetStream in a temp dir.
//! - [`clickhouse`]: a real `clickhouse-server` with a minimal generated config.
//! - [`dns`]: one DNS question over UDP and the records of its answer.
//! - [`daemon`]: runs one of the project's binaries as a child process with its log captured.
//! - [`schemas`]: checked-in JSON Schemas against generated ones, and
//!   samples validated against them, for every owner's schema test.
//! - [`proxy`]: a TCP proxy that injects latency, stalls, refusals and
//!   cuts between a daemon and a server, on command.
//! - [`regions`]: three regions' NATS servers, one cluster stretched over
//!   them, from the deployment's `deploy/nats/regions/region.conf`.
//! - [`s3`]: a real S3-compatible server (`moto_server` from PyPI).
//! - [`receivers`]: loopback SMTP and HTTP servers speaking the paid
//!   providers' protocols (SMTP, webhooks, Twilio, Slack, Teams).
//! - `bin` (private): finds external programs on `PATH`.
//! - `child` (private): running, reaping and killing the child a handle owns.
//! - `http` (private): a tiny blocking HTTP/1.0 client over `std::net`.
//! - `logs` (private): reads log files for panic messages and opens them for children.

pub mod clickhouse;
pub mod ctl;
pub mod daemon;
pub mod dns;
pub mod nats;
pub mod ports;
pub mod proxy;
pub mod receivers;
pub mod regions;
pub mod s3;
pub mod schemas;
pub mod wait;

mod bin;
mod child;
pub use child::own_process_groups;
mod http;
mod logs;

pub use clickhouse::ClickHouseServer;
pub use daemon::DaemonProcess;
pub use nats::NatsServer;
pub use ports::free_port;
pub use s3::S3Server;
pub use wait::wait_until;
