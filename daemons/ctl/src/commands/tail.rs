//! `beaconctl tail [--subject S] [--count N]`: print live messages.
//!
//! A core NATS subscription, not a JetStream consumer: it shows what is
//! published from now on, leaves no state on the server, and sees every
//! subject including requests and non-stream traffic.

use beacon_runtime::connect::NatsArgs;
use futures::StreamExt;

use crate::cli::OutputFormat;
use crate::commands::connect;
use crate::exit::CtlError;
use crate::output;

/// Runs `tail` until `count` messages were printed or Ctrl-C.
pub async fn run(
    nats: &NatsArgs,
    subject: &str,
    count: Option<u64>,
    format: OutputFormat,
) -> Result<(), CtlError> {
    check_subject(subject)?;
    let client = connect(nats).await?;
    let mut subscriber = client
        .subscribe(subject.to_owned())
        .await
        .map_err(|e| CtlError::Bus {
            what: format!("cannot subscribe to {subject}"),
            reason: e.to_string(),
        })?;
    // Make sure the server has the subscription before the first message
    // the operator expects to see is published.
    client.flush().await.map_err(|e| CtlError::Bus {
        what: format!("cannot subscribe to {subject}"),
        reason: e.to_string(),
    })?;

    let mut printed = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    while count.is_none_or(|count| printed < count) {
        tokio::select! {
            _ = &mut ctrl_c => break,
            message = subscriber.next() => {
                let Some(message) = message else {
                    return Err(CtlError::Bus {
                        what: format!("subscription to {subject}"),
                        reason: "the connection was closed".to_owned(),
                    });
                };
                output::print(&output::tail_line(message.subject.as_str(), &message.payload, format))?;
                printed += 1;
            }
        }
    }
    Ok(())
}

/// Refuses subjects the server would reject anyway, with a clearer message.
fn check_subject(subject: &str) -> Result<(), CtlError> {
    let bad = |reason: &str| {
        Err(CtlError::BadArgument {
            flag: "--subject",
            reason: format!("{subject:?} {reason}"),
        })
    };
    if subject.is_empty() {
        return bad("is empty");
    }
    if subject.chars().any(char::is_whitespace) {
        return bad("contains whitespace");
    }
    if subject.split('.').any(str::is_empty) {
        return bad("has an empty token");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_checked() {
        assert!(check_subject("beacon.>").is_ok());
        assert!(check_subject(&format!(
            "{}.status.*.api",
            beacon_contract::names::SUBJECT_ROOT
        ))
        .is_ok());
        for bad in ["", "a b", "beacon..x", ".beacon", "beacon."] {
            assert_eq!(
                check_subject(bad).map_err(|e| e.exit_code()),
                Err(64),
                "{bad:?}"
            );
        }
    }
}
