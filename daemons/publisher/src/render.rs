//! Pure renderers: page state in, file bytes out. No I/O, so every output
//! is a unit test. Everything an operator wrote (names, descriptions) is
//! escaped for HTML here; JSON is escaped by serde.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use beacon_core::config::PageConfig;
use beacon_core::messages::{ComponentStatus, StatusRecord};
use html_escape::encode_text as escape;
use serde::Serialize;

/// What a page render reads.
#[derive(Debug, Clone)]
pub struct PageState<'a> {
    /// Validated config.
    pub config: &'a PageConfig,
    /// Current status records by component id.
    pub statuses: &'a HashMap<String, StatusRecord>,
    /// Render time, ms since the epoch.
    pub generated_at_ms: u64,
}

/// RFC 3339 UTC with milliseconds, as Statuspage writes times.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

impl PageState<'_> {
    /// A component's status; `None` before the decider decided anything for
    /// it. Such a component is never shown as operational: the page says it
    /// has no status yet, and the Statuspage API leaves it out (Statuspage
    /// has no "unknown") and names it under `beacon_undecided`.
    pub fn status_of(&self, component: &str) -> Option<ComponentStatus> {
        self.statuses.get(component).map(|r| r.status)
    }

    /// Components with no status yet.
    pub fn undecided(&self) -> Vec<&str> {
        self.config
            .components
            .iter()
            .filter(|c| self.status_of(&c.id).is_none())
            .map(|c| c.id.as_str())
            .collect()
    }

    /// The worst status across components with one (by user impact);
    /// `None` when no component has a status yet.
    pub fn worst(&self) -> Option<ComponentStatus> {
        self.config
            .components
            .iter()
            .filter_map(|c| self.status_of(&c.id))
            .max_by_key(|s| s.severity())
    }

    /// Statuspage's page indicator and its description.
    pub fn indicator(&self) -> (&'static str, &'static str) {
        match self.worst() {
            None => ("none", "Waiting for the first checks"),
            Some(ComponentStatus::Operational) if !self.undecided().is_empty() => (
                "none",
                "Operational so far; some components are not checked yet",
            ),
            Some(ComponentStatus::Operational) => ("none", "All Systems Operational"),
            Some(ComponentStatus::UnderMaintenance) => ("maintenance", "Service Under Maintenance"),
            Some(ComponentStatus::DegradedPerformance) => ("minor", "Degraded Performance"),
            Some(ComponentStatus::PartialOutage) => ("major", "Partial System Outage"),
            Some(ComponentStatus::MajorOutage) => ("critical", "Major System Outage"),
        }
    }

    fn updated_at(&self, component: &str) -> u64 {
        self.statuses
            .get(component)
            .map_or(self.generated_at_ms, |r| r.since_ms)
    }
}

/// `page` object of the Statuspage v2 API.
#[derive(Debug, Serialize)]
struct ApiPage<'a> {
    id: &'a str,
    name: &'a str,
    url: &'a str,
    time_zone: &'static str,
    updated_at: String,
}

/// `status` object of the Statuspage v2 API.
#[derive(Debug, Serialize)]
struct ApiStatus {
    indicator: &'static str,
    description: &'static str,
}

/// A component (or group) of the Statuspage v2 API.
#[derive(Debug, Serialize)]
struct ApiComponent<'a> {
    id: &'a str,
    name: &'a str,
    status: &'static str,
    created_at: String,
    updated_at: String,
    position: usize,
    description: Option<&'a str>,
    showcase: bool,
    start_date: Option<String>,
    group_id: Option<&'a str>,
    page_id: &'a str,
    group: bool,
    only_show_if_degraded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    components: Option<Vec<&'a str>>,
}

#[derive(Debug, Serialize)]
struct Summary<'a> {
    page: ApiPage<'a>,
    status: ApiStatus,
    components: Vec<ApiComponent<'a>>,
    incidents: Vec<serde_json::Value>,
    scheduled_maintenances: Vec<serde_json::Value>,
    /// When this file was rendered, so readers can tell how fresh it is.
    generated_at: String,
    /// Components with no status yet, left out of `components`.
    beacon_undecided: Vec<&'a str>,
}

fn page<'a>(state: &'a PageState<'_>) -> ApiPage<'a> {
    ApiPage {
        id: &state.config.id,
        name: &state.config.name,
        url: state.config.url.as_deref().unwrap_or(""),
        time_zone: "Etc/UTC",
        updated_at: rfc3339(state.generated_at_ms),
    }
}

fn components<'a>(state: &'a PageState<'_>) -> Vec<ApiComponent<'a>> {
    let config = state.config;
    let created = rfc3339(0);
    let mut out = Vec::new();
    for (position, component) in config.components.iter().enumerate() {
        let Some(status) = state.status_of(&component.id) else {
            continue;
        };
        out.push(ApiComponent {
            id: &component.id,
            name: &component.name,
            status: status.as_str(),
            created_at: created.clone(),
            updated_at: rfc3339(state.updated_at(&component.id)),
            position: position + 1,
            description: Some(component.description.as_str()).filter(|d| !d.is_empty()),
            showcase: true,
            start_date: None,
            group_id: component.group.as_deref(),
            page_id: &config.id,
            group: false,
            only_show_if_degraded: false,
            components: None,
        });
    }
    for (position, group) in config.groups.iter().enumerate() {
        let ids: Vec<&str> = config
            .components
            .iter()
            .filter(|c| c.group.as_deref() == Some(group.id.as_str()))
            .filter(|c| state.status_of(&c.id).is_some())
            .map(|c| c.id.as_str())
            .collect();
        let Some(worst) = ids
            .iter()
            .filter_map(|id| state.status_of(id))
            .max_by_key(|s| s.severity())
        else {
            continue;
        };
        out.push(ApiComponent {
            id: &group.id,
            name: &group.name,
            status: worst.as_str(),
            created_at: created.clone(),
            updated_at: rfc3339(state.generated_at_ms),
            position: config.components.len() + position + 1,
            description: None,
            showcase: false,
            start_date: None,
            group_id: None,
            page_id: &config.id,
            group: true,
            only_show_if_degraded: false,
            components: Some(ids),
        });
    }
    out
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// `api/v2/summary.json`.
pub fn summary_json(state: &PageState<'_>) -> Vec<u8> {
    let (indicator, description) = state.indicator();
    to_json(&Summary {
        page: page(state),
        status: ApiStatus {
            indicator,
            description,
        },
        components: components(state),
        incidents: Vec::new(),
        scheduled_maintenances: Vec::new(),
        generated_at: rfc3339(state.generated_at_ms),
        beacon_undecided: state.undecided(),
    })
}

/// `api/v2/status.json`.
pub fn status_json(state: &PageState<'_>) -> Vec<u8> {
    let (indicator, description) = state.indicator();
    to_json(&serde_json::json!({
        "page": page(state),
        "status": ApiStatus { indicator, description },
    }))
}

/// `api/v2/components.json`.
pub fn components_json(state: &PageState<'_>) -> Vec<u8> {
    to_json(&serde_json::json!({
        "page": page(state),
        "components": components(state),
        "beacon_undecided": state.undecided(),
    }))
}

fn css_class(status: Option<ComponentStatus>) -> &'static str {
    match status {
        None => "unknown",
        Some(ComponentStatus::Operational) => "ok",
        Some(ComponentStatus::DegradedPerformance) => "degraded",
        Some(ComponentStatus::PartialOutage) => "partial",
        Some(ComponentStatus::MajorOutage) => "major",
        Some(ComponentStatus::UnderMaintenance) => "maintenance",
    }
}

/// The status for `data-status` attributes: its wire name, or `unknown`.
fn status_name(status: Option<ComponentStatus>) -> &'static str {
    status.map_or("unknown", ComponentStatus::as_str)
}

/// The status for people.
fn status_label(status: Option<ComponentStatus>) -> &'static str {
    status.map_or("No data yet", ComponentStatus::label)
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2430}\
main{max-width:760px;margin:0 auto;padding:24px}h1{font-size:1.6em;margin:0 0 4px}\
.banner{border-radius:6px;padding:16px 20px;color:#fff;font-weight:600;margin:20px 0}\
.banner.ok{background:#2f9e44}.banner.degraded{background:#e8a400}.banner.partial{background:#e8590c}\
.banner.major{background:#c92a2a}.banner.maintenance{background:#1971c2}.banner.unknown{background:#5c6675}\
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;margin:16px 0}\
section h2{font-size:1em;margin:0;padding:12px 16px;border-bottom:1px solid #dde1e6}\
.row{display:flex;justify-content:space-between;padding:12px 16px;border-top:1px solid #eef0f2}\
.row:first-of-type{border-top:0}.desc{color:#5c6675;font-size:.85em}\
.s{font-weight:600}.s.ok{color:#2f9e44}.s.degraded{color:#b07d00}.s.partial{color:#e8590c}\
.s.major{color:#c92a2a}.s.maintenance{color:#1971c2}.s.unknown{color:#5c6675}footer{color:#5c6675;font-size:.8em;margin-top:24px}";

/// `index.html`: inline CSS, no scripts, no external requests; refreshes
/// itself as the fallback for clients without live updates.
pub fn index_html(state: &PageState<'_>) -> Vec<u8> {
    let config = state.config;
    let (_, description) = state.indicator();
    let worst = state.worst();
    let mut html = String::with_capacity(4096);
    html.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    html.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    html.push_str("<meta http-equiv=\"refresh\" content=\"30\">");
    html.push_str(&format!(
        "<title>{} status</title><style>{STYLE}</style></head><body><main>",
        escape(&config.name)
    ));
    html.push_str(&format!("<h1>{}</h1>", escape(&config.name)));
    if !config.description.is_empty() {
        html.push_str(&format!(
            "<p class=\"desc\">{}</p>",
            escape(&config.description)
        ));
    }
    html.push_str(&format!(
        "<div class=\"banner {}\" id=\"page-status\" data-status=\"{}\">{}</div>",
        css_class(worst),
        status_name(worst),
        description
    ));

    let mut sections: Vec<(Option<&str>, String)> = config
        .groups
        .iter()
        .map(|g| (Some(g.id.as_str()), g.name.clone()))
        .collect();
    sections.push((None, "Other".to_owned()));
    for (group, title) in sections {
        let members: Vec<_> = config
            .components
            .iter()
            .filter(|c| c.group.as_deref() == group)
            .collect();
        if members.is_empty() {
            continue;
        }
        html.push_str(&format!("<section><h2>{}</h2>", escape(&title)));
        for component in members {
            let status = state.status_of(&component.id);
            html.push_str(&format!(
                "<div class=\"row\" id=\"component-{id}\" data-status=\"{status}\"><div><div>{name}</div>",
                id = escape(&component.id),
                status = status_name(status),
                name = escape(&component.name),
            ));
            if !component.description.is_empty() {
                html.push_str(&format!(
                    "<div class=\"desc\">{}</div>",
                    escape(&component.description)
                ));
            }
            html.push_str(&format!(
                "</div><div class=\"s {}\">{}</div></div>",
                css_class(status),
                status_label(status)
            ));
        }
        html.push_str("</section>");
    }
    html.push_str(&format!(
        "<footer>Generated at <time datetime=\"{t}\">{t}</time>. Also as <a href=\"api/v2/summary.json\">JSON</a>.</footer>",
        t = rfc3339(state.generated_at_ms)
    ));
    html.push_str("</main></body></html>\n");
    html.into_bytes()
}

/// Every file of a page's site: (relative path, bytes).
pub fn site(state: &PageState<'_>) -> Vec<(String, Vec<u8>)> {
    vec![
        ("index.html".to_owned(), index_html(state)),
        ("api/v2/summary.json".to_owned(), summary_json(state)),
        ("api/v2/status.json".to_owned(), status_json(state)),
        ("api/v2/components.json".to_owned(), components_json(state)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_core::config::load;
    use beacon_core::event::EventId;
    use beacon_core::messages::Evidence;

    fn config() -> PageConfig {
        load(
            r#"
            [page]
            id = "demo"
            name = "Demo <script>alert(1)</script>"
            description = "Tom & Jerry's \"status\""
            [[groups]]
            id = "core"
            name = "Core"
            [[components]]
            id = "api"
            name = "API <b>"
            group = "core"
            [[components]]
            id = "web"
            name = "Web"
            "#,
        )
        .expect("valid")
    }

    fn record(component: &str, status: ComponentStatus) -> StatusRecord {
        StatusRecord::new(
            "demo",
            component,
            status,
            1_000,
            EventId::new(),
            Evidence {
                rule: "r".into(),
                trigger: Some(EventId::new()),
                regions: vec![],
            },
        )
    }

    #[test]
    fn summary_has_the_statuspage_shape() {
        let config = config();
        let mut statuses = HashMap::new();
        statuses.insert(
            "api".to_owned(),
            record("api", ComponentStatus::MajorOutage),
        );
        let state = PageState {
            config: &config,
            statuses: &statuses,
            generated_at_ms: 1_732_233_000_000,
        };
        let summary: serde_json::Value =
            serde_json::from_slice(&summary_json(&state)).expect("json");
        assert_eq!(summary["page"]["id"], "demo");
        assert_eq!(summary["status"]["indicator"], "critical");
        assert_eq!(summary["components"][0]["id"], "api");
        assert_eq!(summary["components"][0]["status"], "major_outage");
        assert_eq!(summary["components"][0]["group_id"], "core");
        // web has no decision yet: left out, never shown as operational.
        assert_eq!(summary["components"][1]["group"], true);
        assert_eq!(summary["components"][1]["components"][0], "api");
        assert_eq!(summary["beacon_undecided"][0], "web");
        assert_eq!(summary["generated_at"], "2024-11-21T23:50:00.000Z");
        assert!(summary["incidents"]
            .as_array()
            .is_some_and(|a| a.is_empty()));
    }

    #[test]
    fn html_escapes_what_operators_wrote() {
        let config = config();
        let statuses = HashMap::new();
        let state = PageState {
            config: &config,
            statuses: &statuses,
            generated_at_ms: 0,
        };
        let html = String::from_utf8(index_html(&state)).expect("utf8");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("API &lt;b&gt;"));
        assert!(html.contains("Tom &amp; Jerry"));
        assert!(!html.contains("src=\"http"), "no external requests");
        assert!(
            !html.contains("operational"),
            "nothing decided, nothing operational"
        );
        assert!(html.contains("No data yet"));
        assert!(html.contains("data-status=\"unknown\""));
    }

    #[test]
    fn indicator_follows_the_worst_component() {
        let config = config();
        let table = [
            (ComponentStatus::Operational, "none"),
            (ComponentStatus::DegradedPerformance, "minor"),
            (ComponentStatus::PartialOutage, "major"),
            (ComponentStatus::MajorOutage, "critical"),
            (ComponentStatus::UnderMaintenance, "maintenance"),
        ];
        for (status, indicator) in table {
            let mut statuses = HashMap::new();
            statuses.insert("web".to_owned(), record("web", status));
            let state = PageState {
                config: &config,
                statuses: &statuses,
                generated_at_ms: 0,
            };
            assert_eq!(state.indicator().0, indicator, "{status:?}");
        }
    }
}
