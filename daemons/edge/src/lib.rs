//! The edge: serves published pages from an origin directory to end users,
//! and keeps serving the last good version when everything behind it is down.
//!
//! # Layout
//!
//! - [`files`]: pure URL-to-file mapping, content types and ETag matching.
//! - [`serve`]: the HTTP handler reading the live version of a page.

pub mod files;
pub mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use beacon_core::daemon::Process;
use beacon_core::origin;
use beacon_core::telemetry::serve_router;

use crate::serve::Site;

/// Edge settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// Address to serve users on.
    pub listen: SocketAddr,
    /// Origin directory the publisher writes to.
    pub origin: PathBuf,
    /// Page served at `/`.
    pub page: String,
}

impl EdgeConfig {
    /// Checks the settings, returning every problem.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if let Err(e) = beacon_core::names::check_token(&self.page) {
            errors.push(format!("--page: {e}"));
        }
        if self.origin.exists() && !self.origin.is_dir() {
            errors.push(format!(
                "--origin {}: exists and is not a directory",
                self.origin.display()
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Why the edge could not serve.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A metric could not be registered (a bug).
    #[error(transparent)]
    Metric(#[from] beacon_core::telemetry::MetricError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// Serves users until shutdown. Ready as soon as the listener is bound:
/// serving needs nothing but the origin directory.
pub async fn run(process: Process, config: EdgeConfig) -> Result<(), RunError> {
    let responses = process.metrics.counter(
        "responses_total",
        "Responses to users, by status class",
        &["class"],
    )?;
    let site = Arc::new(Site {
        page_dir: origin::page_dir(&config.origin, &config.page),
        responses,
    });
    let router = Router::new().fallback(serve::handle).with_state(site);
    let bound = serve_router(config.listen, router, &process.shutdown)
        .await
        .map_err(|e| RunError::Listen {
            addr: config.listen,
            reason: e.to_string(),
        })?;
    process.readiness.set(true);
    tracing::info!(listen = %bound, origin = %config.origin.display(), page = %config.page, "Edge serving.");
    process.shutdown.cancelled().await;
    Ok(())
}
