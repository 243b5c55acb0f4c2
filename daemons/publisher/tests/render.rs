//! Rendering tests on a page with everything a page can show:
//!
//! - golden files of every kind of output (`tests/golden/`; regenerate with
//!   `BEACON_UPDATE_GOLDEN=1 cargo test -p beacon-publisher --test render`);
//! - the JSON of every Statuspage endpoint against Statuspage's field set,
//!   types, nullability and enums (`tests/statuspage-fields.json`);
//! - the feeds through a real feed parser (feed-rs) and the calendars
//!   through a real iCal parser (ical);
//! - script, attribute-handler and `javascript:` injection in every
//!   operator text, inert in HTML, feeds, calendars and JSON;
//! - proposed and dismissed incidents, cancelled windows and series never
//!   shown; undecided components never shown as operational.

mod fixture;

use std::collections::HashMap;
use std::path::PathBuf;

use beacon_publisher::render::site;
use fixture::{hostile, normal, HOSTILE};
use serde_json::Value;

fn files(f: &fixture::Fixture) -> HashMap<String, Vec<u8>> {
    site(&f.state()).into_iter().collect()
}

fn text(files: &HashMap<String, Vec<u8>>, path: &str) -> String {
    String::from_utf8(
        files
            .get(path)
            .unwrap_or_else(|| panic!("no {path}"))
            .clone(),
    )
    .expect("utf-8")
}

const GOLDEN: &[&str] = &[
    "index.html",
    "history.html",
    "incidents/inc-open.html",
    "changelog.html",
    "api/v1/status.json",
    "api/v2/summary.json",
    "api/v2/status.json",
    "api/v2/components.json",
    "api/v2/incidents.json",
    "api/v2/incidents/unresolved.json",
    "api/v2/scheduled-maintenances.json",
    "api/v2/scheduled-maintenances/upcoming.json",
    "api/v2/scheduled-maintenances/active.json",
    "history.atom",
    "history.rss",
    "changelog.atom",
    "changelog.rss",
    "maintenance.ics",
    "maintenance/db.ics",
    "live.json",
    "badge.svg",
    "badges/api.svg",
];

#[test]
fn renders_match_the_golden_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("BEACON_UPDATE_GOLDEN").is_some();
    let rendered = files(&normal());
    let mut drift = Vec::new();
    for path in GOLDEN {
        let golden = dir.join(path.replace('/', "__"));
        let bytes = &rendered[*path];
        if update {
            std::fs::write(&golden, bytes).expect("write golden file");
            continue;
        }
        match std::fs::read(&golden) {
            Ok(want) if &want == bytes => {}
            _ => drift.push(path.to_string()),
        }
    }
    assert!(
        drift.is_empty(),
        "renders differ from tests/golden for {drift:?}; if intended, run \
         BEACON_UPDATE_GOLDEN=1 cargo test -p beacon-publisher --test render and review the diff"
    );
}

#[test]
fn the_page_shows_what_is_public_and_nothing_else() {
    let f = normal();
    let rendered = files(&f);
    let index = text(&rendered, "index.html");
    assert!(index.contains("id=\"page-status\" data-status=\"partial_outage\""));
    assert!(index.contains("Elevated API errors"), "active incident");
    assert!(index.contains("Storage move"), "maintenance in progress");
    assert!(index.contains("Database upgrade"), "upcoming maintenance");
    assert!(index.contains("id=\"component-search\" data-status=\"unknown\""));
    assert!(index.contains("No data yet"));
    assert!(
        index.contains("<li class=u4 data-u=90.00>"),
        "a bar with its day's figure"
    );
    assert!(
        index.contains(".bars li:nth-child(89){--d:\"2026-11-26\"}"),
        "the bar's date, shown on hover"
    );
    assert!(
        index.contains("2026-11-26: 90.00% uptime"),
        "the day in words for assistive technology"
    );
    let bars: usize = index
        .split("<ol class=\"bars\" aria-hidden=\"true\">")
        .skip(1)
        .map(|list| {
            list.split("</ol>")
                .next()
                .unwrap_or("")
                .matches("<li")
                .count()
        })
        .sum();
    assert_eq!(bars, 4 * 90, "90 bars per component");
    assert!(index.contains("<script src=\"live.js\" defer></script>"));
    assert!(index.contains("prefers-color-scheme:dark"));
    for path in rendered.keys() {
        assert!(
            !path.contains("inc-proposed") && !path.contains("inc-dismissed"),
            "{path}"
        );
    }
    for (path, bytes) in &rendered {
        let body = String::from_utf8_lossy(bytes);
        for hidden in [
            "PROPOSED MUST NOT SHOW",
            "DISMISSED MUST NOT SHOW",
            "CANCELLED MUST NOT SHOW",
            "SERIES MUST NOT SHOW",
        ] {
            assert!(!body.contains(hidden), "{path} shows {hidden}");
        }
        if path.ends_with(".html") {
            // No request to another origin: every src is relative, and no
            // absolute http(s) URL is loaded (links to the page's own URL
            // in feeds are not loads).
            assert!(
                !body.contains("src=\"http") && !body.contains("src=\"//"),
                "{path}"
            );
            assert!(!body.contains("<link rel=\"stylesheet\""), "{path}");
        }
    }
    let summary: Value = serde_json::from_slice(&rendered["api/v2/summary.json"]).expect("json");
    let ids: Vec<&str> = summary["components"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert!(
        !ids.contains(&"search"),
        "undecided components stay out of components"
    );
    assert_eq!(summary["beacon_undecided"], serde_json::json!(["search"]));
    assert_eq!(
        summary["incidents"].as_array().map(Vec::len),
        Some(1),
        "unresolved only"
    );
    let incidents: Value =
        serde_json::from_slice(&rendered["api/v2/incidents.json"]).expect("json");
    assert_eq!(incidents["incidents"].as_array().map(Vec::len), Some(2));
    assert_eq!(incidents["incidents"][1]["status"], "postmortem");
    let updates = &incidents["incidents"][0]["incident_updates"];
    assert_eq!(updates[0]["status"], "identified", "newest update first");
    assert_eq!(
        updates[0]["affected_components"][0]["old_status"],
        "major_outage"
    );
    assert_eq!(
        updates[0]["affected_components"][0]["new_status"],
        "partial_outage"
    );
    assert_eq!(
        incidents["incidents"][0]["created_at"], "2026-11-27T10:00:00.000Z",
        "real times"
    );
    let group = summary["components"]
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["group"] == true)
        .expect("a group");
    assert_eq!(group["components"], serde_json::json!(["api", "db"]));
    let upcoming: Value =
        serde_json::from_slice(&rendered["api/v2/scheduled-maintenances/upcoming.json"])
            .expect("json");
    assert_eq!(upcoming["scheduled_maintenances"][0]["id"], "mnt-next");
    let active: Value =
        serde_json::from_slice(&rendered["api/v2/scheduled-maintenances/active.json"])
            .expect("json");
    assert_eq!(active["scheduled_maintenances"][0]["id"], "mnt-now");
    assert_eq!(active["scheduled_maintenances"][0]["status"], "in_progress");
    assert!(rendered.contains_key("assets/chart.png"));
    assert!(rendered.contains_key("maintenance/api.ics"));
}

// ---------------------------------------------------------------------------
// Statuspage field set.
// ---------------------------------------------------------------------------

struct Spec(Value);

impl Spec {
    fn load() -> Spec {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/statuspage-fields.json");
        Spec(serde_json::from_slice(&std::fs::read(path).expect("spec")).expect("spec json"))
    }

    fn check_value(&self, kind: &str, value: &Value, at: &str, problems: &mut Vec<String>) {
        let (kind, nullable) = match kind.strip_suffix("|null") {
            Some(k) => (k, true),
            None => (kind, false),
        };
        if value.is_null() {
            if !nullable {
                problems.push(format!("{at}: null where {kind} is required"));
            }
            return;
        }
        if let Some(item) = kind.strip_prefix("array:") {
            match value.as_array() {
                Some(items) => {
                    for (i, v) in items.iter().enumerate() {
                        self.check_value(item, v, &format!("{at}[{i}]"), problems);
                    }
                }
                None => problems.push(format!("{at}: not an array")),
            }
            return;
        }
        if let Some(name) = kind.strip_prefix("enum:") {
            let allowed = &self.0["enums"][name];
            if !allowed.as_array().is_some_and(|a| a.contains(value)) {
                problems.push(format!("{at}: {value} is not one of {allowed}"));
            }
            return;
        }
        match kind {
            "string" if value.is_string() => {}
            "integer" if value.is_u64() => {}
            "boolean" if value.is_boolean() => {}
            "time" => {
                let parses = value
                    .as_str()
                    .is_some_and(|t| humantime::parse_rfc3339(t).is_ok());
                if !parses {
                    problems.push(format!("{at}: {value} is not an RFC 3339 time"));
                }
            }
            "any_component" => {
                let object = if value["group"] == true {
                    "group_component"
                } else {
                    "component"
                };
                self.check_object(object, value, at, problems);
            }
            object if self.0.get(object).is_some_and(Value::is_object) => {
                self.check_object(object, value, at, problems)
            }
            other => problems.push(format!("{at}: {value} is not a {other}")),
        }
    }

    fn check_object(&self, object: &str, value: &Value, at: &str, problems: &mut Vec<String>) {
        let fields = self.0[object].as_object().expect("spec object");
        let Some(map) = value.as_object() else {
            problems.push(format!("{at}: not an object"));
            return;
        };
        for (field, kind) in fields {
            match map.get(field) {
                Some(v) => self.check_value(
                    kind.as_str().expect("kind"),
                    v,
                    &format!("{at}.{field}"),
                    problems,
                ),
                None => problems.push(format!("{at}: missing {field}")),
            }
        }
        for field in map.keys() {
            if !fields.contains_key(field) && !field.starts_with("beacon_") {
                problems.push(format!(
                    "{at}: {field} is not a Statuspage field and not beacon_-prefixed"
                ));
            }
        }
    }
}

#[test]
fn every_endpoint_has_statuspages_fields_types_and_enums() {
    let spec = Spec::load();
    for f in [normal(), hostile()] {
        let rendered = files(&f);
        let endpoints = spec.0["endpoints"].as_object().expect("endpoints");
        assert_eq!(endpoints.len(), 8);
        let mut problems = Vec::new();
        for (path, fields) in endpoints {
            let value: Value =
                serde_json::from_slice(&rendered[path]).unwrap_or_else(|e| panic!("{path}: {e}"));
            let map = value.as_object().expect("object");
            for (field, kind) in fields.as_object().expect("fields") {
                match map.get(field) {
                    Some(v) => spec.check_value(
                        kind.as_str().expect("kind"),
                        v,
                        &format!("{path}:{field}"),
                        &mut problems,
                    ),
                    None => problems.push(format!("{path}: missing {field}")),
                }
            }
            for field in map.keys() {
                let ours = field.starts_with("beacon_")
                    || (path == "api/v2/summary.json" && field == "generated_at");
                if !fields.as_object().expect("fields").contains_key(field) && !ours {
                    problems.push(format!("{path}: unexpected {field}"));
                }
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

// ---------------------------------------------------------------------------
// Feeds and calendars through real parsers.
// ---------------------------------------------------------------------------

#[test]
fn feeds_parse_with_a_real_feed_parser() {
    for (f, hostile_text) in [(normal(), false), (hostile(), true)] {
        let rendered = files(&f);
        for (path, entries) in [
            ("history.atom", 2),
            ("history.rss", 2),
            ("changelog.atom", 2),
            ("changelog.rss", 2),
        ] {
            let feed = feed_rs::parser::parse(&rendered[path][..])
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(feed.entries.len(), entries, "{path}");
            let first = &feed.entries[0];
            let title = first.title.as_ref().expect("title").content.clone();
            if hostile_text {
                assert!(
                    title.ends_with(HOSTILE),
                    "{path}: titles are text, kept exactly: {title:?}"
                );
            }
            let content = first
                .content
                .as_ref()
                .and_then(|c| c.body.clone())
                .or_else(|| first.summary.as_ref().map(|s| s.content.clone()))
                .expect("content");
            assert_inert_html(&content, &format!("{path} content"));
        }
        let atom = feed_rs::parser::parse(&rendered["history.atom"][..]).expect("atom");
        assert_eq!(
            atom.entries[0].links[0].href,
            "https://status.example.com/incidents/inc-open.html"
        );
    }
}

/// RFC 5545 TEXT unescaping, for comparing what a calendar shows.
fn unescape_ical(value: &str) -> String {
    value
        .replace("\\n", "\n")
        .replace("\\,", ",")
        .replace("\\;", ";")
        .replace("\\\\", "\\")
}

#[test]
fn calendars_parse_with_a_real_ical_parser() {
    for (f, hostile_text) in [(normal(), false), (hostile(), true)] {
        let rendered = files(&f);
        let bytes = &rendered["maintenance.ics"];
        let mut parser = ical::IcalParser::new(std::io::BufReader::new(&bytes[..]));
        let calendar = parser.next().expect("one calendar").expect("parses");
        assert!(parser.next().is_none());
        assert_eq!(
            calendar.events.len(),
            3,
            "next, now and done; not cancelled, not the series"
        );
        let prop = |event: &ical::parser::ical::component::IcalEvent, name: &str| {
            event
                .properties
                .iter()
                .find(|p| p.name == name)
                .and_then(|p| p.value.clone())
                .unwrap_or_default()
        };
        let next = calendar
            .events
            .iter()
            .find(|e| prop(e, "UID").starts_with("mnt-next@"))
            .expect("the upcoming window");
        assert_eq!(prop(next, "SEQUENCE"), "1", "scheduled, then updated once");
        assert_eq!(prop(next, "DTSTART"), "20261128T120000Z");
        let now = calendar
            .events
            .iter()
            .find(|e| prop(e, "UID").starts_with("mnt-now@"))
            .expect("now");
        assert_eq!(prop(now, "SEQUENCE"), "2");
        if hostile_text {
            assert!(unescape_ical(&prop(next, "SUMMARY")).ends_with(HOSTILE));
        }
        for raw in String::from_utf8_lossy(bytes).split("\r\n") {
            assert!(raw.len() <= 75, "lines fold at 75 octets: {raw:?}");
        }
        let db = &rendered["maintenance/db.ics"];
        let mut parser = ical::IcalParser::new(std::io::BufReader::new(&db[..]));
        assert_eq!(
            parser
                .next()
                .expect("calendar")
                .expect("parses")
                .events
                .len(),
            3
        );
        let api = &rendered["maintenance/api.ics"];
        let mut parser = ical::IcalParser::new(std::io::BufReader::new(&api[..]));
        assert_eq!(
            parser
                .next()
                .expect("calendar")
                .expect("parses")
                .events
                .len(),
            0
        );
    }
}

// ---------------------------------------------------------------------------
// Injection.
// ---------------------------------------------------------------------------

/// Tags and attributes of an HTML document: every `<` in escaped output
/// starts a real tag, so scanning them finds everything a browser would
/// run. Checks: only known tags, no `on*` attribute, no `javascript:` URL,
/// no script but the page's own `live.js`.
fn assert_inert_html(html: &str, what: &str) {
    const TAGS: &[&str] = &[
        "!doctype",
        "html",
        "head",
        "meta",
        "title",
        "link",
        "style",
        "script",
        "noscript",
        "body",
        "main",
        "header",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "p",
        "div",
        "span",
        "section",
        "a",
        "time",
        "footer",
        "ol",
        "ul",
        "li",
        "strong",
        "em",
        "del",
        "code",
        "pre",
        "blockquote",
        "br",
        "hr",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "img",
        "nav",
        "article",
    ];
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end =
            tag_end(after).unwrap_or_else(|| panic!("{what}: unterminated tag in {after:.60}"));
        let tag = &after[..end];
        rest = &after[end + 1..];
        if tag.starts_with('/') {
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
            .collect();
        let name = name.to_ascii_lowercase();
        assert!(
            TAGS.contains(&name.as_str()),
            "{what}: unexpected tag <{name}> in <{tag}>"
        );
        for (attr, value) in attributes(&tag[name.len()..]) {
            let attr = attr.to_ascii_lowercase();
            assert!(
                !attr.starts_with("on"),
                "{what}: event handler {attr} in <{tag}>"
            );
            assert!(attr != "style", "{what}: style attribute in <{tag}>");
            let v = value.trim().to_ascii_lowercase();
            assert!(
                !v.starts_with("javascript:") && !v.starts_with("data:text"),
                "{what}: {attr}={value} in <{tag}>"
            );
            if attr == "src" {
                assert!(
                    name != "script" || value == "live.js" || value == "../live.js",
                    "{what}: script {value}"
                );
            }
        }
        if name == "script" {
            assert!(tag.contains("src="), "{what}: inline script");
        }
    }
}

/// The end of a tag, skipping `>` inside quoted attribute values.
fn tag_end(tag: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in tag.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// (name, value) of each attribute of a tag's inside.
fn attributes(inside: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let chars: Vec<char> = inside.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == '/') {
            i += 1;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '=' && chars[i] != '/' {
            i += 1;
        }
        if start == i {
            break;
        }
        let name: String = chars[start..i].iter().collect();
        let mut value = String::new();
        if i < chars.len() && chars[i] == '=' {
            i += 1;
            if i < chars.len() && (chars[i] == '"' || chars[i] == '\'') {
                let q = chars[i];
                i += 1;
                while i < chars.len() && chars[i] != q {
                    value.push(chars[i]);
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len() && !chars[i].is_whitespace() {
                    value.push(chars[i]);
                    i += 1;
                }
            }
        }
        out.push((name, html_unescape(&value)));
    }
    out
}

fn html_unescape(value: &str) -> String {
    value
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[test]
fn injection_in_operator_text_is_inert_everywhere() {
    let f = hostile();
    let rendered = files(&f);
    for (path, bytes) in &rendered {
        let body = String::from_utf8_lossy(bytes);
        if path.ends_with(".html") {
            assert_inert_html(&body, path);
            // The hostile text is shown, as text.
            if path == "index.html" {
                assert!(
                    body.contains("&lt;script&gt;alert('x')&lt;/script&gt;")
                        || body.contains("&lt;script&gt;"),
                    "{path}"
                );
            }
        }
        if path.ends_with(".json") {
            assert!(
                !body.contains('<') && !body.contains('>'),
                "{path}: raw angle brackets in JSON"
            );
            let value: Value =
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}"));
            let _ = value;
        }
        if path.ends_with(".svg") {
            assert_inert_html(
                &body
                    .replace("<svg", "<span")
                    .replace("</svg", "</span")
                    .replace("<rect", "<span")
                    .replace("<g ", "<span ")
                    .replace("</g>", "</span>")
                    .replace("<text", "<span")
                    .replace("</text", "</span"),
                path,
            );
        }
    }
    // JSON keeps the operator's text exactly (data, not markup).
    let incidents: Value =
        serde_json::from_slice(&rendered["api/v2/incidents.json"]).expect("json");
    assert!(incidents["incidents"][0]["name"]
        .as_str()
        .expect("name")
        .ends_with(HOSTILE));
    // The changelog page rendered the markdown through the sanitizer.
    let changelog = String::from_utf8_lossy(&rendered["changelog.html"]);
    assert!(
        !changelog
            .to_ascii_lowercase()
            .contains("href=\"javascript:"),
        "javascript: links removed"
    );
    assert!(
        changelog.contains("<img src=\"assets/chart.png\""),
        "own images kept"
    );
    // Each page advertises its own feeds to feed readers.
    let alternate = |html: &str, feed: &str| {
        html.contains(&format!(
            "<link rel=\"alternate\" type=\"application/atom+xml\" title=\"Atom\" href=\"{feed}.atom\">"
        )) && html.contains(&format!("type=\"application/rss+xml\" title=\"RSS\" href=\"{feed}.rss\">"))
    };
    assert!(alternate(&changelog, "changelog"), "the changelog's feeds");
    let index = String::from_utf8_lossy(&rendered["index.html"]);
    assert!(alternate(&index, "history"), "the incident history's feeds");
}

#[test]
fn a_fifty_component_page_renders_quickly() {
    // A smoke check of the benchmark's shape (the figure is measured by
    // `beacon-loadtest render` on a release build).
    let f = normal();
    let started = std::time::Instant::now();
    let rendered = files(&f);
    assert!(rendered.len() > 20);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}
