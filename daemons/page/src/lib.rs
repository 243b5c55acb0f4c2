//! Beacon's page domain: what a status page is made of and where it is
//! published. It builds on `beacon-contract`.
//!
//! # Layout
//!
//! - [`config`]: the page config, parsed and validated in two phases; one
//!   module per check kind (`config::checks`) and per channel kind
//!   (`config::channels`); the condition language; SLA and notification
//!   settings; and the `config.apply` / `config.get` endpoints
//!   (`config::api`), whose bodies are the config itself.
//! - [`origin`]: the origin directory layout shared by publisher and edge.
//! - [`schema`]: the page config's JSON Schemas.

pub mod config;
pub mod origin;
pub mod schema;
