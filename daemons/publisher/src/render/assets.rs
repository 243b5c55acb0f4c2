//! The small files around the page: `live.json` (what live updates carry),
//! `live.js` (the page's own live-update script: Server-Sent Events from
//! the edge, polling `live.json` when they fail), `widget.js` (a Shadow DOM
//! status widget other sites embed) and SVG status badges.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::feeds::xml;
use super::html::{css_class, status_name};
use super::{human_time, rfc3339, to_json, PageState};

/// What `live.json` and every live-update event carry.
#[derive(Debug, Serialize)]
struct Live<'a> {
    page: &'a str,
    name: &'a str,
    generated_at: String,
    generated_at_human: String,
    /// Changes whenever something beyond component statuses changes
    /// (incidents, maintenance): the page then reloads instead of patching.
    digest: String,
    page_status: LiveStatus<'a>,
    components: BTreeMap<&'a str, LiveStatus<'a>>,
    view_status: &'a str,
}

#[derive(Debug, Serialize)]
struct LiveStatus<'a> {
    status: &'static str,
    class: &'static str,
    label: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    indicator: Option<&'static str>,
}

/// A short digest of what the page shows besides component statuses.
pub fn digest(state: &PageState<'_>) -> String {
    let mut text = String::new();
    for incident in state.unresolved_incidents() {
        let _ = write!(
            text,
            "i:{}:{}:{};",
            incident.id,
            incident.updates.len(),
            incident.revision
        );
    }
    for item in state.public_maintenance() {
        let w = &item.window.state;
        let _ = write!(
            text,
            "m:{}:{}:{};",
            w.maintenance,
            w.phase.as_str(),
            item.events.len()
        );
    }
    beacon_page::origin::sha256_hex(text.as_bytes())[..16].to_owned()
}

/// `live.json`.
pub fn live_json(state: &PageState<'_>) -> Vec<u8> {
    let s = state.strings;
    let (indicator, description) = state.indicator();
    let worst = state.worst();
    let components = state
        .config
        .components
        .iter()
        .map(|c| {
            let status = state.status_of(&c.id);
            (
                c.id.as_str(),
                LiveStatus {
                    status: status_name(status),
                    class: css_class(status),
                    label: s.status(status),
                    indicator: None,
                },
            )
        })
        .collect();
    to_json(&Live {
        page: &state.config.id,
        name: &state.config.name,
        generated_at: rfc3339(state.generated_at_ms),
        generated_at_human: human_time(state.generated_at_ms),
        digest: digest(state),
        page_status: LiveStatus {
            status: status_name(worst),
            class: css_class(worst),
            label: description,
            indicator: Some(indicator),
        },
        components,
        view_status: s.view_status,
    })
}

/// `live.js`: keeps the status page current. It listens to `events` (the
/// edge's Server-Sent Events, same origin) and patches the banner and the
/// component rows; when the event stream fails or the browser has none, it
/// polls `live.json` every 30 s instead. A change to incidents or
/// maintenance (a new digest) reloads the page. It touches the DOM only
/// through `textContent` and attributes, never HTML.
pub const LIVE_JS: &str = r#"(function () {
  "use strict";
  var POLL_MS = 30000, RETRY_MS = 30000;
  var digest = document.documentElement.getAttribute("data-digest");
  var poller = null;
  function apply(data) {
    if (digest && data.digest && data.digest !== digest) { location.reload(); return; }
    var banner = document.getElementById("page-status");
    if (banner) {
      banner.className = "banner " + data.page_status["class"];
      banner.setAttribute("data-status", data.page_status.status);
      banner.textContent = data.page_status.label;
    }
    Object.keys(data.components).forEach(function (id) {
      var c = data.components[id], row = document.getElementById("component-" + id);
      if (!row) { return; }
      row.setAttribute("data-status", c.status);
      var label = row.querySelector("[data-label]");
      if (label) { label.className = "s " + c["class"]; label.textContent = c.label; }
    });
    var t = document.getElementById("generated-at");
    if (t) { t.setAttribute("datetime", data.generated_at); t.textContent = data.generated_at_human; }
    document.documentElement.setAttribute("data-live-at", data.generated_at);
  }
  function poll() {
    fetch("live.json", { cache: "no-cache", credentials: "omit" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) { if (d) { apply(d); } })
      .catch(function () {});
  }
  function startPolling() {
    if (poller) { return; }
    var note = document.getElementById("live-note");
    if (note) { note.hidden = false; }
    document.documentElement.setAttribute("data-live", "polling");
    poller = setInterval(poll, POLL_MS);
    poll();
  }
  function stopPolling() {
    if (!poller) { return; }
    clearInterval(poller);
    poller = null;
    var note = document.getElementById("live-note");
    if (note) { note.hidden = true; }
  }
  if (!("EventSource" in window)) { startPolling(); return; }
  function connect() {
    var failures = 0, source = new EventSource("events");
    source.addEventListener("status", function (e) {
      failures = 0;
      stopPolling();
      document.documentElement.setAttribute("data-live", "sse");
      try { apply(JSON.parse(e.data)); } catch (err) {}
    });
    source.onerror = function () {
      failures += 1;
      if (source.readyState === 2) {
        startPolling();
        setTimeout(connect, RETRY_MS);
      } else if (failures >= 3) {
        startPolling();
      }
    };
  }
  connect();
})();
"#;

/// `widget.js`: `<script src="https://status.example.com/widget.js" async></script>`
/// and `<beacon-status></beacon-status>` show the page's status on another
/// site. The element renders in its own Shadow DOM (the host page's styles
/// cannot reach it, nor its styles the host page), fetches `live.json` from
/// the origin the script came from, and writes text only.
pub const WIDGET_JS: &str = r#"(function () {
  "use strict";
  if (!window.customElements || window.customElements.get("beacon-status")) { return; }
  var script = document.currentScript;
  var base = script && script.src ? new URL(".", script.src).href : "";
  var CSS = ":host{display:inline-block;font:14px/1.3 system-ui,sans-serif}" +
    "a{display:inline-flex;align-items:center;gap:8px;padding:6px 10px;border:1px solid #dde1e6;border-radius:6px;color:inherit;text-decoration:none}" +
    ".dot{width:10px;height:10px;border-radius:50%;background:#5c6675}" +
    ".ok{background:#2b8a3e}.degraded{background:#a36a00}.partial{background:#c2410c}.major{background:#c92a2a}.maintenance{background:#1864ab}";
  function style(root) {
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      var el = document.createElement("style");
      el.textContent = CSS;
      root.appendChild(el);
    }
  }
  class BeaconStatus extends HTMLElement {
    connectedCallback() {
      if (this.shadowRoot) { return; }
      var root = this.attachShadow({ mode: "open" });
      style(root);
      var link = document.createElement("a");
      link.href = base + "index.html";
      link.rel = "noopener";
      var dot = document.createElement("span");
      dot.className = "dot";
      var label = document.createElement("span");
      label.textContent = "…";
      link.appendChild(dot);
      link.appendChild(label);
      root.appendChild(link);
      fetch(base + "live.json", { credentials: "omit" })
        .then(function (r) { return r.json(); })
        .then(function (d) {
          dot.className = "dot " + d.page_status["class"];
          label.textContent = d.name + ": " + d.page_status.label;
          link.title = d.view_status;
        })
        .catch(function () { label.textContent = "?"; });
    }
  }
  window.customElements.define("beacon-status", BeaconStatus);
})();
"#;

fn badge_color(class: &str) -> &'static str {
    match class {
        "ok" => "#2b8a3e",
        "degraded" => "#a36a00",
        "partial" => "#c2410c",
        "major" => "#c92a2a",
        "maintenance" => "#1864ab",
        _ => "#5c6675",
    }
}

/// A flat SVG badge: `label` on grey, `value` on the status colour. Widths
/// are estimated from character counts (no font metrics at render time).
pub fn badge(label: &str, value: &str, class: &str) -> Vec<u8> {
    let width = |t: &str| 10 + 7 * t.chars().count();
    let (left, right) = (width(label), width(value));
    let total = left + right;
    let mut svg = String::with_capacity(1024);
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{total}\" height=\"20\" role=\"img\" aria-label=\"{aria}\">\
<title>{aria}</title><rect width=\"{left}\" height=\"20\" fill=\"#555\"/>\
<rect x=\"{left}\" width=\"{right}\" height=\"20\" fill=\"{color}\"/>\
<g fill=\"#fff\" font-family=\"Verdana,DejaVu Sans,sans-serif\" font-size=\"11\" text-anchor=\"middle\">\
<text x=\"{lx}\" y=\"14\">{label}</text><text x=\"{rx}\" y=\"14\">{value}</text></g></svg>",
        aria = xml(&format!("{label}: {value}")),
        color = badge_color(class),
        lx = left / 2,
        rx = left + right / 2,
        label = xml(label),
        value = xml(value),
    );
    svg.into_bytes()
}

/// Every asset: (path, bytes).
pub fn files(state: &PageState<'_>) -> Vec<(String, Vec<u8>)> {
    let s = state.strings;
    let (_, description) = state.indicator();
    let worst = state.worst();
    let mut files = vec![
        ("live.json".to_owned(), live_json(state)),
        ("live.js".to_owned(), LIVE_JS.as_bytes().to_vec()),
        ("widget.js".to_owned(), WIDGET_JS.as_bytes().to_vec()),
        (
            "badge.svg".to_owned(),
            badge(s.badge_label, description, css_class(worst)),
        ),
    ];
    for component in &state.config.components {
        let status = state.status_of(&component.id);
        files.push((
            format!("badges/{}.svg", component.id),
            badge(&component.name, s.status(status), css_class(status)),
        ));
    }
    files
}
