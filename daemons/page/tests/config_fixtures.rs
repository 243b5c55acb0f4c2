//! Page config fixtures: every `testdata/config/valid.*.toml` loads, every
//! `invalid.*.toml` fails with exactly the expected error locations, the demo
//! config in `examples/` is valid, and `validate` never panics.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use beacon_page::config::{
    self, CheckTarget, ConfigErrors, HttpMethod, RawComponent, RawDefaults, RawGroup, RawPage,
    RawPageConfig, TcpTarget,
};
use proptest::prelude::*;

/// Every invalid fixture and the exact locations its errors must name, one
/// entry per error (a location that has two problems appears twice).
/// Locations are what an operator reads to find the mistake, so they are part
/// of the contract, not an implementation detail.
const INVALID: &[(&str, &[&str])] = &[
    (
        "many-errors",
        &[
            "components[0].checks[0].failure_threshold",
            // The check inherits the bad default, and says so at its own
            // location too, so the operator sees which checks it breaks.
            "components[0].checks[0].interval",
            "components[0].checks[0].url",
            "components[0].group",
            "components[1].checks[0].address",
            "components[1].checks[0].failure_threshold",
            "defaults.failure_threshold",
            "defaults.interval",
            "page.id",
            "page.name",
        ],
    ),
    // The unknown key is named at its own path, next to every other error.
    ("unknown-field", &["components[0].checks[0].intervall"]),
    (
        "unknown-channel-field",
        &["channels[0].endpoint", "channels[1].address"],
    ),
    ("bad-duration", &["components[0].checks[0].interval"]),
    (
        "bad-notifications",
        &[
            "channels[0].concurrency",
            "channels[0].tls",
            "channels[1].pool[0]",
            "notifications.digest_every",
            "notifications.sms_impacts[1]",
            "notifications.window",
        ],
    ),
    (
        "timeout-over-interval",
        &["components[0].checks[0].timeout"],
    ),
    ("unknown-group", &["components[0].group"]),
    // The second occurrence is the one reported: the first is fine on its own.
    ("duplicate-component", &["components[1].id"]),
    ("duplicate-check", &["components[0].checks[1].id"]),
    (
        "bad-url-scheme",
        &["components[0].checks[0].url", "page.url"],
    ),
    (
        "bad-region",
        &[
            "components[0].checks[0].regions[0]",
            "defaults.regions[1]",
            "defaults.regions[2]",
        ],
    ),
    (
        "missing-regions",
        &[
            "components[0].checks[0].regions",
            "components[1].checks[0].regions",
        ],
    ),
    ("unknown-check-type", &["components[0].checks[0].type"]),
    (
        "bad-quorum",
        &["components[0].quorum", "components[1].quorum"],
    ),
    (
        "dependency-cycle",
        &[
            // The cycle is named once, where it was found.
            "components[0].depends_on",
            "components[2].depends_on[0]",
            "components[2].depends_on[1]",
            "components[2].depends_on[3]",
        ],
    ),
    (
        "bad-windows",
        &[
            "components[0].checks[0].degraded_latency",
            "components[0].checks[0].recovery_window",
            "components[0].flap_transitions",
            "defaults.failure_window",
            "defaults.flap_window",
        ],
    ),
    ("http-with-address", &["components[0].checks[0].address"]),
    (
        "bad-channel",
        &[
            "channels[0].endpoint",
            "channels[0].from",
            "channels[1].rate_per_second",
            "channels[1].secret_env",
            "channels[2].type",
        ],
    ),
    ("empty-components", &["components"]),
    (
        "bad-condition",
        &[
            "components[0].checks[0].conditions[1]",
            "components[0].checks[0].conditions[2]",
            "components[0].checks[0].conditions[3]",
            "components[0].checks[0].conditions[4]",
            "components[0].checks[0].degraded_if[0]",
            "components[1].checks[0].conditions[0]",
        ],
    ),
    (
        "new-kinds",
        &[
            "components[0].checks[0].count",
            "components[0].checks[0].host",
            "components[0].checks[1].nameserver",
            "components[0].checks[1].record_type",
            "components[0].checks[2].format",
            "components[0].checks[2].token_sha256",
            "components[1].checks[0].regions",
        ],
    ),
    (
        "bad-sla",
        &[
            "components[0].sla_target",
            "components[1].sla_target",
            "sla.target",
            "sla.weights.partial_outage",
        ],
    ),
];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/config")
}

fn demo_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo.toml")
}

/// Case names of the fixtures `{prefix}.{case}.toml`, sorted.
fn cases(prefix: &str) -> Vec<String> {
    let mut cases: Vec<String> = std::fs::read_dir(fixture_dir())
        .expect("read testdata/config")
        .map(|entry| {
            entry
                .expect("read a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter_map(|name| {
            name.strip_prefix(&format!("{prefix}."))
                .and_then(|rest| rest.strip_suffix(".toml"))
                .map(str::to_owned)
        })
        .collect();
    cases.sort();
    cases
}

fn read(prefix: &str, case: &str) -> String {
    let path = fixture_dir().join(format!("{prefix}.{case}.toml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn every_valid_fixture_loads() {
    let cases = cases("valid");
    // Guards against the directory moving and the loop below passing on nothing.
    assert!(cases.len() >= 3, "expected valid fixtures, found {cases:?}");
    for case in cases {
        if let Err(errors) = config::load(&read("valid", &case)) {
            panic!("valid.{case}.toml should load, got:\n{errors}");
        }
    }
}

#[test]
fn every_invalid_fixture_fails_with_the_expected_locations() {
    let files: BTreeSet<String> = cases("invalid").into_iter().collect();
    let table: BTreeSet<String> = INVALID.iter().map(|(case, _)| (*case).to_owned()).collect();
    // A fixture without a table entry would be checked for nothing but
    // failure; a table entry without a fixture would be silently skipped.
    assert_eq!(
        files, table,
        "invalid.*.toml files and the INVALID table disagree"
    );

    for (case, expected) in INVALID {
        let errors = match config::load(&read("invalid", case)) {
            Ok(config) => panic!("invalid.{case}.toml should fail, but loaded as {config:#?}"),
            Err(ConfigErrors(errors)) => errors,
        };
        let mut locations: Vec<&str> = errors.iter().map(|e| e.location.as_str()).collect();
        locations.sort_unstable();
        let mut expected = expected.to_vec();
        expected.sort_unstable();
        assert_eq!(
            locations,
            expected,
            "locations of invalid.{case}.toml; errors were:\n{}",
            ConfigErrors(errors.clone())
        );
        for error in &errors {
            assert!(
                !error.message.trim().is_empty(),
                "invalid.{case}.toml: empty message at {}",
                error.location
            );
        }
    }
}

#[test]
fn condition_errors_say_which_column() {
    let errors =
        config::load(&read("invalid", "bad-condition")).expect_err("bad conditions must fail");
    let message = |location: &str| {
        errors
            .0
            .iter()
            .find(|e| e.location == location)
            .map(|e| e.message.clone())
            .unwrap_or_else(|| panic!("no error at {location}: {errors}"))
    };
    let unknown = message("components[0].checks[0].conditions[1]");
    assert!(
        unknown.contains("column 1") && unknown.contains("[STAUS]"),
        "{unknown}"
    );
    let operator = message("components[0].checks[0].conditions[2]");
    assert!(operator.contains("column 15"), "{operator}");
    let kind = message("components[1].checks[0].conditions[0]");
    assert!(kind.contains("does not apply to a tcp check"), "{kind}");
}

#[test]
fn every_kind_loads_with_its_fields() {
    let page = config::load(&read("valid", "every-kind")).expect("valid.every-kind.toml loads");
    let kinds: Vec<&str> = page
        .components
        .iter()
        .flat_map(|c| &c.checks)
        .map(|c| c.target.kind().as_str())
        .collect();
    assert_eq!(kinds, ["http", "tcp", "icmp", "dns", "push", "push"]);
    let CheckTarget::Http(http) = &page.components[0].checks[0].target else {
        panic!("first check is http");
    };
    assert_eq!(http.conditions.len(), 5);
    assert_eq!(http.conditions[1].text(), "[BODY].status == UP");
    assert!(!http.keep_alive && !http.follow_redirects && http.tls_skip_verify);
    // The stored form (KV config) reads back the same, conditions included.
    let json = serde_json::to_string(&page).expect("serializes");
    let back: config::PageConfig = serde_json::from_str(&json).expect("reads back");
    assert_eq!(back, page);
}

#[test]
fn unknown_field_error_names_the_field() {
    // The location alone says where; the message must say what, or a typo
    // like `intervall` is hard to spot.
    let errors =
        config::load(&read("invalid", "unknown-field")).expect_err("unknown field must fail");
    assert!(errors.0[0].message.contains("intervall"), "{errors}");
}

#[test]
fn defaults_fill_in_what_a_check_does_not_say() {
    let page = config::load(&read("valid", "defaults")).expect("valid.defaults.toml loads");
    let api = page.component("api").expect("component api");
    let [first, second] = api.checks.as_slice() else {
        panic!("expected two checks, got {:#?}", api.checks);
    };

    // Unset fields come from [defaults]; the id defaults to the type.
    assert_eq!(first.id, "http");
    assert_eq!(first.regions, ["eu", "us", "ap"]);
    assert_eq!((first.interval_ms, first.timeout_ms), (60_000, 10_000));
    assert_eq!((first.failure_threshold, first.recovery_threshold), (3, 1));
    assert!(
        matches!(&first.target, CheckTarget::Http(http) if http.method == HttpMethod::Get && http.expect_status.is_empty())
    );

    // Set fields win over [defaults]; the method is case-insensitive.
    assert_eq!(second.id, "login");
    assert_eq!((second.interval_ms, second.timeout_ms), (1_000, 1_000));
    assert!(
        matches!(&second.target, CheckTarget::Http(http) if http.method == HttpMethod::Head && http.expect_status == [200, 204])
    );
}

#[test]
fn fallbacks_apply_without_defaults() {
    let page = config::load(&read("valid", "tcp-only")).expect("valid.tcp-only.toml loads");
    let db = &page.component("db").expect("component db").checks[0];
    assert_eq!(
        db.interval(),
        humantime::parse_duration(config::fallback::INTERVAL).expect("fallback interval")
    );
    assert_eq!(
        db.timeout(),
        humantime::parse_duration(config::fallback::TIMEOUT).expect("fallback timeout")
    );
    assert_eq!(db.failure_threshold, config::fallback::FAILURE_THRESHOLD);
    assert_eq!(
        db.target,
        CheckTarget::Tcp(TcpTarget::connect("db.internal:5432"))
    );
}

#[test]
fn sla_settings_default_to_statuspage_and_can_be_set() {
    let defaults = config::load(&read("valid", "minimal")).expect("valid.minimal.toml loads");
    assert_eq!(defaults.sla, config::sla::Sla::default());
    assert_eq!(defaults.sla.target, 99.9);
    assert_eq!(
        (
            defaults.sla.weights.major_outage,
            defaults.sla.weights.partial_outage,
            defaults.sla.weights.degraded_performance
        ),
        (100.0, 30.0, 0.0)
    );
    assert!(defaults.components.iter().all(|c| c.sla_target == 99.9));

    let page = config::load(&read("valid", "sla")).expect("valid.sla.toml loads");
    assert_eq!(page.sla.target, 99.95);
    assert_eq!(page.sla.weights.partial_outage, 50.0);
    assert_eq!(
        page.sla.weights.major_outage, 100.0,
        "unset weights keep their default"
    );
    assert_eq!(page.sla.weights.degraded_performance, 10.0);
    let targets: Vec<f64> = page.components.iter().map(|c| c.sla_target).collect();
    assert_eq!(
        targets,
        [99.99, 99.95],
        "a component's own target wins over the page's"
    );
}

#[test]
fn notification_settings_default_and_can_be_set() {
    use config::notifications::{Notifications, SmsImpact};
    use config::{ChannelProvider, SmtpTls};
    let defaults = config::load(&read("valid", "minimal")).expect("valid.minimal.toml loads");
    assert_eq!(defaults.notifications, Notifications::default());
    assert_eq!(defaults.notifications.window_ms, 15 * 60 * 1000);

    let page = config::load(&read("valid", "notifications")).expect("loads");
    assert_eq!(page.notifications.window_ms, 10 * 60 * 1000);
    assert!(page.notifications.component_status);
    assert_eq!(
        page.notifications.sms_impacts,
        [SmsImpact::Critical, SmsImpact::Maintenance]
    );
    assert_eq!(page.notifications.digest_every_ms, 24 * 3600 * 1000);
    let mail = &page.channels[0];
    assert_eq!(
        (mail.rate_per_second, mail.burst, mail.concurrency),
        (50, 100, 8)
    );
    assert!(matches!(
        page.channels[1].provider,
        ChannelProvider::Email {
            tls: SmtpTls::None,
            ..
        }
    ));
    assert!(
        matches!(&page.channels[2].provider, ChannelProvider::Sms { pool, .. } if pool.len() == 2)
    );
    assert_eq!(page.channels[3].destination_rate_per_second, 2);
    assert_eq!(
        page.channels[4].destination_rate_per_second, 1,
        "a Slack webhook takes one message a second"
    );
}

#[test]
fn configs_stored_before_sla_settings_still_load() {
    let page = config::load(&read("valid", "minimal")).expect("valid.minimal.toml loads");
    let mut value = serde_json::to_value(&page).expect("serialize");
    value.as_object_mut().expect("object").remove("sla");
    for component in value["components"].as_array_mut().expect("components") {
        component
            .as_object_mut()
            .expect("object")
            .remove("sla_target");
    }
    let old: config::PageConfig = serde_json::from_value(value).expect("an older config reads");
    assert_eq!(old, page);
}

#[test]
fn demo_config_is_valid() {
    let text = std::fs::read_to_string(demo_path()).expect("read examples/demo.toml");
    let page = config::load(&text).unwrap_or_else(|errors| panic!("examples/demo.toml:\n{errors}"));
    assert_eq!(
        (page.id.as_str(), page.name.as_str()),
        ("demo", "Beacon Demo")
    );
    let ids: Vec<&str> = page.components.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["api", "web", "db"]);
    for component in &page.components {
        assert!(component.group.is_some(), "{} has no group", component.id);
        for check in &component.checks {
            // The demo runs fast so a local stack shows changes within seconds.
            assert_eq!(check.regions, ["eu", "us"], "{}", component.id);
            assert_eq!(
                (check.interval_ms, check.timeout_ms),
                (2_000, 1_000),
                "{}",
                component.id
            );
        }
    }
    assert_eq!(page.channels.len(), 2);
}

// ---------------------------------------------------------------------------
// Property: validation is total.
// ---------------------------------------------------------------------------

/// Mostly plausible text with some arbitrary Unicode mixed in, so both the
/// rules and the odd corners (empty, huge, non-ASCII) get exercised.
fn text(plausible: &'static str) -> BoxedStrategy<String> {
    prop_oneof![
        3 => proptest::string::string_regex(plausible).expect("valid regex"),
        1 => any::<String>(),
    ]
    .boxed()
}

fn id() -> BoxedStrategy<String> {
    text("[a-z0-9_.A-Z -]{0,10}")
}

fn duration() -> BoxedStrategy<String> {
    text("[0-9]{0,25}(ns|ms|s|m|h|d|y)?")
}

fn url() -> BoxedStrategy<String> {
    text("(https?|ftp|file)://[a-z.]{0,10}(:[0-9]{1,6})?/[a-z]{0,5}")
}

fn address() -> BoxedStrategy<String> {
    text("(\\[::1\\]|[a-z.]{0,10}):?[0-9]{0,6}")
}

fn kind() -> BoxedStrategy<String> {
    text("http|tcp|icmp|dns|push|email|sms|webhook|slack|teams|")
}

fn regions() -> impl Strategy<Value = Option<Vec<String>>> {
    proptest::option::of(proptest::collection::vec(id(), 0..4))
}

/// A table with `type` and every field that is set.
fn table(kind: String, fields: Vec<(&str, Option<toml::Value>)>) -> toml::Table {
    let mut table = toml::Table::new();
    table.insert("type".into(), toml::Value::String(kind));
    for (key, value) in fields {
        if let Some(value) = value {
            table.insert(key.into(), value);
        }
    }
    table
}

fn string(value: Option<String>) -> Option<toml::Value> {
    value.map(toml::Value::String)
}

fn strings(value: Option<Vec<String>>) -> Option<toml::Value> {
    value.map(|v| toml::Value::Array(v.into_iter().map(toml::Value::String).collect()))
}

fn integer(value: Option<u32>) -> Option<toml::Value> {
    value.map(|v| toml::Value::Integer(i64::from(v)))
}

prop_compose! {
    fn raw_check()(
        id in proptest::option::of(id()),
        kind in kind(),
        url in proptest::option::of(url()),
        method in proptest::option::of(text("get|HEAD|post|PUT")),
        expect_status in proptest::option::of(proptest::collection::vec(any::<u16>(), 0..3)),
        body_contains in proptest::option::of(any::<String>()),
        address in proptest::option::of(address()),
        conditions in proptest::option::of(proptest::collection::vec(text("\\[(STATUS|BODY|RESPONSE_TIME|PACKET_LOSS)\\](\\.[a-z]{1,3})? (==|<|contains|matches|=) [0-9a-z\"(]{0,4}"), 0..3)),
        host in proptest::option::of(text("[a-z0-9. ]{0,12}")),
        format in proptest::option::of(text("heartbeat|alertmanager|json|x")),
        regions in regions(),
        interval in proptest::option::of(duration()),
        timeout in proptest::option::of(duration()),
        failure_threshold in proptest::option::of(any::<u32>()),
        recovery_threshold in proptest::option::of(any::<u32>()),
    ) -> toml::Table {
        table(kind, vec![
            ("id", string(id)),
            ("url", string(url)),
            ("method", string(method)),
            ("expect_status", expect_status.map(|codes| toml::Value::Array(
                codes.into_iter().map(|c| toml::Value::Integer(i64::from(c))).collect()))),
            ("body_contains", string(body_contains)),
            ("address", string(address)),
            ("conditions", strings(conditions)),
            ("host", string(host.clone())),
            ("name", string(host)),
            ("format", string(format)),
            ("regions", strings(regions)),
            ("interval", string(interval)),
            ("timeout", string(timeout)),
            ("failure_threshold", integer(failure_threshold)),
            ("recovery_threshold", integer(recovery_threshold)),
        ])
    }
}

prop_compose! {
    fn raw_component()(
        id in id(),
        name in any::<String>(),
        group in proptest::option::of(id()),
        checks in proptest::collection::vec(raw_check(), 0..3),
    ) -> RawComponent {
        RawComponent { id, name, description: String::new(), group, checks, ..RawComponent::default() }
    }
}

prop_compose! {
    fn raw_channel()(
        id in id(),
        kind in kind(),
        from in proptest::option::of(text("\\+?[0-9]{0,16}|[a-z]{0,5}@?[a-z.<>]{0,8}")),
        endpoint in proptest::option::of(prop_oneof![url(), address()]),
        secret_env in proptest::option::of(text("[A-Z_]{0,12}")),
        rate_per_second in proptest::option::of(any::<u32>()),
    ) -> toml::Table {
        table(kind, vec![
            ("id", Some(toml::Value::String(id))),
            ("from", string(from)),
            ("endpoint", string(endpoint)),
            ("secret_env", string(secret_env)),
            ("rate_per_second", integer(rate_per_second)),
        ])
    }
}

prop_compose! {
    fn raw_page_config()(
        page_id in id(),
        page_name in any::<String>(),
        page_url in proptest::option::of(url()),
        regions in regions(),
        interval in proptest::option::of(duration()),
        timeout in proptest::option::of(duration()),
        failure_threshold in proptest::option::of(any::<u32>()),
        recovery_threshold in proptest::option::of(any::<u32>()),
        groups in proptest::collection::vec((id(), any::<String>()), 0..3),
        components in proptest::collection::vec(raw_component(), 0..4),
        channels in proptest::collection::vec(raw_channel(), 0..3),
    ) -> RawPageConfig {
        RawPageConfig {
            page: RawPage { id: page_id, name: page_name, description: String::new(), url: page_url },
            defaults: RawDefaults { regions, interval, timeout, failure_threshold, recovery_threshold, ..RawDefaults::default() },
            groups: groups.into_iter().map(|(id, name)| RawGroup { id, name }).collect(),
            components,
            channels,
            ..RawPageConfig::default()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn validate_never_panics_and_errors_say_where_and_what(raw in raw_page_config()) {
        match config::validate(&raw) {
            Ok(page) => {
                // Whatever passes must be internally consistent.
                prop_assert_eq!(page.components.len(), raw.components.len());
                for check in page.components.iter().flat_map(|c| &c.checks) {
                    prop_assert!(!check.regions.is_empty());
                    prop_assert!(check.timeout_ms > 0 && check.timeout_ms <= check.interval_ms);
                }
            }
            Err(ConfigErrors(errors)) => {
                prop_assert!(!errors.is_empty());
                for error in errors {
                    prop_assert!(!error.location.trim().is_empty(), "empty location: {:?}", error);
                    prop_assert!(!error.message.trim().is_empty(), "empty message: {:?}", error);
                }
            }
        }
    }

    #[test]
    fn parse_toml_never_panics_on_arbitrary_text(text in any::<String>()) {
        // Errors from phase 1 carry a location computed from a byte offset;
        // it must never slice inside a multi-byte character.
        if let Err(ConfigErrors(errors)) = config::parse_toml(&text) {
            for error in errors {
                prop_assert!(!error.location.is_empty() && !error.message.is_empty(), "{:?}", error);
            }
        }
    }
}
