//! The HTML pages: the status page, one page per incident, the incident
//! history and the paged changelog. Inline CSS (the one stylesheet, and on
//! the status page a second block naming the days of the uptime bars; the
//! edge allows each block by its hash), light and dark, no request to
//! another origin,
//! readable without JavaScript; `live.js` (same origin) keeps the status
//! page live where scripts run. Operator text is escaped; markdown goes
//! through [`crate::markdown`].

use std::fmt::Write;

use beacon_contract::api::ChangelogView;
use beacon_contract::incident::Incident;
use beacon_contract::messages::{ComponentStatus, DayRollup, MaintenancePhase};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use super::{
    day, human_time, rfc3339, MaintenanceItem, PageState, CHANGELOG_PAGE_SIZE, UPTIME_DAYS,
};
use crate::changelog::published_at;
use crate::markdown::to_safe_html;

/// The one stylesheet, inline in every page. Colours follow the reader's
/// light or dark preference; status colours keep a 4.5:1 contrast on both.
pub const STYLE: &str = ":root{color-scheme:light dark;--bg:#f6f7f9;--fg:#1d2430;--card:#fff;--line:#dde1e6;--muted:#5c6675;\
--ok:#2b8a3e;--degraded:#a36a00;--partial:#c2410c;--major:#c92a2a;--maintenance:#1864ab;--unknown:#5c6675;--nodata:#c9ced6}\
@media (prefers-color-scheme:dark){:root{--bg:#12161c;--fg:#e6e9ee;--card:#1b2129;--line:#2c343f;--muted:#9aa4b2;\
--ok:#51cf66;--degraded:#fcc419;--partial:#ff922b;--major:#ff6b6b;--maintenance:#4dabf7;--unknown:#9aa4b2;--nodata:#3a424d}}\
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:var(--bg);color:var(--fg);line-height:1.45}\
main{max-width:820px;margin:0 auto;padding:24px}h1{font-size:1.6em;margin:0 0 4px}a{color:inherit}\
.desc,.muted{color:var(--muted);font-size:.9em}\
.banner{border-radius:6px;padding:16px 20px;color:#fff;font-weight:600;margin:20px 0;background:var(--unknown)}\
.banner.ok{background:#2b8a3e}.banner.degraded{background:#a36a00}.banner.partial{background:#c2410c}\
.banner.major{background:#c92a2a}.banner.maintenance{background:#1864ab}\
section{background:var(--card);border:1px solid var(--line);border-radius:6px;margin:16px 0}\
section>h2{font-size:1em;margin:0;padding:12px 16px;border-bottom:1px solid var(--line)}\
.row{padding:12px 16px;border-top:1px solid var(--line)}.row:first-of-type{border-top:0}\
.head{display:flex;justify-content:space-between;gap:12px}\
.s{font-weight:600}.s.ok{color:var(--ok)}.s.degraded{color:var(--degraded)}.s.partial{color:var(--partial)}\
.s.major{color:var(--major)}.s.maintenance{color:var(--maintenance)}.s.unknown{color:var(--unknown)}\
.bars{display:flex;gap:1px;list-style:none;margin:8px 0 2px;padding:0;height:28px}\
.bars li{flex:1;border-radius:1px;background:var(--nodata);position:relative;min-width:2px}\
.bars .u1{background:var(--ok)}.bars .u2{background:var(--degraded)}.bars .u3{background:var(--partial)}.bars .u4{background:var(--major)}.bars .um{background:var(--maintenance)}\
.bars li:hover::after{position:absolute;bottom:34px;left:50%;transform:translateX(-50%);\
white-space:nowrap;background:var(--fg);color:var(--bg);padding:4px 8px;border-radius:4px;font-size:.8em;z-index:1}\
.vh{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}\
.scale{display:flex;justify-content:space-between;color:var(--muted);font-size:.75em}\
.update{margin:8px 0 0}.update p{margin:4px 0}.tag{font-size:.75em;border:1px solid var(--line);border-radius:3px;padding:1px 5px;margin-left:6px}\
.entry img{max-width:100%}footer{color:var(--muted);font-size:.8em;margin-top:24px}footer a{margin-right:10px}\
.pager{display:flex;justify-content:space-between;margin:16px 0}";

/// CSS class of a status.
pub fn css_class(status: Option<ComponentStatus>) -> &'static str {
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
pub fn status_name(status: Option<ComponentStatus>) -> &'static str {
    status.map_or("unknown", ComponentStatus::as_str)
}

/// Plain operator text as HTML paragraphs: escaped, line breaks kept.
fn paragraphs(body: &str) -> String {
    let mut out = String::new();
    for paragraph in body.split("\n\n").filter(|p| !p.trim().is_empty()) {
        let _ = write!(
            out,
            "<p>{}</p>",
            text(paragraph.trim()).replace('\n', "<br>")
        );
    }
    out
}

/// Opens a page: `root` is the relative path to the page root (`""` or
/// `"../"`), `feed` the feeds it advertises (`history` for incidents,
/// `changelog` for the changelog), `live` whether the live-update script
/// runs on it.
/// `day_style` is the status page's second style block (see [`day_style`]).
fn open(
    state: &PageState<'_>,
    html: &mut String,
    title: &str,
    root: &str,
    feed: &str,
    live: bool,
    day_style: Option<&str>,
) {
    let s = state.strings;
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"{lang}\"{digest}><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{title}</title>\
<link rel=\"alternate\" type=\"application/atom+xml\" title=\"{atom}\" href=\"{root}{feed}.atom\">\
<link rel=\"alternate\" type=\"application/rss+xml\" title=\"{rss}\" href=\"{root}{feed}.rss\">\
<style>{STYLE}</style>",
        lang = s.lang,
        digest = if live {
            format!(" data-digest=\"{}\"", super::assets::digest(state))
        } else {
            String::new()
        },
        title = text(title),
        atom = attr(s.atom_feed),
        rss = attr(s.rss_feed),
    );
    if let Some(style) = day_style {
        let _ = write!(html, "<style>{style}</style>");
    }
    if live {
        // Without scripts the page still refreshes itself.
        html.push_str("<noscript><meta http-equiv=\"refresh\" content=\"60\"></noscript>");
        let _ = write!(html, "<script src=\"{root}live.js\" defer></script>");
    }
    html.push_str("</head><body><main>");
}

fn close(state: &PageState<'_>, html: &mut String, root: &str) {
    let s = state.strings;
    let t = rfc3339(state.generated_at_ms);
    let _ = writeln!(
        html,
        "<footer><p>{generated} <time id=\"generated-at\" datetime=\"{t}\">{human}</time></p><p>\
<a href=\"{root}index.html\">{back}</a><a href=\"{root}history.html\">{history}</a>\
<a href=\"{root}changelog.html\">{changelog}</a><a href=\"{root}api/v2/summary.json\">{json}</a>\
<a href=\"{root}history.atom\">{atom}</a><a href=\"{root}history.rss\">{rss}</a>\
<a href=\"{root}maintenance.ics\">{calendar}</a></p></footer></main></body></html>",
        generated = text(s.generated_at),
        human = text(&super::human_time(state.generated_at_ms)),
        back = text(s.back_to_status),
        history = text(s.incident_history),
        changelog = text(s.changelog),
        json = text(s.json_api),
        atom = text(s.atom_feed),
        rss = text(s.rss_feed),
        calendar = text(s.calendar),
    );
}

/// The uptime class of a day: no data, maintenance only, or by its figure.
fn day_class(rollup: Option<&DayRollup>) -> &'static str {
    let Some(d) = rollup else { return "" };
    match d.uptime_percent {
        None if d.maintenance_ms > 0 => " um",
        None => "",
        Some(p) if p >= 99.9 => " u1",
        Some(p) if p >= 99.0 => " u2",
        Some(p) if p >= 95.0 => " u3",
        Some(_) => " u4",
    }
}

/// The last [`UPTIME_DAYS`] UTC days up to the render, oldest first.
fn bar_days(state: &PageState<'_>) -> Vec<String> {
    let today = state.generated_at_ms / 86_400_000;
    (0..UPTIME_DAYS as u64)
        .rev()
        .map(|back| day(today.saturating_sub(back) * 86_400_000))
        .collect()
}

/// A string for a CSS `content` value: quoted, with quotes, backslashes,
/// line breaks and `<` escaped (so no text can end the style block).
fn css_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' | '<' | '>' | '&' => {
                let _ = write!(out, "\\{:x} ", c as u32);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The status page's second style block: the date of each of the 90 bar
/// positions, and the label a bar shows on hover by its class: its date
/// and figure. Every component's bars share it, so a bar in the markup is
/// only its class (and its figure when that is not 100.00 %), which keeps
/// a page of many components small.
pub fn day_style(state: &PageState<'_>, dates: &[String]) -> String {
    let s = state.strings;
    let mut css = String::with_capacity(dates.len() * 48 + 512);
    for (n, date) in dates.iter().enumerate() {
        let _ = write!(
            css,
            ".bars li:nth-child({}){{--d:{}}}",
            n + 1,
            css_string(date)
        );
    }
    let label = |what: &str| css_string(&format!(": {what}"));
    let _ = write!(
        css,
        ".bars li:hover::after{{content:var(--d) {}}}\
.bars .u1:hover::after{{content:var(--d) {}}}\
.bars .um:hover::after{{content:var(--d) {}}}\
.bars li[data-u]:hover::after{{content:var(--d) \": \" attr(data-u) {}}}",
        label(s.day_no_data),
        label(&format!("100.00% {}", s.uptime_word)),
        label(s.day_maintenance),
        css_string(&format!("% {}", s.uptime_word)),
    );
    css
}

/// 90 bars, oldest first, coloured by the day's figure, which shows on
/// hover (labels from [`day_style`]). The bars are drawn for the eye; for
/// assistive technology a hidden paragraph says the same in words, naming
/// every day under 100 % rather than making 90 stops per component.
fn uptime_bars(state: &PageState<'_>, html: &mut String, component: &str, dates: &[String]) {
    let s = state.strings;
    let by_day: std::collections::HashMap<&str, &DayRollup> = state
        .uptime
        .get(component)
        .map(|r| r.days.iter().map(|d| (d.date.as_str(), d)).collect())
        .unwrap_or_default();
    let mut counted = 0.0f64;
    let mut weighted = 0.0f64;
    let mut notable: Vec<String> = Vec::new();
    let mut without_data = 0usize;
    html.push_str("<ol class=\"bars\" aria-hidden=\"true\">");
    for date in dates {
        let figures = by_day.get(date.as_str()).copied();
        html.push_str("<li");
        let class = day_class(figures);
        if !class.is_empty() {
            html.push_str(" class=");
            html.push_str(class.trim_start());
        }
        match figures {
            Some(
                d @ DayRollup {
                    uptime_percent: Some(p),
                    ..
                },
            ) => {
                let span =
                    (d.up_ms + d.degraded_ms + d.down_ms).saturating_sub(d.maintenance_ms) as f64;
                counted += span;
                weighted += span * p;
                let figure = format!("{p:.2}");
                if figure != "100.00" {
                    let _ = write!(html, " data-u={figure}");
                    notable.push(format!("{date}: {figure}% {}", s.uptime_word));
                }
            }
            Some(d) if d.maintenance_ms > 0 => {
                notable.push(format!("{date}: {}", s.day_maintenance));
            }
            _ => without_data += 1,
        }
        html.push('>');
    }
    html.push_str("</ol>");
    let overall = if counted > 0.0 {
        format!("{:.2}% {}", weighted / counted, s.uptime_word)
    } else {
        s.no_data.to_owned()
    };
    let _ = write!(
        html,
        "<div class=\"scale\" aria-hidden=\"true\"><span>{}</span><span>{}</span><span>{}</span></div>",
        text(s.days_ago),
        text(&overall),
        text(s.today)
    );
    let mut words = format!("{}: {overall}.", s.uptime_90_days);
    if !notable.is_empty() {
        let _ = write!(words, " {}.", notable.join("; "));
    }
    if without_data > 0 {
        let _ = write!(words, " {without_data} {}.", s.days_without_data);
    }
    let _ = write!(html, "<p class=\"vh\">{}</p>", text(&words));
}

fn incident_summary(state: &PageState<'_>, html: &mut String, incident: &Incident, root: &str) {
    let s = state.strings;
    let _ = write!(
        html,
        "<div class=\"row\" id=\"incident-{id}\"><div class=\"head\"><a href=\"{root}incidents/{id}.html\"><strong>{title}</strong></a>\
<span class=\"muted\">{impact}: {level}</span></div>",
        id = attr(&incident.id),
        title = text(&incident.title),
        impact = text(s.impact),
        level = text(s.impact_level(incident.impact)),
    );
    if let Some(update) = incident.updates.last() {
        let _ = write!(
            html,
            "<div class=\"update\"><strong>{}</strong> <time datetime=\"{}\" class=\"muted\">{}</time>{}</div>",
            text(s.incident_state(update.state)),
            rfc3339(update.at_ms),
            text(&human_time(update.at_ms)),
            paragraphs(&update.body)
        );
    }
    html.push_str("</div>");
}

fn maintenance_row(state: &PageState<'_>, html: &mut String, item: &MaintenanceItem) {
    let s = state.strings;
    let w = &item.window.state;
    let names: Vec<&str> = w
        .components
        .iter()
        .map(|c| state.component_name(c))
        .collect();
    let _ = write!(
        html,
        "<div class=\"row\" id=\"maintenance-{id}\"><div class=\"head\"><strong>{title}</strong><span class=\"s maintenance\">{phase}</span></div>\
<div class=\"muted\">{scheduled}: <time datetime=\"{from}\">{from_h}</time> – <time datetime=\"{to}\">{to_h}</time></div>",
        id = attr(&w.maintenance),
        title = text(&w.title),
        phase = text(s.phase(w.phase)),
        scheduled = text(s.scheduled),
        from = rfc3339(w.starts_at_ms),
        from_h = text(&human_time(w.starts_at_ms)),
        to = rfc3339(w.ends_at_ms),
        to_h = text(&human_time(w.ends_at_ms)),
    );
    if !names.is_empty() {
        let _ = write!(
            html,
            "<div class=\"muted\">{}: {}</div>",
            text(s.affected),
            text(&names.join(", "))
        );
    }
    html.push_str(&paragraphs(&w.body));
    html.push_str("</div>");
}

/// `index.html`: the status page.
pub fn index(state: &PageState<'_>) -> Vec<u8> {
    let config = state.config;
    let s = state.strings;
    let (_, description) = state.indicator();
    let worst = state.worst();
    let mut html = String::with_capacity(64 * 1024 + config.components.len() * 2 * 1024);
    let dates = bar_days(state);
    open(
        state,
        &mut html,
        &format!("{} {}", config.name, s.title_suffix),
        "",
        "history",
        true,
        Some(&day_style(state, &dates)),
    );
    let _ = write!(html, "<header><h1>{}</h1>", text(&config.name));
    if !config.description.is_empty() {
        let _ = write!(html, "<p class=\"desc\">{}</p>", text(&config.description));
    }
    html.push_str("</header>");
    let _ = write!(
        html,
        "<div class=\"banner {}\" id=\"page-status\" data-status=\"{}\" role=\"status\" aria-live=\"polite\">{}</div>",
        css_class(worst),
        status_name(worst),
        text(description)
    );

    let active = state.unresolved_incidents();
    if !active.is_empty() {
        let _ = write!(html, "<section><h2>{}</h2>", text(s.active_incidents));
        for incident in active {
            incident_summary(state, &mut html, incident, "");
        }
        html.push_str("</section>");
    }
    let running = state.active_maintenance();
    if !running.is_empty() {
        let _ = write!(html, "<section><h2>{}</h2>", text(s.maintenance_now));
        for item in running {
            maintenance_row(state, &mut html, item);
        }
        html.push_str("</section>");
    }

    let mut sections: Vec<(Option<&str>, &str)> = config
        .groups
        .iter()
        .map(|g| (Some(g.id.as_str()), g.name.as_str()))
        .collect();
    sections.push((None, s.other_components));
    for (group, title) in sections {
        let members: Vec<_> = config
            .components
            .iter()
            .filter(|c| c.group.as_deref() == group)
            .collect();
        if members.is_empty() {
            continue;
        }
        let _ = write!(html, "<section><h2>{}</h2>", text(title));
        for component in members {
            let status = state.status_of(&component.id);
            let _ = write!(
                html,
                "<div class=\"row\" id=\"component-{id}\" data-status=\"{status}\"><div class=\"head\"><div><div>{name}</div>",
                id = attr(&component.id),
                status = status_name(status),
                name = text(&component.name),
            );
            if !component.description.is_empty() {
                let _ = write!(
                    html,
                    "<div class=\"desc\">{}</div>",
                    text(&component.description)
                );
            }
            let _ = write!(
                html,
                "</div><div class=\"s {}\" data-label>{}</div></div>",
                css_class(status),
                text(s.status(status))
            );
            uptime_bars(state, &mut html, &component.id, &dates);
            html.push_str("</div>");
        }
        html.push_str("</section>");
    }

    let upcoming = state.upcoming_maintenance();
    if !upcoming.is_empty() {
        let _ = write!(html, "<section><h2>{}</h2>", text(s.upcoming_maintenance));
        for item in upcoming {
            maintenance_row(state, &mut html, item);
        }
        html.push_str("</section>");
    }
    let _ = write!(
        html,
        "<p id=\"live-note\" class=\"muted\" hidden>{}</p>",
        text(s.live_off)
    );
    close(state, &mut html, "");
    html.into_bytes()
}

/// `incidents/{id}.html`: one incident with its whole timeline.
pub fn incident_page(state: &PageState<'_>, incident: &Incident) -> Vec<u8> {
    let s = state.strings;
    let mut html = String::with_capacity(8 * 1024);
    open(
        state,
        &mut html,
        &incident.title,
        "../",
        "history",
        false,
        None,
    );
    let _ = write!(
        html,
        "<p><a href=\"../index.html\">{}</a></p><h1>{}</h1><p class=\"muted\">{}: {}",
        text(s.back_to_status),
        text(&incident.title),
        text(s.impact),
        text(s.impact_level(incident.impact)),
    );
    let names: Vec<&str> = incident
        .components
        .iter()
        .map(|c| state.component_name(&c.component))
        .collect();
    if !names.is_empty() {
        let _ = write!(html, " · {}: {}", text(s.affected), text(&names.join(", ")));
    }
    html.push_str("</p><section>");
    for update in incident.updates.iter().rev() {
        let _ = write!(
            html,
            "<div class=\"row\" id=\"update-{}\"><strong>{}</strong> <time class=\"muted\" datetime=\"{}\">{}</time>{}</div>",
            attr(&update.id),
            text(s.incident_state(update.state)),
            rfc3339(update.at_ms),
            text(&human_time(update.at_ms)),
            paragraphs(&update.body)
        );
    }
    html.push_str("</section>");
    if let Some(postmortem) = &incident.postmortem {
        let _ = write!(
            html,
            "<section><h2>{}</h2><div class=\"row entry\">{}</div></section>",
            text(s.postmortem),
            to_safe_html(postmortem)
        );
    }
    close(state, &mut html, "../");
    html.into_bytes()
}

/// `history.html`: every public incident, newest first, and past maintenance.
pub fn history(state: &PageState<'_>) -> Vec<u8> {
    let s = state.strings;
    let mut html = String::with_capacity(16 * 1024);
    open(
        state,
        &mut html,
        &format!("{} · {}", state.config.name, s.incident_history),
        "",
        "history",
        false,
        None,
    );
    let _ = write!(
        html,
        "<p><a href=\"index.html\">{}</a></p><h1>{}</h1><section>",
        text(s.back_to_status),
        text(s.incident_history)
    );
    let incidents = state.public_incidents();
    if incidents.is_empty() {
        let _ = write!(
            html,
            "<div class=\"row muted\">{}</div>",
            text(s.no_incidents)
        );
    }
    for incident in incidents {
        incident_summary(state, &mut html, incident, "");
    }
    html.push_str("</section>");
    let past: Vec<&MaintenanceItem> = state
        .public_maintenance()
        .into_iter()
        .filter(|m| m.window.state.phase == MaintenancePhase::Completed)
        .collect();
    if !past.is_empty() {
        let _ = write!(html, "<section><h2>{}</h2>", text(s.scheduled));
        for item in past {
            maintenance_row(state, &mut html, item);
        }
        html.push_str("</section>");
    }
    close(state, &mut html, "");
    html.into_bytes()
}

/// The file name of changelog page `n` (1-based).
pub fn changelog_page_name(n: usize) -> String {
    if n <= 1 {
        "changelog.html".to_owned()
    } else {
        format!("changelog-{n}.html")
    }
}

fn changelog_entry(state: &PageState<'_>, html: &mut String, view: &ChangelogView) {
    let s = state.strings;
    let entry = &view.entry;
    let when = published_at(view);
    let _ = write!(
        html,
        "<article class=\"row entry\" id=\"entry-{id}\"><div class=\"head\"><h2>{title}<span class=\"tag\">{category}</span></h2>\
<time class=\"muted\" datetime=\"{t}\">{day}</time></div>",
        id = attr(&entry.entry),
        title = text(&entry.title),
        category = text(s.category(&entry.category)),
        t = rfc3339(when),
        day = day(when),
    );
    if !entry.components.is_empty() {
        let names: Vec<&str> = entry
            .components
            .iter()
            .map(|c| state.component_name(c))
            .collect();
        let _ = write!(
            html,
            "<div class=\"muted\">{}</div>",
            text(&names.join(", "))
        );
    }
    html.push_str(&to_safe_html(&entry.body_markdown));
    html.push_str("</article>");
}

/// `changelog.html`, `changelog-2.html`, …: the entries, newest first,
/// [`CHANGELOG_PAGE_SIZE`] a page.
pub fn changelog_pages(state: &PageState<'_>) -> Vec<(String, Vec<u8>)> {
    let s = state.strings;
    let chunks: Vec<&[ChangelogView]> = if state.changelog.is_empty() {
        vec![&[]]
    } else {
        state.changelog.chunks(CHANGELOG_PAGE_SIZE).collect()
    };
    let total = chunks.len();
    let mut pages = Vec::with_capacity(total);
    for (i, chunk) in chunks.into_iter().enumerate() {
        let n = i + 1;
        let mut html = String::with_capacity(16 * 1024);
        open(
            state,
            &mut html,
            &format!("{} · {}", state.config.name, s.changelog),
            "",
            "changelog",
            false,
            None,
        );
        let _ = write!(
            html,
            "<p><a href=\"index.html\">{}</a></p><h1>{}</h1><p class=\"muted\"><a href=\"changelog.atom\">{}</a> <a href=\"changelog.rss\">{}</a></p><section>",
            text(s.back_to_status),
            text(s.changelog),
            text(s.atom_feed),
            text(s.rss_feed)
        );
        if chunk.is_empty() {
            let _ = write!(
                html,
                "<div class=\"row muted\">{}</div>",
                text(s.no_changelog)
            );
        }
        for view in chunk {
            changelog_entry(state, &mut html, view);
        }
        html.push_str("</section><nav class=\"pager\">");
        if n > 1 {
            let _ = write!(
                html,
                "<a rel=\"prev\" href=\"{}\">{}</a>",
                changelog_page_name(n - 1),
                text(s.newer)
            );
        } else {
            html.push_str("<span></span>");
        }
        if n < total {
            let _ = write!(
                html,
                "<a rel=\"next\" href=\"{}\">{}</a>",
                changelog_page_name(n + 1),
                text(s.older)
            );
        }
        html.push_str("</nav>");
        close(state, &mut html, "");
        pages.push((changelog_page_name(n), html.into_bytes()));
    }
    pages
}
