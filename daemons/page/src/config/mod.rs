//! The page config: a TOML file operators write, validated in two phases.
//!
//! 1. [`parse_toml`] reads the text into raw serde structs that deny unknown
//!    fields, so a typo is an error with a line and column.
//! 2. [`validate`] is pure: it checks every rule, collects *every* error with
//!    its location (`components[1].checks[0].url`), and only then builds the
//!    typed [`PageConfig`] the daemons use. Durations, URLs and addresses are
//!    parsed here once, never again at check time.
//!
//! The validated config is what the decider stores in KV `config` and what
//! probes and the publisher read back.
//!
//! # Layout
//!
//! - this module: the page, groups, components, defaults, errors and the
//!   entry points.
//! - [`checks`]: one module per check kind (`http`, `tcp`, `icmp`, `dns`,
//!   `push`), each with its raw fields, its typed target and its own
//!   validation, registered in one tagged enum.
//! - [`condition`]: the condition language (`[STATUS] == 200`), parsed once
//!   into a typed AST and evaluated purely.
//! - [`channels`]: the same for channel kinds (`email`, `sms`, `webhook`,
//!   `slack`, `teams`).
//! - [`sla`]: status weights and uptime targets for uptime and SLA reports.
//! - [`notifications`]: batching window, component notices, SMS impacts,
//!   digest period.

pub use beacon_contract::api::ConfigError;

pub mod api;
pub mod channels;
pub mod checks;
pub mod condition;

pub use checks::dns::DnsTarget;
pub use checks::http::HttpTarget;
pub use checks::icmp::IcmpTarget;
pub use checks::push::{PushFormat, PushTarget};
pub use checks::tcp::TcpTarget;
pub mod notifications;
pub mod sla;

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use beacon_contract::event::Message;
use beacon_contract::names::check_token;

// ---------------------------------------------------------------------------
// Phase 1: raw structs, exactly what the file says.
// ---------------------------------------------------------------------------

/// The page config file as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPageConfig {
    /// The page itself.
    pub page: RawPage,
    /// Defaults for every check.
    #[serde(default)]
    pub defaults: RawDefaults,
    /// Component groups, shown as sections on the page.
    #[serde(default)]
    pub groups: Vec<RawGroup>,
    /// Components whose status the page shows.
    #[serde(default)]
    pub components: Vec<RawComponent>,
    /// Notification channels offered to subscribers, validated by their
    /// `type`'s module ([`channels`]).
    #[serde(default)]
    #[schemars(with = "Vec<channels::RawChannel>")]
    pub channels: Vec<toml::Table>,
    /// Status weights and the default uptime target ([`sla`]).
    #[serde(default)]
    pub sla: sla::RawSla,
    /// How subscribers are notified ([`notifications`]).
    #[serde(default)]
    pub notifications: notifications::RawNotifications,
}

/// `[page]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPage {
    /// Page id: lowercase letters, digits, `-`, `_`.
    pub id: String,
    /// Page title.
    pub name: String,
    /// Short description under the title.
    #[serde(default)]
    pub description: String,
    /// Public URL of the page.
    #[serde(default)]
    pub url: Option<String>,
}

/// `[defaults]`: values a check gets when it does not say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// Probe regions that run each check.
    pub regions: Option<Vec<String>>,
    /// Time between runs, e.g. `30s`.
    pub interval: Option<String>,
    /// Time a run may take, e.g. `5s`.
    pub timeout: Option<String>,
    /// Consecutive failures before a region calls the component down.
    pub failure_threshold: Option<u32>,
    /// Consecutive successes before a region calls the component up again.
    pub recovery_threshold: Option<u32>,
    /// Failures among the latest results that call a region down, e.g.
    /// `"3 of 5"`; replaces `failure_threshold` when set.
    pub failure_window: Option<String>,
    /// Successes among the latest results that call a region up again,
    /// e.g. `"4 of 5"`; replaces `recovery_threshold` when set.
    pub recovery_window: Option<String>,
    /// Latency over which a passing result counts as slow, e.g. `"800ms"`;
    /// a region that stays slow is `degraded_performance`.
    pub degraded_latency: Option<String>,
    /// Status changes within `flap_window` above which a component is flapping.
    pub flap_transitions: Option<u32>,
    /// The window `flap_transitions` is counted in, e.g. `"15m"`.
    pub flap_window: Option<String>,
}

/// `quorum = 2` or `quorum = "majority"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawQuorum {
    /// Regions that must fail for `major_outage`.
    Count(i64),
    /// `"majority"`.
    Word(String),
}

/// `[[groups]]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    /// Group id.
    pub id: String,
    /// Group title.
    pub name: String,
}

/// `[[components]]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawComponent {
    /// Component id.
    pub id: String,
    /// Component title.
    pub name: String,
    /// Short description.
    #[serde(default)]
    pub description: String,
    /// Id of the group it belongs to.
    #[serde(default)]
    pub group: Option<String>,
    /// Failing regions that make a `major_outage` (fewer make a
    /// `partial_outage`): a number, or `"majority"` (the default) of the
    /// regions that count.
    #[serde(default)]
    pub quorum: Option<RawQuorum>,
    /// Ids of components this one depends on: while one of them is down,
    /// this one's incidents and notifications are held back.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Status changes within `flap_window` above which it is flapping;
    /// default `defaults.flap_transitions`, then 6.
    #[serde(default)]
    pub flap_transitions: Option<u32>,
    /// The flap window; default `defaults.flap_window`, then 15m.
    #[serde(default)]
    pub flap_window: Option<String>,
    /// Uptime it promises, in percent (e.g. 99.95); default `sla.target`.
    #[serde(default)]
    pub sla_target: Option<f64>,
    /// Checks whose results decide its status. None means status is set by
    /// hand. Each is read as a table and validated by its `type`'s module
    /// ([`checks`]), so every problem in every check is reported at once.
    #[serde(default)]
    #[schemars(with = "Vec<checks::RawCheck>")]
    pub checks: Vec<toml::Table>,
}

// ---------------------------------------------------------------------------
// Phase 2: validated, typed config.
// ---------------------------------------------------------------------------

/// A validated page config. Only [`validate`] builds one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageConfig {
    /// Page id.
    pub id: String,
    /// Page title.
    pub name: String,
    /// Description.
    pub description: String,
    /// Public URL.
    pub url: Option<String>,
    /// Groups in file order.
    pub groups: Vec<Group>,
    /// Components in file order.
    pub components: Vec<Component>,
    /// Notification channels.
    pub channels: Vec<Channel>,
    /// Status weights and the default target.
    #[serde(default)]
    pub sla: sla::Sla,
    /// How subscribers are notified.
    #[serde(default)]
    pub notifications: notifications::Notifications,
}

impl Message for PageConfig {
    const KIND: &'static str = "page_config";
    const VERSION: u32 = 1;
}

impl PageConfig {
    /// The component with this id.
    pub fn component(&self, id: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.id == id)
    }
}

/// A validated group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Group id.
    pub id: String,
    /// Title.
    pub name: String,
}

/// A validated component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Component id.
    pub id: String,
    /// Title.
    pub name: String,
    /// Description.
    pub description: String,
    /// Group id.
    pub group: Option<String>,
    /// Checks.
    pub checks: Vec<Check>,
    /// Failing regions that make a `major_outage`.
    #[serde(default)]
    pub quorum: Quorum,
    /// Components it depends on.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Status changes within `flap_window_ms` above which it is flapping.
    #[serde(default = "fallback::flap_transitions")]
    pub flap_transitions: u32,
    /// The flap window.
    #[serde(default = "fallback::flap_window_ms")]
    pub flap_window_ms: u64,
    /// Uptime it promises, in percent.
    #[serde(default = "sla::default_target")]
    pub sla_target: f64,
}

/// How many failing regions make a `major_outage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Quorum {
    /// More than half of the regions that count.
    #[default]
    Majority,
    /// At least this many.
    Count(u32),
}

impl Quorum {
    /// Failing regions needed among `counted` regions (at least one).
    pub fn needed(self, counted: usize) -> usize {
        match self {
            Quorum::Majority => counted / 2 + 1,
            Quorum::Count(n) => (n as usize).max(1),
        }
    }

    /// For people: `majority` or `2`.
    pub fn describe(self) -> String {
        match self {
            Quorum::Majority => "majority".to_owned(),
            Quorum::Count(n) => n.to_string(),
        }
    }
}

impl Component {
    /// Every region that runs at least one of the component's checks, sorted.
    pub fn regions(&self) -> Vec<String> {
        let mut regions: Vec<String> = self
            .checks
            .iter()
            .flat_map(|c| c.regions.iter().cloned())
            .collect();
        regions.sort();
        regions.dedup();
        regions
    }
}

/// A validated check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Check id within the component.
    pub id: String,
    /// What to check.
    pub target: CheckTarget,
    /// Regions that run it.
    pub regions: Vec<String>,
    /// Time between runs.
    pub interval_ms: u64,
    /// Time a run may take.
    pub timeout_ms: u64,
    /// Consecutive failures before a region calls it down.
    pub failure_threshold: u32,
    /// Consecutive successes before a region calls it up.
    pub recovery_threshold: u32,
    /// k failures of the latest n results call a region down (instead of
    /// `failure_threshold`).
    #[serde(default)]
    pub failure_window: Option<KOfN>,
    /// k successes of the latest n call it up again (instead of
    /// `recovery_threshold`).
    #[serde(default)]
    pub recovery_window: Option<KOfN>,
    /// Latency over which a passing result counts as slow.
    #[serde(default)]
    pub degraded_latency_ms: Option<u64>,
}

/// "k of the latest n results".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KOfN {
    /// How many must agree.
    pub k: u32,
    /// Of how many latest results.
    pub n: u32,
}

impl KOfN {
    /// Largest `n` accepted: the decider keeps the latest results as bits.
    pub const MAX_N: u32 = 64;

    /// Parses `"3 of 5"`.
    pub fn parse(text: &str) -> Result<KOfN, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let (k, n) = match words.as_slice() {
            [k, "of", n] => (k.parse::<u32>(), n.parse::<u32>()),
            _ => return Err(format!("{text:?} is not \"K of N\", e.g. \"3 of 5\"")),
        };
        let (Ok(k), Ok(n)) = (k, n) else {
            return Err(format!("{text:?}: K and N must be whole numbers"));
        };
        if k == 0 || k > n || n > Self::MAX_N {
            return Err(format!("{text:?}: need 1 <= K <= N <= {}", Self::MAX_N));
        }
        Ok(KOfN { k, n })
    }
}

impl Check {
    /// Interval as a duration.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    /// Timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// What a check does; one variant per check kind, each defined in its
/// kind's module under [`checks`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CheckTarget {
    /// An HTTP(S) request.
    Http(HttpTarget),
    /// A TCP connect.
    Tcp(TcpTarget),
    /// ICMP echo requests.
    Icmp(IcmpTarget),
    /// A DNS query.
    Dns(DnsTarget),
    /// Status pushed to the probe.
    Push(PushTarget),
}

impl CheckTarget {
    /// The kind, as reported in results and metrics.
    pub fn kind(&self) -> beacon_contract::messages::CheckKind {
        use beacon_contract::messages::CheckKind;
        match self {
            CheckTarget::Http(_) => CheckKind::Http,
            CheckTarget::Tcp(_) => CheckKind::Tcp,
            CheckTarget::Icmp(_) => CheckKind::Icmp,
            CheckTarget::Dns(_) => CheckKind::Dns,
            CheckTarget::Push(_) => CheckKind::Push,
        }
    }
}

/// HTTP methods a check may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// GET.
    Get,
    /// HEAD.
    Head,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
    /// OPTIONS.
    Options,
}

impl HttpMethod {
    /// The method as sent, e.g. `GET`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Options => "OPTIONS",
        }
    }
}

/// A validated notification channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// Channel id.
    pub id: String,
    /// Kind and provider settings.
    pub provider: ChannelProvider,
    /// Most messages per second for the provider account.
    pub rate_per_second: u32,
    /// Most messages at once above the rate (a token bucket's size).
    #[serde(default = "fallback::burst")]
    pub burst: u32,
    /// Most deliveries in flight at once through the account.
    #[serde(default = "fallback::concurrency")]
    pub concurrency: u32,
    /// Most messages per second to one destination URL (webhook, Slack,
    /// Teams); Slack's incoming webhooks take one a second.
    #[serde(default = "fallback::destination_rate")]
    pub destination_rate_per_second: u32,
}

/// A channel kind with its provider settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelProvider {
    /// SMTP relay.
    Email {
        /// Sender address.
        from: String,
        /// Relay `host:port`.
        relay: String,
        /// Env var with the relay credentials `USER:PASSWORD`, if any.
        secret_env: Option<String>,
        /// How the connection is secured.
        #[serde(default)]
        tls: SmtpTls,
    },
    /// Twilio API.
    Sms {
        /// Sender number, E.164.
        from: String,
        /// API base URL.
        api_base: String,
        /// Env var with `ACCOUNT_SID:AUTH_TOKEN`.
        secret_env: String,
        /// More sender numbers of the account; a recipient always gets
        /// messages from the same one, so its STOP reaches the right number.
        #[serde(default)]
        pool: Vec<String>,
    },
    /// Signed webhooks; subscribers give their URLs.
    Webhook {
        /// Env var with the signing secret.
        secret_env: String,
    },
    /// Slack incoming webhooks.
    Slack,
    /// Teams incoming webhooks.
    Teams,
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only for a relay on the same host or a test sink.
    None,
}

// ---------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------

/// Every problem found in a config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} error(s) in page config:", self.0.len())?;
        for error in &self.0 {
            writeln!(f, "  - {error}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Entry points.
// ---------------------------------------------------------------------------

/// Parses and validates config text in one go.
pub fn load(text: &str) -> Result<PageConfig, ConfigErrors> {
    validate(&parse_toml(text)?)
}

/// Phase 1: TOML text to raw structs. Syntax errors and unknown fields carry a line and column.
pub fn parse_toml(text: &str) -> Result<RawPageConfig, ConfigErrors> {
    toml::from_str(text).map_err(|e| {
        let location = match e.span() {
            Some(span) => line_column(text, span.start),
            None => "file".to_owned(),
        };
        ConfigErrors(vec![ConfigError {
            location,
            message: e.message().to_owned(),
        }])
    })
}

fn line_column(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}

/// Defaults used when neither the check nor `[defaults]` says.
pub mod fallback {
    /// Interval.
    pub const INTERVAL: &str = "30s";
    /// Timeout.
    pub const TIMEOUT: &str = "5s";
    /// Failure threshold.
    pub const FAILURE_THRESHOLD: u32 = 2;
    /// Recovery threshold.
    pub const RECOVERY_THRESHOLD: u32 = 2;
    /// Channel rate.
    pub const RATE_PER_SECOND: u32 = 10;
    /// Deliveries in flight at once per channel account.
    pub const CONCURRENCY: u32 = 16;
    /// Messages per second to one destination URL.
    pub const DESTINATION_RATE: u32 = 5;

    /// For serde: a channel stored before bursts existed allows none.
    pub fn burst() -> u32 {
        1
    }

    /// For serde: [`CONCURRENCY`].
    pub fn concurrency() -> u32 {
        CONCURRENCY
    }

    /// For serde: [`DESTINATION_RATE`].
    pub fn destination_rate() -> u32 {
        DESTINATION_RATE
    }
    /// Flap transitions.
    pub const FLAP_TRANSITIONS: u32 = 6;
    /// Flap window.
    pub const FLAP_WINDOW: &str = "15m";

    /// Flap transitions, for serde defaults of configs stored before the field.
    pub fn flap_transitions() -> u32 {
        FLAP_TRANSITIONS
    }

    /// Flap window in milliseconds, for serde defaults.
    pub fn flap_window_ms() -> u64 {
        15 * 60 * 1000
    }
}

/// Shortest check interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest check interval accepted.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Longest name accepted.
pub const MAX_NAME_LEN: usize = 200;

/// Collects errors while walking the raw config.
#[derive(Default)]
struct Errors(Vec<ConfigError>);

impl Errors {
    fn add(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            location: location.into(),
            message: message.into(),
        });
    }

    fn token(&mut self, location: &str, value: &str) {
        if let Err(e) = check_token(value) {
            self.add(location, format!("invalid id {value:?}: {e}"));
        }
    }

    fn name(&mut self, location: &str, value: &str) {
        if value.trim().is_empty() {
            self.add(location, "must not be empty");
        } else if value.chars().count() > MAX_NAME_LEN {
            self.add(
                location,
                format!("must be at most {MAX_NAME_LEN} characters"),
            );
        }
    }

    fn duration(&mut self, location: &str, value: &str) -> Option<Duration> {
        match humantime::parse_duration(value) {
            Ok(d) => Some(d),
            Err(e) => {
                self.add(
                    location,
                    format!("invalid duration {value:?} ({e}); write e.g. \"30s\" or \"2m\""),
                );
                None
            }
        }
    }

    fn threshold(&mut self, location: &str, value: u32) {
        if !(1..=100).contains(&value) {
            self.add(location, format!("must be between 1 and 100, got {value}"));
        }
    }

    fn k_of_n(&mut self, location: &str, value: &str) -> Option<KOfN> {
        match KOfN::parse(value) {
            Ok(window) => Some(window),
            Err(e) => {
                self.add(location, e);
                None
            }
        }
    }

    fn flap_transitions(&mut self, location: &str, value: u32) {
        if !(2..=1000).contains(&value) {
            self.add(location, format!("must be between 2 and 1000, got {value}"));
        }
    }

    fn flap_window(&mut self, location: &str, value: &str) -> Option<Duration> {
        let window = self.duration(location, value)?;
        if !(Duration::from_secs(10)..=Duration::from_secs(24 * 3600)).contains(&window) {
            self.add(
                location,
                format!("must be between 10s and 24h, got {value}"),
            );
            return None;
        }
        Some(window)
    }
}

/// Phase 2: checks every rule and builds the typed config, or returns every error.
pub fn validate(raw: &RawPageConfig) -> Result<PageConfig, ConfigErrors> {
    let mut errors = Errors::default();

    errors.token("page.id", &raw.page.id);
    errors.name("page.name", &raw.page.name);
    if let Some(url) = &raw.page.url {
        check_http_url(&mut errors, "page.url", url);
    }

    let defaults = &raw.defaults;
    if let Some(regions) = &defaults.regions {
        check_regions(&mut errors, "defaults.regions", regions);
    }
    for (field, value) in [
        ("interval", &defaults.interval),
        ("timeout", &defaults.timeout),
    ] {
        if let Some(value) = value {
            errors.duration(&format!("defaults.{field}"), value);
        }
    }
    if let Some(t) = defaults.failure_threshold {
        errors.threshold("defaults.failure_threshold", t);
    }
    if let Some(t) = defaults.recovery_threshold {
        errors.threshold("defaults.recovery_threshold", t);
    }
    for (field, value) in [
        ("failure_window", &defaults.failure_window),
        ("recovery_window", &defaults.recovery_window),
    ] {
        if let Some(value) = value {
            errors.k_of_n(&format!("defaults.{field}"), value);
        }
    }
    if let Some(value) = &defaults.degraded_latency {
        errors.duration("defaults.degraded_latency", value);
    }
    if let Some(t) = defaults.flap_transitions {
        errors.flap_transitions("defaults.flap_transitions", t);
    }
    if let Some(value) = &defaults.flap_window {
        errors.flap_window("defaults.flap_window", value);
    }

    let page_sla = sla::validate(&mut errors, &raw.sla);
    let page_notifications = notifications::validate(&mut errors, &raw.notifications);

    let mut group_ids = HashSet::new();
    let mut groups = Vec::new();
    for (i, group) in raw.groups.iter().enumerate() {
        let at = format!("groups[{i}]");
        errors.token(&format!("{at}.id"), &group.id);
        errors.name(&format!("{at}.name"), &group.name);
        if !group_ids.insert(group.id.as_str()) {
            errors.add(
                format!("{at}.id"),
                format!("duplicate group id {:?}", group.id),
            );
        }
        groups.push(Group {
            id: group.id.clone(),
            name: group.name.clone(),
        });
    }

    if raw.components.is_empty() {
        errors.add("components", "a page needs at least one component");
    }
    let mut component_ids = HashSet::new();
    let mut components = Vec::new();
    for (i, component) in raw.components.iter().enumerate() {
        let at = format!("components[{i}]");
        errors.token(&format!("{at}.id"), &component.id);
        errors.name(&format!("{at}.name"), &component.name);
        if !component_ids.insert(component.id.as_str()) {
            errors.add(
                format!("{at}.id"),
                format!("duplicate component id {:?}", component.id),
            );
        }
        if let Some(group) = &component.group {
            if !group_ids.contains(group.as_str()) {
                errors.add(format!("{at}.group"), format!("no group with id {group:?}"));
            }
        }
        let mut check_ids = HashSet::new();
        let mut checks = Vec::new();
        for (j, check) in component.checks.iter().enumerate() {
            let at = format!("{at}.checks[{j}]");
            if let Some(check) = checks::validate(&mut errors, &at, check, defaults) {
                if !check_ids.insert(check.id.clone()) {
                    errors.add(
                        format!("{at}.id"),
                        format!("duplicate check id {:?} in this component", check.id),
                    );
                }
                checks.push(check);
            }
        }
        let regions = {
            let mut regions: Vec<&String> = checks.iter().flat_map(|c| &c.regions).collect();
            regions.sort();
            regions.dedup();
            regions.len()
        };
        let quorum = match &component.quorum {
            None => Quorum::Majority,
            Some(RawQuorum::Word(word)) if word == "majority" => Quorum::Majority,
            Some(RawQuorum::Word(word)) => {
                errors.add(
                    format!("{at}.quorum"),
                    format!("{word:?} is not a quorum; write a number of regions or \"majority\""),
                );
                Quorum::Majority
            }
            Some(RawQuorum::Count(n)) => {
                if *n < 1 || (!checks.is_empty() && *n as usize > regions) {
                    errors.add(
                        format!("{at}.quorum"),
                        format!(
                            "must be between 1 and the component's {regions} region(s), got {n}"
                        ),
                    );
                }
                Quorum::Count(u32::try_from(*n).unwrap_or(1).max(1))
            }
        };
        let flap_transitions = component
            .flap_transitions
            .or(defaults.flap_transitions)
            .unwrap_or(fallback::FLAP_TRANSITIONS);
        if component.flap_transitions.is_some() {
            errors.flap_transitions(&format!("{at}.flap_transitions"), flap_transitions);
        }
        let flap_window = match &component.flap_window {
            Some(text) => errors.flap_window(&format!("{at}.flap_window"), text),
            None => defaults
                .flap_window
                .as_deref()
                .and_then(|text| humantime::parse_duration(text).ok()),
        };
        let sla_target = match component.sla_target {
            Some(target) => sla::check_target(&mut errors, &format!("{at}.sla_target"), target),
            None => page_sla.target,
        };
        components.push(Component {
            id: component.id.clone(),
            name: component.name.clone(),
            description: component.description.clone(),
            group: component.group.clone(),
            checks,
            quorum,
            depends_on: component.depends_on.clone(),
            flap_transitions,
            flap_window_ms: flap_window
                .map_or_else(fallback::flap_window_ms, |w| w.as_millis() as u64),
            sla_target,
        });
    }
    check_dependencies(&mut errors, &raw.components);

    let mut channel_ids = HashSet::new();
    let mut channels = Vec::new();
    for (i, channel) in raw.channels.iter().enumerate() {
        let at = format!("channels[{i}]");
        if let Some(channel) = channels::validate(&mut errors, &at, channel) {
            if !channel_ids.insert(channel.id.clone()) {
                errors.add(
                    format!("{at}.id"),
                    format!("duplicate channel id {:?}", channel.id),
                );
            }
            channels.push(channel);
        }
    }

    if !errors.0.is_empty() {
        return Err(ConfigErrors(errors.0));
    }
    Ok(PageConfig {
        id: raw.page.id.clone(),
        name: raw.page.name.clone(),
        description: raw.page.description.clone(),
        url: raw.page.url.clone(),
        groups,
        components,
        channels,
        sla: page_sla,
        notifications: page_notifications,
    })
}

/// Reads one `type`-tagged table (a check or a channel) into its kind's raw
/// form `T`, reporting every problem at its own location: a missing or
/// unknown `type`, each key that is neither a `common` field nor one of the
/// kind's own (`fields`), and values of the wrong type. `None` when it
/// cannot be read.
fn read_tagged<T: serde::de::DeserializeOwned>(
    errors: &mut Errors,
    at: &str,
    table: &toml::Table,
    what: &str,
    kinds: &[&str],
    common: &[&str],
    fields: fn(&str) -> &'static [&'static str],
) -> Option<T> {
    let expected = kinds
        .iter()
        .map(|k| format!("{k:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let kind = match table.get("type") {
        Some(toml::Value::String(kind)) if kinds.contains(&kind.as_str()) => kind.as_str(),
        Some(toml::Value::String(other)) => {
            errors.add(
                format!("{at}.type"),
                format!("unknown {what} type {other:?}; expected one of {expected}"),
            );
            return None;
        }
        Some(_) => {
            errors.add(
                format!("{at}.type"),
                format!("must be a string, one of {expected}"),
            );
            return None;
        }
        None => {
            errors.add(
                format!("{at}.type"),
                format!("a {what} needs a type, one of {expected}"),
            );
            return None;
        }
    };
    let own = fields(kind);
    let before = errors.0.len();
    for key in table.keys() {
        if key != "type" && !common.contains(&key.as_str()) && !own.contains(&key.as_str()) {
            errors.add(
                format!("{at}.{key}"),
                format!(
                    "unknown field {key:?}: not valid for a {kind} {what}; expected one of {}",
                    common
                        .iter()
                        .chain(own)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
    if errors.0.len() > before {
        return None;
    }
    match toml::Value::Table(table.clone()).try_into::<T>() {
        Ok(raw) => Some(raw),
        Err(e) => {
            errors.add(at, e.message().trim().to_owned());
            None
        }
    }
}

/// For the kinds' tests: the keys `sample` serializes to, besides `type`,
/// are exactly `common` plus the kind's own `fields`, so the unknown-field
/// check and the structs cannot drift apart.
#[cfg(test)]
fn assert_fields_match<T: Serialize>(
    sample: &T,
    common: &[&str],
    fields: fn(&str) -> &'static [&'static str],
) {
    let table = toml::Table::try_from(sample).expect("a sample serializes");
    let kind = table["type"].as_str().expect("a type").to_owned();
    let mut keys: Vec<&str> = table
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "type")
        .collect();
    let mut want: Vec<&str> = common.iter().chain(fields(&kind)).copied().collect();
    keys.sort_unstable();
    want.sort_unstable();
    assert_eq!(keys, want, "{kind}");
}

/// `depends_on` names existing components of the page, not the component
/// itself, each once, and the dependencies form no cycle.
fn check_dependencies(errors: &mut Errors, components: &[RawComponent]) {
    let index: std::collections::HashMap<&str, usize> = components
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    for (i, component) in components.iter().enumerate() {
        let mut seen = HashSet::new();
        for (k, parent) in component.depends_on.iter().enumerate() {
            let at = format!("components[{i}].depends_on[{k}]");
            if parent == &component.id {
                errors.add(at, "a component cannot depend on itself");
            } else if !index.contains_key(parent.as_str()) {
                errors.add(at, format!("no component with id {parent:?}"));
            } else if !seen.insert(parent) {
                errors.add(at, format!("{parent:?} is named twice"));
            }
        }
    }
    // A cycle is reported once, at the first component found on it.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Walking,
        Done,
    }
    fn walk(
        i: usize,
        components: &[RawComponent],
        index: &std::collections::HashMap<&str, usize>,
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[i] = Mark::Walking;
        path.push(i);
        for parent in &components[i].depends_on {
            let Some(&j) = index.get(parent.as_str()) else {
                continue;
            };
            if j == i {
                continue;
            }
            match marks[j] {
                Mark::Walking => {
                    let start = path.iter().position(|&p| p == j).unwrap_or(0);
                    return Some(path[start..].to_vec());
                }
                Mark::New => {
                    if let Some(cycle) = walk(j, components, index, marks, path) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[i] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; components.len()];
    for i in 0..components.len() {
        if marks[i] == Mark::New {
            let mut path = Vec::new();
            if let Some(cycle) = walk(i, components, &index, &mut marks, &mut path) {
                let names: Vec<&str> = cycle
                    .iter()
                    .chain(cycle.first())
                    .map(|&c| components[c].id.as_str())
                    .collect();
                errors.add(
                    format!("components[{}].depends_on", cycle[0]),
                    format!("dependencies form a cycle: {}", names.join(" -> ")),
                );
                return;
            }
        }
    }
}

fn check_regions(errors: &mut Errors, at: &str, regions: &[String]) {
    if regions.is_empty() {
        errors.add(at, "must name at least one region");
    }
    let mut seen = HashSet::new();
    for (k, region) in regions.iter().enumerate() {
        errors.token(&format!("{at}[{k}]"), region);
        if !seen.insert(region) {
            errors.add(format!("{at}[{k}]"), format!("duplicate region {region:?}"));
        }
    }
}

fn check_http_url(errors: &mut Errors, at: &str, text: &str) -> bool {
    match url::Url::parse(text) {
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            errors.add(at, format!("URL {text:?} must use http or https"));
            false
        }
        Ok(url) if url.host_str().is_none() => {
            errors.add(at, format!("URL {text:?} has no host"));
            false
        }
        Ok(_) => true,
        Err(e) => {
            errors.add(at, format!("invalid URL {text:?}: {e}"));
            false
        }
    }
}

fn check_host_port(errors: &mut Errors, at: &str, text: &str) {
    let Some((host, port)) = text.rsplit_once(':') else {
        errors.add(at, format!("address {text:?} must be host:port"));
        return;
    };
    if host.trim_matches(['[', ']']).is_empty() {
        errors.add(at, format!("address {text:?} has no host"));
    }
    if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
        errors.add(at, format!("address {text:?} has an invalid port"));
    }
}
