//! Atom and RSS feeds: `history.atom` / `history.rss` for incidents (the
//! paths Statuspage uses) and `changelog.atom` / `changelog.rss`. Every
//! piece of operator text is XML-escaped; HTML content is sanitized first
//! and then escaped, so a feed reader gets inert HTML.

use std::fmt::Write;

use beacon_contract::api::ChangelogView;
use beacon_contract::incident::Incident;

use super::{rfc2822, rfc3339_seconds, PageState, RECENT_INCIDENTS};
use crate::changelog::published_at;
use crate::markdown::to_safe_html;

/// XML text or attribute value: the five special characters escaped, and
/// characters XML 1.0 forbids (control characters) dropped, so operator
/// text can never make a feed unparseable.
pub fn xml(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// One feed item, whatever it came from.
struct Item {
    id: String,
    title: String,
    link: String,
    updated_ms: u64,
    published_ms: u64,
    /// Sanitized HTML.
    html: String,
}

fn incident_item(state: &PageState<'_>, incident: &Incident) -> Item {
    let s = state.strings;
    let mut html = String::new();
    for update in incident.updates.iter().rev() {
        let _ = write!(
            html,
            "<p><strong>{}</strong> - {}</p>{}",
            html_escape::encode_text(s.incident_state(update.state)),
            super::human_time(update.at_ms),
            to_safe_html(&update.body)
        );
    }
    Item {
        id: format!("tag:beacon,{}:incident/{}", state.config.id, incident.id),
        title: incident.title.clone(),
        link: state.link(&format!("incidents/{}.html", incident.id)),
        updated_ms: incident.updated_at_ms,
        published_ms: incident.created_at_ms,
        html,
    }
}

fn changelog_item(state: &PageState<'_>, view: &ChangelogView) -> Item {
    Item {
        id: format!(
            "tag:beacon,{}:changelog/{}",
            state.config.id, view.entry.entry
        ),
        title: view.entry.title.clone(),
        link: state.link(&format!("changelog.html#entry-{}", view.entry.entry)),
        updated_ms: view.updated_at_ms.max(published_at(view)),
        published_ms: published_at(view),
        html: to_safe_html(&view.entry.body_markdown),
    }
}

fn atom(
    state: &PageState<'_>,
    title: &str,
    self_path: &str,
    alternate: &str,
    items: &[Item],
) -> Vec<u8> {
    let updated = items
        .iter()
        .map(|i| i.updated_ms)
        .max()
        .unwrap_or(state.generated_at_ms);
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\" xml:lang=\"{lang}\">\
<id>tag:beacon,{page}:{self_path}</id><title>{title}</title><updated>{updated}</updated>\
<link rel=\"self\" href=\"{self_link}\"/><link rel=\"alternate\" type=\"text/html\" href=\"{alt}\"/>\
<author><name>{name}</name></author>\n",
        lang = state.strings.lang,
        page = xml(&state.config.id),
        title = xml(title),
        updated = rfc3339_seconds(updated),
        self_link = xml(&state.link(self_path)),
        alt = xml(&state.link(alternate)),
        name = xml(&state.config.name),
    );
    for item in items {
        let _ = writeln!(
            out,
            "<entry><id>{id}</id><title>{title}</title><link rel=\"alternate\" type=\"text/html\" href=\"{link}\"/>\
<published>{published}</published><updated>{updated}</updated><content type=\"html\">{content}</content></entry>",
            id = xml(&item.id),
            title = xml(&item.title),
            link = xml(&item.link),
            published = rfc3339_seconds(item.published_ms),
            updated = rfc3339_seconds(item.updated_ms),
            content = xml(&item.html),
        );
    }
    out.push_str("</feed>\n");
    out.into_bytes()
}

fn rss(state: &PageState<'_>, title: &str, alternate: &str, items: &[Item]) -> Vec<u8> {
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss version=\"2.0\"><channel><title>{title}</title>\
<link>{link}</link><description>{title}</description><language>{lang}</language>\
<lastBuildDate>{built}</lastBuildDate>\n",
        title = xml(title),
        link = xml(&state.link(alternate)),
        lang = state.strings.lang,
        built = rfc2822(state.generated_at_ms),
    );
    for item in items {
        let _ = writeln!(
            out,
            "<item><title>{title}</title><link>{link}</link><guid isPermaLink=\"false\">{id}</guid>\
<pubDate>{date}</pubDate><description>{content}</description></item>",
            title = xml(&item.title),
            link = xml(&item.link),
            id = xml(&item.id),
            date = rfc2822(item.published_ms),
            content = xml(&item.html),
        );
    }
    out.push_str("</channel></rss>\n");
    out.into_bytes()
}

/// Every feed: (path, bytes).
pub fn files(state: &PageState<'_>) -> Vec<(String, Vec<u8>)> {
    let s = state.strings;
    let incidents: Vec<Item> = state
        .public_incidents()
        .into_iter()
        .take(RECENT_INCIDENTS)
        .map(|i| incident_item(state, i))
        .collect();
    let changelog: Vec<Item> = state
        .changelog
        .iter()
        .take(RECENT_INCIDENTS)
        .map(|v| changelog_item(state, v))
        .collect();
    let incidents_title = format!("{} {}", state.config.name, s.incidents_feed);
    let changelog_title = format!("{} {}", state.config.name, s.changelog_feed);
    vec![
        (
            "history.atom".into(),
            atom(
                state,
                &incidents_title,
                "history.atom",
                "history.html",
                &incidents,
            ),
        ),
        (
            "history.rss".into(),
            rss(state, &incidents_title, "history.html", &incidents),
        ),
        (
            "changelog.atom".into(),
            atom(
                state,
                &changelog_title,
                "changelog.atom",
                "changelog.html",
                &changelog,
            ),
        ),
        (
            "changelog.rss".into(),
            rss(state, &changelog_title, "changelog.html", &changelog),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::xml;

    #[test]
    fn xml_escapes_and_drops_what_xml_forbids() {
        assert_eq!(
            xml("<a href=\"x\">Tom & 'Jerry'</a>\u{1}\u{8}ok\n"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &apos;Jerry&apos;&lt;/a&gt;ok\n"
        );
    }
}
