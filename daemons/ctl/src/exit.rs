//! The error every command returns, the exit code it maps to, and the text
//! printed for it on stderr.

use std::io;
use std::path::PathBuf;

use beacon_page::config::ConfigError;
use beacon_runtime::connect::ConnectError;

/// Everything went as asked.
pub const EXIT_OK: u8 = 0;
/// The server side failed (it said so, or answered with something unreadable).
pub const EXIT_FAILURE: u8 = 1;
/// Bad input or usage: a bad flag, an unreadable or invalid file, a refused request (`EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;
/// NATS, JetStream or the daemon that should answer is unreachable (`EX_UNAVAILABLE`).
pub const EXIT_UNAVAILABLE: u8 = 69;
/// Someone else changed it first; read again and retry if it still makes
/// sense (`EX_TEMPFAIL`).
pub const EXIT_CONFLICT: u8 = 75;

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// A flag value is not acceptable.
    #[error("invalid {flag}: {reason}")]
    BadArgument {
        /// The flag, e.g. `--page`.
        flag: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The config file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        /// The file given.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Local validation found problems; nothing was sent.
    #[error("{}: {} in page config", path.display(), count_errors(errors.len()))]
    InvalidConfig {
        /// The file given.
        path: PathBuf,
        /// Every problem, in file order.
        errors: Vec<ConfigError>,
    },
    /// The owner refused the request; nothing changed.
    #[error("{subject} refused the request: {}", count_errors(errors.len()))]
    Refused {
        /// The API subject.
        subject: &'static str,
        /// Every problem it reported.
        errors: Vec<ConfigError>,
    },
    /// No connection to NATS (or the connection settings are unusable).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// Nobody answered the request in time.
    #[error("no {service} answered on {subject} within {timeout}")]
    NoAnswer {
        /// Which daemon should have answered.
        service: &'static str,
        /// The API subject.
        subject: &'static str,
        /// The timeout, as given.
        timeout: String,
    },
    /// NATS or JetStream failed an operation (not the owner's logic).
    #[error("{what}: {reason}")]
    Bus {
        /// What was being done.
        what: String,
        /// What the client said.
        reason: String,
    },
    /// The owner answered that it failed.
    #[error("{subject} failed: {message}")]
    ServerFailed {
        /// The API subject.
        subject: &'static str,
        /// What it said.
        message: String,
    },
    /// Someone else changed it first; nothing changed.
    #[error("{subject}: conflict: {message}")]
    Conflict {
        /// The API subject.
        subject: &'static str,
        /// What conflicted.
        message: String,
        /// The current state, as the owner sent it.
        current: Option<serde_json::Value>,
    },
    /// The owner answered with something this build cannot read.
    #[error("unreadable reply from {subject}: {reason}")]
    BadReply {
        /// The API subject.
        subject: &'static str,
        /// Why it could not be read.
        reason: String,
    },
    /// Some origins could not be reached; the others were written.
    #[error("reached {reached} origin(s) but not: {}", missed.join("; "))]
    Origins {
        /// Origins written.
        reached: usize,
        /// Each origin missed, with why.
        missed: Vec<String>,
    },
    /// A bug in beaconctl (e.g. a request that cannot be serialized).
    #[error("internal error: {0}")]
    Internal(String),
    /// Writing to stdout failed.
    #[error("cannot write output: {0}")]
    Output(io::Error),
    /// The reader of stdout went away (e.g. `beaconctl tail | head`). Not a
    /// failure: the reader got all it wanted.
    #[error("stdout was closed")]
    OutputClosed,
}

fn count_errors(n: usize) -> String {
    if n == 1 {
        "1 error".to_owned()
    } else {
        format!("{n} errors")
    }
}

impl CtlError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::BadArgument { .. }
            | CtlError::ReadFile { .. }
            | CtlError::InvalidConfig { .. }
            | CtlError::Refused { .. } => EXIT_USAGE,
            CtlError::Connect(e) => match e {
                // Unusable credentials are the operator's input, not an outage.
                ConnectError::Credentials { .. } | ConnectError::HalfUserPassword => EXIT_USAGE,
                ConnectError::Unreachable { .. } | ConnectError::Cancelled => EXIT_UNAVAILABLE,
            },
            CtlError::NoAnswer { .. } | CtlError::Bus { .. } | CtlError::Origins { .. } => {
                EXIT_UNAVAILABLE
            }
            CtlError::ServerFailed { .. }
            | CtlError::BadReply { .. }
            | CtlError::Internal(_)
            | CtlError::Output(_) => EXIT_FAILURE,
            CtlError::Conflict { .. } => EXIT_CONFLICT,
            CtlError::OutputClosed => EXIT_OK,
        }
    }

    /// The text to print on stderr: one `beaconctl: …` line, followed by one
    /// `location: message` line per config error. Empty when there is
    /// nothing to say.
    pub fn report(&self) -> String {
        if let CtlError::OutputClosed = self {
            return String::new();
        }
        let mut text = format!("beaconctl: {self}\n");
        if let CtlError::InvalidConfig { errors, .. } | CtlError::Refused { errors, .. } = self {
            for error in errors {
                text.push_str(&format!("{error}\n"));
            }
        }
        if let CtlError::Conflict {
            current: Some(current),
            ..
        } = self
        {
            let current = serde_json::to_string_pretty(current).unwrap_or_default();
            text.push_str(&format!("current state:\n{current}\n"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_error(location: &str, message: &str) -> ConfigError {
        ConfigError {
            location: location.to_owned(),
            message: message.to_owned(),
        }
    }

    #[test]
    fn every_error_maps_to_its_exit_code() {
        let table: Vec<(CtlError, u8)> = vec![
            (
                CtlError::BadArgument {
                    flag: "--page",
                    reason: "x".into(),
                },
                64,
            ),
            (
                CtlError::ReadFile {
                    path: "a.toml".into(),
                    source: io::Error::from(io::ErrorKind::NotFound),
                },
                64,
            ),
            (
                CtlError::InvalidConfig {
                    path: "a.toml".into(),
                    errors: vec![],
                },
                64,
            ),
            (
                CtlError::Refused {
                    subject: "s",
                    errors: vec![],
                },
                64,
            ),
            (CtlError::Connect(ConnectError::HalfUserPassword), 64),
            (
                CtlError::Connect(ConnectError::Credentials {
                    path: "c.creds".into(),
                    reason: "x".into(),
                }),
                64,
            ),
            (
                CtlError::Connect(ConnectError::Unreachable {
                    url: "u".into(),
                    reason: "r".into(),
                }),
                69,
            ),
            (
                CtlError::NoAnswer {
                    service: "decider",
                    subject: "s",
                    timeout: "5s".into(),
                },
                69,
            ),
            (
                CtlError::Bus {
                    what: "w".into(),
                    reason: "r".into(),
                },
                69,
            ),
            (
                CtlError::ServerFailed {
                    subject: "s",
                    message: "m".into(),
                },
                1,
            ),
            (
                CtlError::BadReply {
                    subject: "s",
                    reason: "r".into(),
                },
                1,
            ),
            (CtlError::Internal("bug".into()), 1),
            (CtlError::Output(io::Error::other("disk full")), 1),
            (
                CtlError::Conflict {
                    subject: "s",
                    message: "m".into(),
                    current: None,
                },
                75,
            ),
            (CtlError::OutputClosed, 0),
        ];
        for (error, code) in table {
            assert_eq!(error.exit_code(), code, "{error:?}");
        }
    }

    #[test]
    fn unreachable_nats_is_one_line() {
        let error = CtlError::Connect(ConnectError::Unreachable {
            url: "nats://127.0.0.1:4222".into(),
            reason: "connection refused".into(),
        });
        assert_eq!(
            error.report(),
            "beaconctl: cannot connect to NATS at nats://127.0.0.1:4222: connection refused\n"
        );
    }

    #[test]
    fn config_errors_are_listed_one_per_line() {
        let error = CtlError::InvalidConfig {
            path: "bad.toml".into(),
            errors: vec![
                config_error("page.name", "must not be empty"),
                config_error("components[0].checks[0].url", "an http check needs a url"),
            ],
        };
        assert_eq!(
            error.report(),
            "beaconctl: bad.toml: 2 errors in page config\n\
             page.name: must not be empty\n\
             components[0].checks[0].url: an http check needs a url\n"
        );
    }

    #[test]
    fn no_answer_names_subject_and_timeout() {
        let error = CtlError::NoAnswer {
            service: "decider",
            subject: beacon_contract::names::api::CONFIG_APPLY,
            timeout: "5s".into(),
        };
        assert_eq!(
            error.report(),
            "beaconctl: no decider answered on beacon.api.config.apply within 5s\n"
        );
    }

    #[test]
    fn a_closed_stdout_prints_nothing() {
        assert_eq!(CtlError::OutputClosed.report(), "");
    }
}
