//! `beaconctl apply -f FILE`: validate locally, then store through the decider.

use std::path::Path;
use std::time::Duration;

use beacon_page::config::api::{ApplyConfigRequest, ApplyConfigResult};
use beacon_runtime::connect::NatsArgs;

use crate::cli::OutputFormat;
use crate::commands::{connect, validate};
use crate::exit::CtlError;
use crate::output;
use crate::request;

/// Runs `apply`.
pub async fn run(
    nats: &NatsArgs,
    path: &Path,
    format: OutputFormat,
    timeout: Duration,
) -> Result<(), CtlError> {
    // Validate before connecting: a typo is reported the same way whether
    // or not the bus is up, and never costs a round trip.
    let (raw, _) = validate::read_config(path)?;
    let client = connect(nats).await?;
    let result: ApplyConfigResult = request::call(
        &client,
        beacon_page::config::api::CONFIG_APPLY,
        &ApplyConfigRequest {
            config: raw,
            expected_revision: None,
        },
        timeout,
    )
    .await?;
    let text = match format {
        // `lib::run` refuses csv for this command before it runs.
        OutputFormat::Table | OutputFormat::Csv => summary(&result),
        OutputFormat::Json => output::json(&result)?,
    };
    output::print(&text)
}

/// `applied page demo (revision 3)` or `unchanged page demo (revision 3)`.
pub fn summary(result: &ApplyConfigResult) -> String {
    let verb = if result.changed {
        "applied"
    } else {
        "unchanged"
    };
    format!(
        "{verb} page {} (revision {})\n",
        result.page, result.revision
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_says_whether_anything_changed() {
        let mut result = ApplyConfigResult {
            page: "demo".into(),
            revision: 3,
            changed: true,
        };
        assert_eq!(summary(&result), "applied page demo (revision 3)\n");
        result.changed = false;
        assert_eq!(summary(&result), "unchanged page demo (revision 3)\n");
    }
}
