//! Maintenance calendars (RFC 5545): `maintenance.ics` with every shown
//! window, and `maintenance/{component}.ics` with the windows that touch
//! one component, for people to subscribe to. One `VEVENT` per window; its
//! `SEQUENCE` is the number of changes the window has had, so a calendar
//! replaces its copy on every change. Cancelled windows are left out, as
//! on the page; a subscribed calendar drops them on its next refresh.

use std::fmt::Write;

use super::{ical_time, MaintenanceItem, PageState};
use beacon_contract::messages::MaintenancePhase;

/// iCal TEXT: backslash, `;`, `,` and newlines escaped; other control
/// characters dropped.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends one content line, folded at 75 octets without splitting a
/// character, ended by CRLF.
fn line(out: &mut String, content: &str) {
    let mut width = 0;
    for c in content.chars() {
        let len = c.len_utf8();
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += len;
    }
    out.push_str("\r\n");
}

fn calendar(state: &PageState<'_>, name: &str, items: &[&MaintenanceItem]) -> Vec<u8> {
    let mut out = String::with_capacity(2048);
    line(&mut out, "BEGIN:VCALENDAR");
    line(&mut out, "VERSION:2.0");
    line(&mut out, "PRODID:-//Beacon//Status page//EN");
    line(&mut out, "CALSCALE:GREGORIAN");
    line(&mut out, "METHOD:PUBLISH");
    line(&mut out, &format!("X-WR-CALNAME:{}", escape(name)));
    for item in items {
        let w = &item.window.state;
        let names: Vec<&str> = w
            .components
            .iter()
            .map(|c| state.component_name(c))
            .collect();
        let mut description = w.body.clone();
        if !names.is_empty() {
            let _ = write!(
                description,
                "{}{}: {}",
                if description.is_empty() { "" } else { "\n\n" },
                state.strings.affected,
                names.join(", ")
            );
        }
        line(&mut out, "BEGIN:VEVENT");
        line(
            &mut out,
            &format!(
                "UID:{}@{}.beacon",
                escape(&w.maintenance),
                escape(&state.config.id)
            ),
        );
        line(&mut out, &format!("DTSTAMP:{}", ical_time(w.at_ms)));
        line(&mut out, &format!("LAST-MODIFIED:{}", ical_time(w.at_ms)));
        line(
            &mut out,
            &format!("CREATED:{}", ical_time(item.window.created_at_ms)),
        );
        line(&mut out, &format!("DTSTART:{}", ical_time(w.starts_at_ms)));
        line(&mut out, &format!("DTEND:{}", ical_time(w.ends_at_ms)));
        line(
            &mut out,
            &format!("SEQUENCE:{}", item.events.len().saturating_sub(1)),
        );
        line(&mut out, &format!("SUMMARY:{}", escape(&w.title)));
        if !description.is_empty() {
            line(&mut out, &format!("DESCRIPTION:{}", escape(&description)));
        }
        let status = match w.phase {
            MaintenancePhase::Cancelled => "CANCELLED",
            _ => "CONFIRMED",
        };
        line(&mut out, &format!("STATUS:{status}"));
        line(&mut out, "TRANSP:TRANSPARENT");
        line(
            &mut out,
            &format!(
                "URL:{}",
                escape(&state.link(&format!("index.html#maintenance-{}", w.maintenance)))
            ),
        );
        line(&mut out, "END:VEVENT");
    }
    line(&mut out, "END:VCALENDAR");
    out.into_bytes()
}

/// Every calendar: (path, bytes).
pub fn files(state: &PageState<'_>) -> Vec<(String, Vec<u8>)> {
    let shown = state.public_maintenance();
    let title = format!(
        "{} {}",
        state.config.name, state.strings.maintenance_calendar
    );
    let mut files = vec![(
        "maintenance.ics".to_owned(),
        calendar(state, &title, &shown),
    )];
    for component in &state.config.components {
        let items: Vec<&MaintenanceItem> = shown
            .iter()
            .copied()
            .filter(|m| m.window.state.components.contains(&component.id))
            .collect();
        files.push((
            format!("maintenance/{}.ics", component.id),
            calendar(state, &format!("{title}: {}", component.name), &items),
        ));
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_lines_fold_on_characters() {
        assert_eq!(escape("a;b,c\\d\ne\r\u{7}"), "a\\;b\\,c\\\\d\\ne");
        let mut out = String::new();
        line(&mut out, &format!("SUMMARY:{}", "é".repeat(60)));
        for physical in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(physical.len() <= 75, "{physical:?}");
        }
        let unfolded = out.replace("\r\n ", "");
        assert_eq!(unfolded, format!("SUMMARY:{}\r\n", "é".repeat(60)));
    }
}
