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
//! - [`safe_json`]: JSON that is inert inside HTML, for everything served as JSON.

pub mod config;
pub mod origin;
pub mod schema;

/// JSON with `<`, `>` and `&` written as `\u003c`, `\u003e`, `\u0026`: the
/// same value to every JSON reader, and inert if someone pastes it into
/// HTML. These bytes only occur inside strings, so replacing them is safe.
/// Everything the publisher renders as JSON, and what the edge rewrites
/// of it, goes through here.
pub fn safe_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c => out.push(c),
        }
    }
    out.push('\n');
    out.into_bytes()
}
