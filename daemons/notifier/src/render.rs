//! A notice, rendered for each channel. Pure.
//!
//! Everything operators or subscribers wrote is encoded for where it goes:
//! HTML-escaped in email HTML, stripped of control characters in email
//! headers (so no line break can start a header of its own), escaped for
//! Slack's mrkdwn (`&`, `<`, `>`), and JSON-encoded by serde in webhook,
//! Slack and Teams payloads. Every message carries the recipient's own
//! signed unsubscribe link.

use beacon_contract::messages::{
    ChannelKind, ComponentStatus, IncidentState, MaintenancePhase, Notice, NoticeKind,
    NoticeSubject,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

/// Longest SMS body: three segments.
pub const MAX_SMS: usize = 459;
/// Longest subject line.
pub const MAX_SUBJECT: usize = 200;

/// The links one recipient's message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    /// One-click unsubscribe (RFC 8058 POST target, also a page to visit).
    pub unsubscribe: String,
    /// For a confirmation: the double opt-in link.
    pub confirm: Option<String>,
}

/// An email: subject, plain text and HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// Subject line, one line, no control characters.
    pub subject: String,
    /// Plain-text part.
    pub text: String,
    /// HTML part.
    pub html: String,
}

/// Text safe for one header line: control characters become spaces, runs
/// of spaces one, at most `max` characters.
pub fn header_text(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    let mut last_space = false;
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        out.push(c);
        if out.chars().count() >= max {
            break;
        }
    }
    out.trim().to_owned()
}

fn time(ms: u64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn human_time(ms: u64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M UTC")
        .to_string()
}

fn state_label(state: IncidentState) -> &'static str {
    match state {
        IncidentState::Investigating => "Investigating",
        IncidentState::Identified => "Identified",
        IncidentState::Monitoring => "Monitoring",
        IncidentState::Resolved => "Resolved",
    }
}

fn phase_label(phase: MaintenancePhase) -> &'static str {
    match phase {
        MaintenancePhase::Scheduled => "Scheduled",
        MaintenancePhase::InProgress => "In progress",
        MaintenancePhase::Verifying => "Verifying",
        MaintenancePhase::Completed => "Completed",
        MaintenancePhase::Cancelled => "Cancelled",
    }
}

/// A one-line headline: what happened, without the page name.
pub fn headline(notice: &Notice) -> String {
    match &notice.subject {
        NoticeSubject::Incident { title, state, .. } => {
            format!("{} — {}", title, state_label(*state))
        }
        NoticeSubject::Maintenance { title, .. } => {
            let what = match notice.kind {
                NoticeKind::MaintenanceReminded => "Maintenance reminder",
                NoticeKind::MaintenanceStarted => "Maintenance started",
                NoticeKind::MaintenanceCompleted => "Maintenance completed",
                _ => "Maintenance scheduled",
            };
            format!("{what}: {title}")
        }
        NoticeSubject::Component { component, to, .. } => {
            format!("{}: {}", component.name, to.label().to_lowercase())
        }
        NoticeSubject::Digest { entries } => format!("What's new: {} change(s)", entries.len()),
        NoticeSubject::Confirmation => "Confirm your subscription".to_owned(),
    }
}

/// The body as plain lines, without links.
fn body_lines(notice: &Notice) -> Vec<String> {
    let mut lines = Vec::new();
    match &notice.subject {
        NoticeSubject::Incident {
            impact,
            components,
            updates,
            ..
        } => {
            if notice.updates > 1 {
                lines.push(format!(
                    "{} updates since our last message; the newest first.",
                    notice.updates
                ));
            }
            for update in updates.iter().take(3) {
                lines.push(format!(
                    "{} ({}): {}",
                    state_label(update.state),
                    human_time(update.at_ms),
                    update.body
                ));
            }
            if !components.is_empty() {
                let names: Vec<String> = components
                    .iter()
                    .map(|c| match c.status {
                        Some(status) => format!("{} ({})", c.name, status.label().to_lowercase()),
                        None => c.name.clone(),
                    })
                    .collect();
                lines.push(format!("Affected: {}", names.join(", ")));
            }
            lines.push(format!("Impact: {}", impact.as_str()));
        }
        NoticeSubject::Maintenance {
            body,
            phase,
            starts_at_ms,
            ends_at_ms,
            components,
            ..
        } => {
            lines.push(format!(
                "{}: {} to {}",
                phase_label(*phase),
                human_time(*starts_at_ms),
                human_time(*ends_at_ms)
            ));
            if !body.is_empty() {
                lines.push(body.clone());
            }
            if !components.is_empty() {
                let names: Vec<&str> = components.iter().map(|c| c.name.as_str()).collect();
                lines.push(format!("Components: {}", names.join(", ")));
            }
        }
        NoticeSubject::Component {
            component,
            from,
            to,
        } => {
            let from = from.map_or("unknown", |s| s.label());
            lines.push(format!("{}: {} → {}", component.name, from, to.label()));
        }
        NoticeSubject::Digest { entries } => {
            for entry in entries {
                lines.push(format!("[{}] {}", entry.category, entry.title));
                if !entry.body.is_empty() {
                    lines.push(entry.body.clone());
                }
            }
        }
        NoticeSubject::Confirmation => {
            lines.push(format!(
                "Please confirm that you want updates from {} by following the link below. \
                 If you did not ask for them, ignore this message.",
                notice.page_name
            ));
        }
    }
    lines
}

/// The email for one recipient.
pub fn email(notice: &Notice, links: &Links) -> Email {
    let subject = header_text(
        &format!("[{}] {}", notice.page_name, headline(notice)),
        MAX_SUBJECT,
    );
    let lines = body_lines(notice);
    let mut text = format!("{}\n\n", headline(notice));
    for line in &lines {
        text.push_str(line);
        text.push_str("\n\n");
    }
    if let Some(confirm) = &links.confirm {
        text.push_str(&format!("Confirm: {confirm}\n\n"));
    }
    if let Some(url) = &notice.page_url {
        text.push_str(&format!("Status page: {url}\n"));
    }
    text.push_str(&format!("Unsubscribe: {}\n", links.unsubscribe));

    let esc = |s: &str| html_escape::encode_text(s).into_owned();
    let attr = |s: &str| html_escape::encode_double_quoted_attribute(s).into_owned();
    let mut html = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head>\
         <body style=\"font-family:sans-serif;max-width:40em\">",
    );
    html.push_str(&format!(
        "<p style=\"color:#555\">{}</p><h2>{}</h2>",
        esc(&notice.page_name),
        esc(&headline(notice))
    ));
    for line in &lines {
        html.push_str(&format!("<p>{}</p>", esc(line).replace('\n', "<br>")));
    }
    if let Some(confirm) = &links.confirm {
        html.push_str(&format!(
            "<p><a href=\"{}\">Confirm your subscription</a></p>",
            attr(confirm)
        ));
    }
    if let Some(url) = &notice.page_url {
        html.push_str(&format!("<p><a href=\"{}\">Status page</a></p>", attr(url)));
    }
    html.push_str(&format!(
        "<p style=\"font-size:small;color:#777\"><a href=\"{}\">Unsubscribe</a></p></body></html>",
        attr(&links.unsubscribe)
    ));
    Email {
        subject,
        text,
        html,
    }
}

/// The SMS for one recipient, at most [`MAX_SMS`] characters.
pub fn sms(notice: &Notice, links: &Links) -> String {
    let tail = format!(" Unsubscribe: {} Reply STOP to stop.", links.unsubscribe);
    let mut head = header_text(
        &format!("{}: {}", notice.page_name, headline(notice)),
        MAX_SMS,
    );
    if let NoticeSubject::Incident { updates, .. } = &notice.subject {
        if let Some(update) = updates.first() {
            head.push_str(". ");
            head.push_str(&header_text(&update.body, MAX_SMS));
        }
    }
    let room = MAX_SMS.saturating_sub(tail.chars().count());
    if head.chars().count() > room {
        head = head.chars().take(room.saturating_sub(1)).collect();
        head.push('…');
    }
    head + &tail
}

fn statuspage_status(status: ComponentStatus) -> &'static str {
    status.as_str()
}

/// The webhook payload, in Statuspage's webhook shape (`meta`, `page`, and
/// `incident` or `component_update` and `component`); maintenance is an
/// incident with `scheduled_for` and `scheduled_until`, as Statuspage sends it.
pub fn webhook(notice: &Notice, page_id: &str, links: &Links, idempotency_key: &str) -> Value {
    let meta = json!({
        "unsubscribe": links.unsubscribe,
        "documentation": "https://developer.statuspage.io/#section/Webhooks",
        "generated_at": time(notice.at_ms),
        "event": notice.kind.as_str(),
        "idempotency_key": idempotency_key,
    });
    let page = json!({
        "id": page_id,
        "name": notice.page_name,
        "url": notice.page_url,
    });
    match &notice.subject {
        NoticeSubject::Incident {
            id,
            title,
            impact,
            state,
            components,
            updates,
            created_at_ms,
            updated_at_ms,
            resolved_at_ms,
        } => json!({
            "meta": meta,
            "page": page,
            "incident": {
                "id": id,
                "page_id": page_id,
                "name": title,
                "status": state.as_str(),
                "impact": impact.as_str(),
                "created_at": time(*created_at_ms),
                "updated_at": time(*updated_at_ms),
                "resolved_at": resolved_at_ms.map(time),
                "shortlink": notice.page_url,
                "components": components.iter().map(|c| json!({
                    "id": c.id, "name": c.name, "status": c.status.map(statuspage_status),
                })).collect::<Vec<_>>(),
                "incident_updates": updates.iter().map(|u| json!({
                    "id": u.id,
                    "incident_id": id,
                    "status": u.state.as_str(),
                    "body": u.body,
                    "created_at": time(u.at_ms),
                    "updated_at": time(u.at_ms),
                    "display_at": time(u.at_ms),
                })).collect::<Vec<_>>(),
            },
        }),
        NoticeSubject::Maintenance {
            id,
            title,
            body,
            phase,
            starts_at_ms,
            ends_at_ms,
            components,
        } => json!({
            "meta": meta,
            "page": page,
            "incident": {
                "id": id,
                "page_id": page_id,
                "name": title,
                "status": phase.as_str(),
                "impact": "maintenance",
                "scheduled_for": time(*starts_at_ms),
                "scheduled_until": time(*ends_at_ms),
                "updated_at": time(notice.at_ms),
                "components": components.iter().map(|c| json!({"id": c.id, "name": c.name})).collect::<Vec<_>>(),
                "incident_updates": [{
                    "status": phase.as_str(),
                    "body": body,
                    "created_at": time(notice.at_ms),
                }],
            },
        }),
        NoticeSubject::Component {
            component,
            from,
            to,
        } => json!({
            "meta": meta,
            "page": page,
            "component_update": {
                "created_at": time(notice.at_ms),
                "component_id": component.id,
                "old_status": from.map(statuspage_status),
                "new_status": statuspage_status(*to),
                "id": notice.id,
            },
            "component": {
                "id": component.id,
                "name": component.name,
                "status": statuspage_status(*to),
            },
        }),
        NoticeSubject::Digest { entries } => json!({
            "meta": meta,
            "page": page,
            "changelog": entries,
        }),
        NoticeSubject::Confirmation => json!({"meta": meta, "page": page}),
    }
}

/// Slack's mrkdwn treats `&`, `<` and `>` as control characters.
pub fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Slack incoming-webhook message.
pub fn slack(notice: &Notice, links: &Links) -> Value {
    let title = slack_escape(&format!("{}: {}", notice.page_name, headline(notice)));
    let body = body_lines(notice)
        .iter()
        .map(|l| slack_escape(l))
        .collect::<Vec<_>>()
        .join("\n");
    let mut footer = format!("<{}|Unsubscribe>", links.unsubscribe);
    if let Some(url) = &notice.page_url {
        footer = format!("<{}|Status page> · {footer}", slack_escape(url));
    }
    json!({
        "text": title,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": header_text(&format!("{}: {}", notice.page_name, headline(notice)), 150)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": body}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]},
        ],
    })
}

/// A Microsoft Teams incoming-webhook message: an Adaptive Card.
pub fn teams(notice: &Notice, links: &Links) -> Value {
    let mut body = vec![json!({
        "type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true,
        "text": format!("{}: {}", notice.page_name, headline(notice)),
    })];
    for line in body_lines(notice) {
        body.push(json!({"type": "TextBlock", "wrap": true, "text": line}));
    }
    let mut actions =
        vec![json!({"type": "Action.OpenUrl", "title": "Unsubscribe", "url": links.unsubscribe})];
    if let Some(url) = &notice.page_url {
        actions.insert(
            0,
            json!({"type": "Action.OpenUrl", "title": "Status page", "url": url}),
        );
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "actions": actions,
            },
        }],
    })
}

/// A piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Unsubscribe,
    Confirm,
    Key,
}

/// One rendered text with holes for a recipient's own values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filled {
    segments: Vec<Segment>,
    html: bool,
}

impl Filled {
    fn parse(text: &str, marks: &Marks, html: bool) -> Filled {
        let mut segments = Vec::new();
        let mut rest = text;
        loop {
            let next = [
                (marks.unsubscribe.as_str(), Segment::Unsubscribe),
                (marks.confirm.as_str(), Segment::Confirm),
                (marks.key.as_str(), Segment::Key),
            ]
            .into_iter()
            .filter_map(|(mark, segment)| rest.find(mark).map(|at| (at, mark.len(), segment)))
            .min_by_key(|(at, _, _)| *at);
            match next {
                Some((at, len, segment)) => {
                    if at > 0 {
                        segments.push(Segment::Text(rest[..at].to_owned()));
                    }
                    segments.push(segment);
                    rest = &rest[at + len..];
                }
                None => {
                    if !rest.is_empty() {
                        segments.push(Segment::Text(rest.to_owned()));
                    }
                    return Filled { segments, html };
                }
            }
        }
    }

    /// The text for one recipient.
    pub fn fill(&self, links: &Links, key: &str) -> String {
        let capacity = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Text(t) => t.len(),
                _ => 200,
            })
            .sum();
        let mut out = String::with_capacity(capacity);
        for segment in &self.segments {
            // The template's text is encoded already; a recipient's values
            // are encoded for where they go.
            let value = match segment {
                Segment::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Segment::Unsubscribe => links.unsubscribe.as_str(),
                Segment::Confirm => links.confirm.as_deref().unwrap_or_default(),
                Segment::Key => key,
            };
            if self.html {
                out.push_str(&html_escape::encode_double_quoted_attribute(value));
            } else {
                out.push_str(value);
            }
        }
        out
    }
}

/// Markers no text of a notice can contain: a private-use character and a
/// random token, fresh for every template.
struct Marks {
    unsubscribe: String,
    confirm: String,
    key: String,
}

impl Marks {
    fn new() -> Marks {
        let token: u64 = rand::random();
        let mark = |what: char| format!("\u{E000}{token:016x}{what}\u{E000}");
        Marks {
            unsubscribe: mark('u'),
            confirm: mark('c'),
            key: mark('k'),
        }
    }

    fn links(&self, confirm: bool) -> Links {
        Links {
            unsubscribe: self.unsubscribe.clone(),
            confirm: confirm.then(|| self.confirm.clone()),
        }
    }
}

/// A notice rendered once for every recipient of a batch on one channel,
/// with holes for each recipient's links and key: the per-delivery work is
/// filling them in. SMS is rendered per recipient (its length depends on
/// the link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template {
    /// Subject, plain text and HTML.
    Email {
        /// Subject (no holes).
        subject: String,
        /// Plain text.
        text: Filled,
        /// HTML.
        html: Filled,
    },
    /// A JSON body (webhook, Slack, Teams).
    Json(Filled),
    /// Rendered per recipient.
    PerRecipient,
}

impl Template {
    /// Renders `notice` for `kind`.
    pub fn new(kind: ChannelKind, notice: &Notice, page_id: &str) -> Template {
        let marks = Marks::new();
        let links = marks.links(notice.kind == NoticeKind::Confirmation);
        let json = |value: Value| {
            Template::Json(Filled::parse(
                &serde_json::to_string(&value).unwrap_or_default(),
                &marks,
                false,
            ))
        };
        match kind {
            ChannelKind::Email => {
                let email = email(notice, &links);
                Template::Email {
                    subject: email.subject,
                    text: Filled::parse(&email.text, &marks, false),
                    html: Filled::parse(&email.html, &marks, true),
                }
            }
            ChannelKind::Webhook => json(webhook(notice, page_id, &links, &marks.key)),
            ChannelKind::Slack => json(slack(notice, &links)),
            ChannelKind::Teams => json(teams(notice, &links)),
            ChannelKind::Sms => Template::PerRecipient,
        }
    }

    /// The email for one recipient.
    pub fn email(&self, notice: &Notice, links: &Links) -> Email {
        match self {
            Template::Email {
                subject,
                text,
                html,
            } => Email {
                subject: subject.clone(),
                text: text.fill(links, ""),
                html: html.fill(links, ""),
            },
            _ => email(notice, links),
        }
    }

    /// The JSON body for one recipient, if this is a JSON template.
    pub fn json(&self, links: &Links, key: &str) -> Option<String> {
        match self {
            Template::Json(body) => Some(body.fill(links, key)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_contract::messages::{Impact, IncidentUpdate, NoticeComponent};

    fn notice(title: &str, body: &str) -> Notice {
        Notice {
            id: "incident-i1.0".into(),
            kind: NoticeKind::IncidentCreated,
            page_name: "Acme <Status>".into(),
            page_url: Some("https://status.example.com/?a=1&b=\"2\"".into()),
            subject: NoticeSubject::Incident {
                id: "i1".into(),
                title: title.into(),
                impact: Impact::Major,
                state: IncidentState::Investigating,
                components: vec![NoticeComponent {
                    id: "api".into(),
                    name: "API".into(),
                    status: Some(ComponentStatus::MajorOutage),
                }],
                updates: vec![IncidentUpdate {
                    id: "u1".into(),
                    state: IncidentState::Investigating,
                    body: body.into(),
                    components: vec![],
                    at_ms: 1_732_233_000_000,
                    actor: "op".into(),
                }],
                created_at_ms: 1_732_233_000_000,
                updated_at_ms: 1_732_233_000_000,
                resolved_at_ms: None,
            },
            at_ms: 1_732_233_000_000,
            updates: 1,
        }
    }

    fn links() -> Links {
        Links {
            unsubscribe: "https://notify.example.com/unsubscribe?token=abc.def".into(),
            confirm: None,
        }
    }

    #[test]
    fn header_injection_in_titles_is_flattened() {
        let n = notice("Down\r\nBcc: eve@example.com\r\n\r\nbody", "x");
        let email = email(&n, &links());
        assert!(
            !email.subject.contains('\r') && !email.subject.contains('\n'),
            "{:?}",
            email.subject
        );
        assert!(
            email.subject.contains("Bcc: eve@example.com"),
            "kept as text: {:?}",
            email.subject
        );
        assert_eq!(header_text("a\u{0}b\tc\u{7f}d", 100), "a b c d");
        assert_eq!(header_text(&"x".repeat(300), 10).len(), 10);
    }

    #[test]
    fn html_is_escaped_everywhere() {
        let n = notice(
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)> & more",
        );
        let email = email(&n, &links());
        assert!(!email.html.contains("<script>"), "{}", email.html);
        assert!(!email.html.contains("<img"), "{}", email.html);
        assert!(email.html.contains("&lt;script&gt;"));
        assert!(email.html.contains("Acme &lt;Status&gt;"));
        assert!(
            email
                .html
                .contains("href=\"https://status.example.com/?a=1&amp;b=&quot;2&quot;\""),
            "{}",
            email.html
        );
        assert!(email
            .text
            .contains("Unsubscribe: https://notify.example.com/unsubscribe?token=abc.def"));
    }

    #[test]
    fn slack_and_teams_encode_text() {
        let n = notice("<!channel> & <https://evil.example|click>", "x");
        let value = slack(&n, &links());
        let text = value["text"].as_str().expect("text");
        assert!(!text.contains("<!channel>"), "{text}");
        assert!(text.contains("&lt;!channel&gt; &amp;"));
        let card = teams(&n, &links());
        assert_eq!(card["attachments"][0]["content"]["type"], "AdaptiveCard");
        let serialized = serde_json::to_string(&card).expect("json");
        assert!(serialized.contains("Unsubscribe"));
    }

    #[test]
    fn sms_is_short_and_says_how_to_stop() {
        let n = notice(&"Long title ".repeat(40), &"words ".repeat(200));
        let text = sms(&n, &links());
        assert!(text.chars().count() <= MAX_SMS, "{}", text.chars().count());
        assert!(text.ends_with("Reply STOP to stop."));
        assert!(text.contains("unsubscribe?token=abc.def"));
    }

    #[test]
    fn templates_fill_in_exactly_what_rendering_each_time_gives() {
        let n = notice("Errors & <more>", "Body with \u{E000} in it");
        let links = links();
        let email_template = Template::new(ChannelKind::Email, &n, "demo");
        assert_eq!(email_template.email(&n, &links), email(&n, &links));
        for kind in [ChannelKind::Webhook, ChannelKind::Slack, ChannelKind::Teams] {
            let template = Template::new(kind, &n, "demo");
            let filled: Value = serde_json::from_str(&template.json(&links, "k1").expect("json"))
                .expect("valid JSON");
            let direct = match kind {
                ChannelKind::Webhook => webhook(&n, "demo", &links, "k1"),
                ChannelKind::Slack => slack(&n, &links),
                _ => teams(&n, &links),
            };
            assert_eq!(filled, direct, "{kind:?}");
        }
        assert_eq!(
            Template::new(ChannelKind::Sms, &n, "demo"),
            Template::PerRecipient
        );
    }

    #[test]
    fn webhooks_have_statuspage_shape() {
        let value = webhook(&notice("Errors", "Looking"), "demo", &links(), "k1");
        assert_eq!(value["incident"]["status"], "investigating");
        assert_eq!(value["incident"]["impact"], "major");
        assert_eq!(value["incident"]["incident_updates"][0]["body"], "Looking");
        assert_eq!(value["incident"]["created_at"], "2024-11-21T23:50:00.000Z");
        assert_eq!(value["meta"]["unsubscribe"], links().unsubscribe);
        assert_eq!(value["page"]["id"], "demo");
    }
}
