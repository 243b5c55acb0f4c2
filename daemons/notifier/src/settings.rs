//! The notifier's flags, validated once: every problem is reported
//! together and `main` exits 64.

use std::net::SocketAddr;
use std::time::Duration;

use beacon_runtime::lease::{LeaseArgs, LeaseConfig};
use beacon_runtime::retry::RetryPolicy;

use crate::signing::MIN_SECRET_BYTES;
use crate::ssrf::Cidr;

/// Flags beyond the common ones.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct NotifierArgs {
    /// Base URL where the notifier's links are served (unsubscribe,
    /// confirm, the SMS webhook), e.g. `https://status.example.com/notify`.
    #[arg(long, env = "BEACON_PUBLIC_URL")]
    pub public_url: String,
    /// Secret that signs unsubscribe and confirmation links and keys the
    /// suppression hashes; at least 32 bytes. Keep it: links already sent
    /// stop working when it changes.
    #[arg(long, env = "BEACON_NOTIFIER_SECRET", hide_env_values = true)]
    pub signing_secret: String,
    /// Serve the inbound HTTP endpoints (SMS replies, one-click
    /// unsubscribe, confirmation) on this address.
    #[arg(long, env = "BEACON_INBOUND_LISTEN")]
    pub inbound_listen: Option<SocketAddr>,
    /// Address ranges webhooks may reach although they are private
    /// (CIDR; repeat or separate with commas), e.g. an internal network.
    #[arg(long, env = "BEACON_WEBHOOK_ALLOW", value_delimiter = ',')]
    pub webhook_allow: Vec<String>,
    /// Deliveries per batch in NOTIFY.
    #[arg(long, env = "BEACON_NOTIFY_BATCH", default_value_t = 500)]
    pub notify_batch: usize,
    /// Deliveries of one batch sent at once (each provider account also
    /// has its own `concurrency`).
    #[arg(long, env = "BEACON_SEND_CONCURRENCY", default_value_t = 64)]
    pub send_concurrency: usize,
    /// Batches each channel's consumer handles at once.
    #[arg(long, env = "BEACON_SENDER_BATCHES", default_value_t = 4)]
    pub sender_batches: usize,
    /// Attempts of a delivery before it is given up and dead-lettered.
    #[arg(long, env = "BEACON_MAX_ATTEMPTS", default_value_t = 10)]
    pub max_attempts: u32,
    /// Delay before the second attempt; it doubles with each attempt.
    #[arg(long, env = "BEACON_RETRY_FIRST", default_value = "5s", value_parser = humantime::parse_duration)]
    pub retry_first: Duration,
    /// Longest delay between attempts.
    #[arg(long, env = "BEACON_RETRY_MAX", default_value = "10m", value_parser = humantime::parse_duration)]
    pub retry_max: Duration,
    /// Time a provider has to answer one delivery.
    #[arg(long, env = "BEACON_SEND_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub send_timeout: Duration,
    /// How long a confirmation link works.
    #[arg(long, env = "BEACON_CONFIRM_TTL", default_value = "48h", value_parser = humantime::parse_duration)]
    pub confirm_ttl: Duration,
    /// How long the server waits for an ack (of a delivery batch, or of an
    /// event the planner is planning) before redelivering it.
    #[arg(long, env = "BEACON_ACK_WAIT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub ack_wait: Duration,
    /// The planner's lease.
    #[command(flatten)]
    pub lease: LeaseArgs,
}

/// The validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL of links, without a trailing slash.
    pub public_url: String,
    /// The signing secret.
    pub signing_secret: Vec<u8>,
    /// Inbound HTTP address.
    pub inbound_listen: Option<SocketAddr>,
    /// Ranges webhooks may reach anyway.
    pub webhook_allow: Vec<Cidr>,
    /// Deliveries per batch.
    pub notify_batch: usize,
    /// Deliveries in flight per batch.
    pub send_concurrency: usize,
    /// Batches in flight per consumer.
    pub sender_batches: usize,
    /// Attempts per delivery.
    pub max_attempts: u32,
    /// Delays between attempts.
    pub retry: RetryPolicy,
    /// Provider timeout.
    pub send_timeout: Duration,
    /// Confirmation link lifetime.
    pub confirm_ttl: Duration,
    /// Sender consumers' ack wait.
    pub ack_wait: Duration,
    /// The planner's lease.
    pub lease: LeaseConfig,
}

/// Largest batch accepted (the bus's message limit stays far away).
pub const MAX_NOTIFY_BATCH: usize = 10_000;

impl Settings {
    /// The settings, or every problem with the flags.
    pub fn from_args(args: &NotifierArgs) -> Result<Settings, Vec<String>> {
        let mut errors = Vec::new();
        let public_url = args.public_url.trim_end_matches('/').to_owned();
        match url::Url::parse(&public_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            _ => errors.push(format!(
                "--public-url: {:?} is not an http(s) URL with a host",
                args.public_url
            )),
        }
        if args.signing_secret.len() < MIN_SECRET_BYTES {
            errors.push(format!(
                "--signing-secret (BEACON_NOTIFIER_SECRET) must be at least {MIN_SECRET_BYTES} bytes"
            ));
        }
        let mut webhook_allow = Vec::new();
        for text in &args.webhook_allow {
            match Cidr::parse(text) {
                Ok(cidr) => webhook_allow.push(cidr),
                Err(e) => errors.push(format!("--webhook-allow: {e}")),
            }
        }
        for (flag, value, max) in [
            ("--notify-batch", args.notify_batch, MAX_NOTIFY_BATCH),
            ("--send-concurrency", args.send_concurrency, 10_000),
            ("--sender-batches", args.sender_batches, 64),
            ("--max-attempts", args.max_attempts as usize, 1_000),
        ] {
            if !(1..=max).contains(&value) {
                errors.push(format!("{flag} must be between 1 and {max}, got {value}"));
            }
        }
        if args.retry_first.is_zero() || args.retry_max < args.retry_first {
            errors.push("--retry-first must be above zero and at most --retry-max".to_owned());
        }
        if args.send_timeout < Duration::from_millis(100) {
            errors.push("--send-timeout must be at least 100ms".to_owned());
        }
        if args.confirm_ttl < Duration::from_secs(1) {
            errors.push("--confirm-ttl must be at least 1s".to_owned());
        }
        if args.ack_wait < args.send_timeout * 2 {
            errors.push(format!(
                "--ack-wait ({:?}) must be at least twice --send-timeout ({:?})",
                args.ack_wait, args.send_timeout
            ));
        }
        let lease = match args.lease.config() {
            Ok(lease) => Some(lease),
            Err(problems) => {
                errors.extend(problems);
                None
            }
        };
        match lease {
            Some(lease) if errors.is_empty() => Ok(Settings {
                public_url,
                signing_secret: args.signing_secret.as_bytes().to_vec(),
                inbound_listen: args.inbound_listen,
                webhook_allow,
                notify_batch: args.notify_batch,
                send_concurrency: args.send_concurrency,
                sender_batches: args.sender_batches,
                max_attempts: args.max_attempts,
                retry: RetryPolicy::new(args.retry_first, args.retry_max),
                send_timeout: args.send_timeout,
                confirm_ttl: args.confirm_ttl,
                ack_wait: args.ack_wait,
                lease,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: NotifierArgs,
    }

    #[test]
    fn every_bad_flag_is_reported_at_once() {
        let cli = Cli::try_parse_from([
            "n",
            "--public-url",
            "notify.example.com",
            "--signing-secret",
            "short",
            "--webhook-allow",
            "10.0.0.0/8,nonsense",
            "--notify-batch",
            "0",
            "--retry-first",
            "1h",
            "--retry-max",
            "1m",
            "--ack-wait",
            "5s",
        ])
        .expect("parses");
        let errors = Settings::from_args(&cli.args).expect_err("refused");
        let joined = errors.join("\n");
        for part in [
            "--public-url",
            "--signing-secret",
            "--webhook-allow",
            "--notify-batch",
            "--retry-first",
            "--ack-wait",
        ] {
            assert!(joined.contains(part), "{part} missing in:\n{joined}");
        }
        let good = Cli::try_parse_from([
            "n",
            "--public-url",
            "https://status.example.com/notify/",
            "--signing-secret",
            "0123456789abcdef0123456789abcdef",
        ])
        .expect("parses");
        let settings = Settings::from_args(&good.args).expect("valid");
        assert_eq!(settings.public_url, "https://status.example.com/notify");
    }
}
