//! The publisher: renders every page to static files whenever its config or
//! a component status changes, and publishes them atomically to every origin.
//!
//! # Layout
//!
//! - [`render`]: pure renderers: Statuspage v2 JSON and the HTML page.
//! - [`site`]: atomic version-directory-and-rename publishing to an origin.
//! - [`follow`]: KV watches on `config` and `status`, debounced re-rendering.

pub mod follow;
pub mod render;
pub mod site;

use std::path::PathBuf;
use std::time::Duration;

use beacon_core::daemon::Daemon;

/// Publisher settings beyond the common flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherConfig {
    /// Origin directories every page is written to.
    pub origins: Vec<PathBuf>,
    /// Quiet time after a change before rendering, so a burst renders once.
    pub debounce: Duration,
}

impl PublisherConfig {
    /// Checks the settings, returning every problem.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if self.origins.is_empty() {
            errors.push("--origin: at least one origin directory is required".to_owned());
        }
        for origin in &self.origins {
            if origin.exists() && !origin.is_dir() {
                errors.push(format!(
                    "--origin {}: exists and is not a directory",
                    origin.display()
                ));
            }
        }
        if self.debounce > Duration::from_secs(60) {
            errors.push("--debounce: must be at most 60s".to_owned());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Why the publisher stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A metric could not be registered (a bug).
    #[error(transparent)]
    Metric(#[from] beacon_core::telemetry::MetricError),
    /// An origin directory could not be created.
    #[error("cannot create origin {path}: {reason}")]
    Origin {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Runs the publisher until shutdown.
pub async fn run(daemon: Daemon, config: PublisherConfig) -> Result<(), RunError> {
    for origin in &config.origins {
        std::fs::create_dir_all(origin).map_err(|e| RunError::Origin {
            path: origin.clone(),
            reason: e.to_string(),
        })?;
    }
    let follower = follow::Follower::new(daemon.clone(), config)?;
    daemon.process.shutdown.spawn(follower.run());
    daemon.process.shutdown.cancelled().await;
    Ok(())
}
