//! `beaconctl validate -f FILE`: local validation only, no NATS.

use std::path::Path;

use beacon_page::config::{self, PageConfig, RawPageConfig};

use crate::cli::OutputFormat;
use crate::exit::CtlError;
use crate::output;

/// Reads and validates a page config file, returning both the raw form (what
/// the decider is sent; it validates again) and the validated one.
pub fn read_config(path: &Path) -> Result<(RawPageConfig, PageConfig), CtlError> {
    let text = std::fs::read_to_string(path).map_err(|source| CtlError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |e: config::ConfigErrors| CtlError::InvalidConfig {
        path: path.to_owned(),
        errors: e.0,
    };
    // The two phases of `config::load`, kept apart to keep the raw form.
    let raw = config::parse_toml(&text).map_err(invalid)?;
    let validated = config::validate(&raw).map_err(invalid)?;
    Ok((raw, validated))
}

/// Runs `validate`.
pub fn run(path: &Path, format: OutputFormat) -> Result<(), CtlError> {
    let (_, config) = read_config(path)?;
    let text = match format {
        // `lib::run` refuses csv for this command before it runs.
        OutputFormat::Table | OutputFormat::Csv => summary(&config),
        OutputFormat::Json => output::json(&config)?,
    };
    output::print(&text)
}

/// `page demo is valid: 3 components, 5 checks, 1 channel`.
pub fn summary(config: &PageConfig) -> String {
    let checks: usize = config.components.iter().map(|c| c.checks.len()).sum();
    format!(
        "page {} is valid: {}, {}, {}\n",
        config.id,
        plural(config.components.len(), "component"),
        plural(checks, "check"),
        plural(config.channels.len(), "channel")
    )
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_what_the_page_has() {
        let config = config::load(
            r#"
            [page]
            id = "demo"
            name = "Demo"

            [[components]]
            id = "api"
            name = "API"
            [[components.checks]]
            type = "tcp"
            address = "127.0.0.1:80"
            regions = ["eu"]
            "#,
        )
        .expect("valid");
        assert_eq!(
            summary(&config),
            "page demo is valid: 1 component, 1 check, 0 channels\n"
        );
    }
}
