//! The recorder's own flags, validated once into a [`RecorderConfig`].
//!
//! Validation is pure and reports every problem at once, so an operator
//! fixes a broken command line in one go instead of one error per restart.

use std::fmt;
use std::time::Duration;

use url::Url;

use crate::schema::Layout;

/// `--clickhouse-layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LayoutArg {
    /// Plain tables on one server.
    Single,
    /// Local tables on every shard of `--clickhouse-cluster`, Distributed
    /// tables over them.
    Sharded,
}

/// Shortest `--rollup-interval` accepted.
pub const MIN_ROLLUP_INTERVAL: Duration = Duration::from_secs(1);

/// How to reach ClickHouse. Parsed by clap, then checked by [`ClickHouseArgs::validate`].
///
/// Argument ids carry a `clickhouse_` prefix because they are flattened
/// next to [`CommonArgs`](beacon_runtime::daemon::CommonArgs), whose NATS
/// flags already use `url`, `user` and `password`.
#[derive(Clone, PartialEq, Eq, clap::Args)]
pub struct ClickHouseArgs {
    /// ClickHouse HTTP interface URL.
    #[arg(
        id = "clickhouse_url",
        long = "clickhouse-url",
        env = "BEACON_CLICKHOUSE_URL",
        default_value = "http://127.0.0.1:8123"
    )]
    pub url: String,
    /// Database the recorder's tables live in; created if missing.
    #[arg(
        id = "clickhouse_database",
        long = "clickhouse-database",
        env = "BEACON_CLICKHOUSE_DATABASE",
        default_value = "beacon"
    )]
    pub database: String,
    /// ClickHouse user; the server's `default` user when not given.
    #[arg(
        id = "clickhouse_user",
        long = "clickhouse-user",
        env = "BEACON_CLICKHOUSE_USER"
    )]
    pub user: Option<String>,
    /// ClickHouse password.
    #[arg(
        id = "clickhouse_password",
        long = "clickhouse-password",
        env = "BEACON_CLICKHOUSE_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// Table layout: `single` server, or `sharded` over a cluster.
    #[arg(
        id = "clickhouse_layout",
        long = "clickhouse-layout",
        env = "BEACON_CLICKHOUSE_LAYOUT",
        value_enum,
        default_value = "single"
    )]
    pub layout: LayoutArg,
    /// The cluster (in the servers' `remote_servers`) of the sharded layout.
    #[arg(
        id = "clickhouse_cluster",
        long = "clickhouse-cluster",
        env = "BEACON_CLICKHOUSE_CLUSTER"
    )]
    pub cluster: Option<String>,
    /// HTTP URL of every shard of the sharded layout (repeat the flag or
    /// separate with commas): migrations run on each.
    #[arg(
        id = "clickhouse_shard_url",
        long = "clickhouse-shard-url",
        env = "BEACON_CLICKHOUSE_SHARD_URLS",
        value_delimiter = ','
    )]
    pub shard_urls: Vec<String>,
    /// How often today's uptime rollups are recomputed and the `uptime` KV
    /// bucket rewritten, e.g. `60s`. Status and maintenance events trigger
    /// a recomputation of the days they change at once.
    #[arg(
        long = "rollup-interval",
        env = "BEACON_ROLLUP_INTERVAL",
        default_value = "60s",
        value_parser = humantime::parse_duration
    )]
    pub rollup_interval: Duration,
}

impl fmt::Debug for ClickHouseArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseArgs")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("layout", &self.layout)
            .field("cluster", &self.cluster)
            .field("shard_urls", &self.shard_urls)
            .field("rollup_interval", &self.rollup_interval)
            .finish()
    }
}

/// A validated recorder configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct RecorderConfig {
    /// ClickHouse HTTP interface URL (scheme `http`, no query or credentials).
    pub url: Url,
    /// Database name, a plain identifier.
    pub database: String,
    /// User name, if one was given.
    pub user: Option<String>,
    /// Password, if one was given.
    pub password: Option<String>,
    /// Table layout.
    pub layout: Layout,
    /// Every server migrations run on: the one of `url` for the single
    /// layout, every shard for the sharded one.
    pub shards: Vec<Url>,
    /// How often today's rollups are recomputed.
    pub rollup_interval: Duration,
}

impl fmt::Debug for RecorderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecorderConfig")
            .field("url", &self.url.as_str())
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("layout", &self.layout)
            .field(
                "shards",
                &self.shards.iter().map(Url::as_str).collect::<Vec<_>>(),
            )
            .field("rollup_interval", &self.rollup_interval)
            .finish()
    }
}

/// One problem with the flags, naming the flag it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The URL does not parse.
    #[error("--clickhouse-url {value:?} is not a URL: {reason}")]
    UrlInvalid {
        /// What was given.
        value: String,
        /// What the parser said.
        reason: String,
    },
    /// The scheme is not `http`.
    #[error(
        "--clickhouse-url {value:?}: scheme must be http (this build has no TLS for ClickHouse; \
         use a local TLS-terminating proxy)"
    )]
    UrlScheme {
        /// What was given, without credentials.
        value: String,
    },
    /// The URL carries a user name or password.
    #[error("--clickhouse-url {value:?}: put credentials in --clickhouse-user and --clickhouse-password, not in the URL")]
    UrlCredentials {
        /// What was given, without the credentials.
        value: String,
    },
    /// The URL has a query string or fragment, which the client would drop.
    #[error("--clickhouse-url {value:?}: must not have a query string or fragment")]
    UrlQuery {
        /// What was given, without credentials.
        value: String,
    },
    /// The database name is not a plain identifier.
    #[error(
        "--clickhouse-database {value:?}: must start with a letter or '_' and contain only \
         ASCII letters, digits and '_'"
    )]
    Database {
        /// What was given.
        value: String,
    },
    /// `--clickhouse-user` was given but empty.
    #[error("--clickhouse-user must not be empty")]
    EmptyUser,
    /// The sharded layout without its cluster or shards.
    #[error("--clickhouse-layout sharded needs {what}")]
    ShardedNeeds {
        /// What is missing.
        what: &'static str,
    },
    /// Sharded-layout flags given with the single layout.
    #[error("{flag} applies only to --clickhouse-layout sharded")]
    OnlySharded {
        /// The flag.
        flag: &'static str,
    },
    /// The cluster name is not a plain identifier.
    #[error(
        "--clickhouse-cluster {value:?}: must start with a letter or '_' and contain only \
         ASCII letters, digits and '_'"
    )]
    Cluster {
        /// What was given.
        value: String,
    },
    /// The rollup interval is too short.
    #[error("--rollup-interval must be at least 1s, got {value:?}")]
    RollupInterval {
        /// What was given.
        value: Duration,
    },
}

/// Every problem found, in flag order. Displays one problem per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ClickHouseArgs {
    /// Checks every flag and returns the config, or every problem found.
    pub fn validate(&self) -> Result<RecorderConfig, ConfigErrors> {
        let mut errors = Vec::new();
        let url = check_url(&self.url, &mut errors);
        // The database name is written into DDL, where it cannot be bound as
        // a parameter, so only plain identifiers are accepted.
        if !is_identifier(&self.database) {
            errors.push(ConfigError::Database {
                value: self.database.clone(),
            });
        }
        if self.user.as_deref() == Some("") {
            errors.push(ConfigError::EmptyUser);
        }
        let layout = self.check_layout(&mut errors);
        let mut shards = Vec::new();
        for shard in &self.shard_urls {
            if let Some(shard) = check_url(shard, &mut errors) {
                shards.push(shard);
            }
        }
        if self.rollup_interval < MIN_ROLLUP_INTERVAL {
            errors.push(ConfigError::RollupInterval {
                value: self.rollup_interval,
            });
        }
        match (url, layout) {
            (Some(url), Some(layout)) if errors.is_empty() => Ok(RecorderConfig {
                shards: if shards.is_empty() {
                    vec![url.clone()]
                } else {
                    shards
                },
                url,
                database: self.database.clone(),
                user: self.user.clone(),
                password: self.password.clone(),
                layout,
                rollup_interval: self.rollup_interval,
            }),
            _ => Err(ConfigErrors(errors)),
        }
    }

    fn check_layout(&self, errors: &mut Vec<ConfigError>) -> Option<Layout> {
        match self.layout {
            LayoutArg::Single => {
                if self.cluster.is_some() {
                    errors.push(ConfigError::OnlySharded {
                        flag: "--clickhouse-cluster",
                    });
                }
                if !self.shard_urls.is_empty() {
                    errors.push(ConfigError::OnlySharded {
                        flag: "--clickhouse-shard-url",
                    });
                }
                Some(Layout::Single)
            }
            LayoutArg::Sharded => {
                if self.shard_urls.is_empty() {
                    errors.push(ConfigError::ShardedNeeds {
                        what: "--clickhouse-shard-url for every shard",
                    });
                }
                match &self.cluster {
                    None => {
                        errors.push(ConfigError::ShardedNeeds {
                            what: "--clickhouse-cluster",
                        });
                        None
                    }
                    // Written into DDL like the database name.
                    Some(cluster) if !is_identifier(cluster) => {
                        errors.push(ConfigError::Cluster {
                            value: cluster.clone(),
                        });
                        None
                    }
                    Some(cluster) => Some(Layout::Sharded {
                        cluster: cluster.clone(),
                    }),
                }
            }
        }
    }
}

fn check_url(value: &str, errors: &mut Vec<ConfigError>) -> Option<Url> {
    let url = match Url::parse(value) {
        Ok(url) => url,
        Err(e) => {
            errors.push(ConfigError::UrlInvalid {
                value: value.to_owned(),
                reason: e.to_string(),
            });
            return None;
        }
    };
    let before = errors.len();
    // Errors show the URL without credentials, so they never reach a log.
    let shown = {
        let mut redacted = url.clone();
        // Both setters fail only for URLs that cannot carry credentials,
        // which then have none to hide.
        let _ = redacted.set_username("");
        let _ = redacted.set_password(None);
        redacted.to_string()
    };
    if url.scheme() != "http" {
        errors.push(ConfigError::UrlScheme {
            value: shown.clone(),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        errors.push(ConfigError::UrlCredentials {
            value: shown.clone(),
        });
    }
    // The client replaces the query string with its own parameters, so
    // anything put there would be dropped without a word.
    if url.query().is_some() || url.fragment().is_some() {
        errors.push(ConfigError::UrlQuery { value: shown });
    }
    (errors.len() == before).then_some(url)
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if first.is_ascii_alphabetic() || first == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str, database: &str) -> ClickHouseArgs {
        ClickHouseArgs {
            url: url.to_owned(),
            database: database.to_owned(),
            user: None,
            password: None,
            layout: LayoutArg::Single,
            cluster: None,
            shard_urls: Vec::new(),
            rollup_interval: Duration::from_secs(60),
        }
    }

    #[test]
    fn the_sharded_layout_needs_a_cluster_and_its_shards() {
        let mut sharded = args("http://ch:8123", "beacon");
        sharded.layout = LayoutArg::Sharded;
        let text = sharded.validate().unwrap_err().to_string();
        assert!(text.contains("--clickhouse-cluster"), "{text}");
        assert!(text.contains("--clickhouse-shard-url"), "{text}");

        sharded.cluster = Some("history".into());
        sharded.shard_urls = vec!["http://a:8123".into(), "http://b:8123".into()];
        let config = sharded.validate().unwrap();
        assert_eq!(
            config.layout,
            Layout::Sharded {
                cluster: "history".into()
            }
        );
        assert_eq!(config.shards.len(), 2);

        sharded.cluster = Some("drop table".into());
        assert!(sharded.validate().is_err());

        let mut single = args("http://ch:8123", "beacon");
        single.cluster = Some("history".into());
        single.rollup_interval = Duration::from_millis(10);
        let text = single.validate().unwrap_err().to_string();
        assert!(text.contains("applies only to"), "{text}");
        assert!(text.contains("--rollup-interval"), "{text}");
    }

    /// The same flag set `main` parses.
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        common: beacon_runtime::daemon::CommonArgs,
        #[command(flatten)]
        clickhouse: ClickHouseArgs,
    }

    #[test]
    fn flags_sit_next_to_the_common_ones() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_valid() {
        use clap::Parser;
        let cli = Cli::try_parse_from(["beacon-recorder"]).unwrap();
        let config = cli.clickhouse.validate().unwrap();
        assert_eq!(config.url.as_str(), "http://127.0.0.1:8123/");
        assert_eq!(config.database, "beacon");
        assert_eq!(config.user, None);
    }

    #[test]
    fn each_bad_flag_is_reported() {
        let table: &[(&str, &str, &[&str])] = &[
            ("http://ch:8123", "beacon", &[]),
            ("http://ch:8123/proxy/", "_history_2", &[]),
            ("not a url", "beacon", &["is not a URL"]),
            ("https://ch:8443", "beacon", &["scheme must be http"]),
            ("http://u:p@ch:8123", "beacon", &["put credentials"]),
            ("http://ch:8123/?database=x", "beacon", &["query string"]),
            ("http://ch:8123", "beacon; DROP", &["--clickhouse-database"]),
            ("http://ch:8123", "", &["--clickhouse-database"]),
            ("http://ch:8123", "1st", &["--clickhouse-database"]),
        ];
        for (url, database, want) in table {
            let result = args(url, database).validate();
            match (result, want.is_empty()) {
                (Ok(_), true) => {}
                (Err(errors), false) => {
                    let text = errors.to_string();
                    for needle in *want {
                        assert!(text.contains(needle), "{url} {database}: {text}");
                    }
                }
                (other, _) => panic!("{url} {database}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let mut bad = args("https://user:secret@ch:8443/?x=1", "no-dashes");
        bad.user = Some(String::new());
        let errors = bad.validate().unwrap_err();
        assert_eq!(errors.0.len(), 5, "{errors}");
        let text = errors.to_string();
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(!text.contains("secret"), "password leaked: {text}");
    }

    #[test]
    fn debug_output_hides_the_password() {
        let mut good = args("http://ch:8123", "beacon");
        good.password = Some("hunter2".to_owned());
        assert!(!format!("{good:?}").contains("hunter2"));
        let config = good.validate().unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(config.password.as_deref(), Some("hunter2"));
    }
}
