//! Rendering results as text, and writing them out.
//!
//! Everything that turns data into text is a pure function returning a
//! `String`, so it is unit-tested without a terminal or a bus. Only
//! [`print`] and [`warn`] touch stdout and stderr, and neither panics when
//! the other end is gone (`println!` would).

use std::io::{self, Write};

use beacon_contract::messages::StatusRecord;
use serde::Serialize;
use serde_json::Value;

use crate::cli::OutputFormat;
use crate::exit::CtlError;

/// Longest summary printed by `tail` in table form, in characters.
pub const SUMMARY_MAX_CHARS: usize = 120;

/// Keys a summary starts with, in this order: they say where it happened.
const LEADING_KEYS: [&str; 5] = ["page", "component", "check", "region", "channel"];

/// Writes `text` to stdout and flushes, so `tail` lines appear as they arrive.
pub fn print(text: &str) -> Result<(), CtlError> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe => CtlError::OutputClosed,
            _ => CtlError::Output(e),
        })
}

/// Writes one `beaconctl: warning: …` line to stderr. A failure to write a
/// warning is ignored: there is nowhere left to report it.
pub fn warn(message: &str) {
    let _ = writeln!(io::stderr().lock(), "beaconctl: warning: {message}");
}

/// Pretty JSON followed by a newline.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<String, CtlError> {
    serde_json::to_string_pretty(value)
        .map(|text| text + "\n")
        .map_err(|e| CtlError::Output(io::Error::other(e)))
}

/// Aligns `rows` under `headers` in columns two spaces apart. The last
/// column is not padded, so lines carry no trailing spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let mut text = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let width = widths.get(i).copied().unwrap_or(0);
            let pad = width.saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// RFC 4180 CSV: a header line, then one line per row; a field with a
/// comma, a quote or a line break is quoted, quotes doubled.
pub fn csv(headers: &[&str], rows: &[Vec<String>]) -> String {
    let field = |text: &str| {
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_owned()
        }
    };
    let mut text = String::new();
    let header: Vec<String> = headers.iter().map(|h| field(h)).collect();
    text.push_str(&header.join(","));
    text.push_str("\r\n");
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| field(c)).collect();
        text.push_str(&cells.join(","));
        text.push_str("\r\n");
    }
    text
}

/// The `status` rows as CSV, same columns as the table.
pub fn status_csv(records: &[StatusRecord]) -> String {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.page.clone(),
                r.component.clone(),
                r.status.as_str().to_owned(),
                utc_timestamp(r.since_ms),
                r.evidence.rule.clone(),
            ]
        })
        .collect();
    csv(&["page", "component", "status", "since", "rule"], &rows)
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn utc_timestamp(ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// The `status` table: PAGE COMPONENT STATUS SINCE RULE.
pub fn status_table(records: &[StatusRecord]) -> String {
    if records.is_empty() {
        return "no component has a status yet\n".to_owned();
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.page.clone(),
                r.component.clone(),
                r.status.as_str().to_owned(),
                utc_timestamp(r.since_ms),
                r.evidence.rule.clone(),
            ]
        })
        .collect();
    table(&["PAGE", "COMPONENT", "STATUS", "SINCE", "RULE"], &rows)
}

/// One `tail` line for a message, with its trailing newline.
///
/// Table: `subject  kind  id  summary`, where kind and id come from the
/// envelope read as generic JSON (so any message kind, old or new, prints)
/// and `-` stands for a missing field. JSON: `{"subject":…,"payload":…}`
/// with the payload as JSON when it parses, else as a string.
pub fn tail_line(subject: &str, payload: &[u8], format: OutputFormat) -> String {
    let parsed: Option<Value> = serde_json::from_slice(payload).ok();
    match format {
        OutputFormat::Json => {
            let payload = parsed
                .unwrap_or_else(|| Value::String(String::from_utf8_lossy(payload).into_owned()));
            let line = serde_json::json!({ "subject": subject, "payload": payload });
            format!("{line}\n")
        }
        // `lib::run` refuses csv for this command before it runs.
        OutputFormat::Table | OutputFormat::Csv => {
            let (kind, id, summary) = match &parsed {
                Some(value) => {
                    let field = |name: &str| {
                        value
                            .get(name)
                            .and_then(Value::as_str)
                            .unwrap_or("-")
                            .to_owned()
                    };
                    // An envelope's interesting part is its body; anything
                    // else (API requests, foreign JSON) is summarized whole.
                    let body = value.get("data").filter(|d| d.is_object()).unwrap_or(value);
                    (field("kind"), field("id"), summarize(body))
                }
                None => ("-".to_owned(), "-".to_owned(), text_summary(payload)),
            };
            format!("{subject}  {kind}  {id}  {summary}\n")
        }
    }
}

/// A one-line summary of a JSON value: the scalar fields of an object as
/// `key=value` (page, component, check, region, channel first, quoted free
/// text last, alphabetical in between), skipping envelope bookkeeping and
/// nested values, cut to [`SUMMARY_MAX_CHARS`].
pub fn summarize(value: &Value) -> String {
    let text = match value {
        Value::Object(map) => {
            let mut fields: Vec<(&String, String)> = map
                .iter()
                .filter(|(key, _)| {
                    !matches!(key.as_str(), "kind" | "version" | "id" | "hlc" | "origin")
                })
                .filter_map(|(key, value)| scalar(value).map(|v| (key, v)))
                .collect();
            // Where it happened first, then short values, then quoted free
            // text (errors, titles) that the cut may shorten; alphabetical
            // within each, so the order is stable whatever the JSON map keeps.
            fields.sort_by_key(|(key, value)| {
                let leading = LEADING_KEYS
                    .iter()
                    .position(|k| k == key)
                    .unwrap_or(LEADING_KEYS.len());
                (leading, value.starts_with('"'), *key)
            });
            let parts: Vec<String> = fields
                .into_iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect();
            parts.join(" ")
        }
        other => scalar(other).unwrap_or_else(|| other.to_string()),
    };
    truncate(&text, SUMMARY_MAX_CHARS)
}

/// A scalar as it reads best in a summary; `None` for arrays and objects.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some("null".to_owned()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        // Quote only when needed, so `status=major_outage` stays readable
        // and `error="connection refused"` stays one field.
        Value::String(s)
            if !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c == '"' || c == '=') =>
        {
            Some(s.clone())
        }
        Value::String(s) => Some(Value::String(s.clone()).to_string()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// A non-JSON payload as printable text on one line.
fn text_summary(payload: &[u8]) -> String {
    if payload.is_empty() {
        return "(empty)".to_owned();
    }
    let text: String = String::from_utf8_lossy(payload)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate(&text, SUMMARY_MAX_CHARS)
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_contract::event::EventId;
    use beacon_contract::messages::{ComponentStatus, Evidence};

    fn record(page: &str, component: &str, status: ComponentStatus, rule: &str) -> StatusRecord {
        StatusRecord::new(
            page,
            component,
            status,
            1_732_233_000_000,
            EventId::new(),
            Evidence {
                rule: rule.into(),
                trigger: Some(EventId::new()),
                regions: vec![],
            },
        )
    }

    #[test]
    fn table_aligns_columns_without_trailing_spaces() {
        let rows = vec![
            vec!["demo".to_owned(), "api".to_owned(), "x".to_owned()],
            vec!["other-page".to_owned(), "w".to_owned(), "".to_owned()],
        ];
        assert_eq!(
            table(&["PAGE", "COMPONENT", "RULE"], &rows),
            "PAGE        COMPONENT  RULE\n\
             demo        api        x\n\
             other-page  w\n"
        );
    }

    #[test]
    fn table_counts_characters_not_bytes() {
        let rows = vec![vec!["é".to_owned(), "x".to_owned()]];
        assert_eq!(table(&["AB", "C"], &rows), "AB  C\né   x\n");
    }

    #[test]
    fn timestamps_are_utc() {
        let table = [
            (0, "1970-01-01T00:00:00Z"),
            (1_732_233_000_000, "2024-11-21T23:50:00Z"),
            (951_782_400_000, "2000-02-29T00:00:00Z"),
            (951_868_799_999, "2000-02-29T23:59:59Z"),
            (4_107_542_400_000, "2100-03-01T00:00:00Z"),
            (1_709_164_800_000, "2024-02-29T00:00:00Z"),
            (1_735_689_599_000, "2024-12-31T23:59:59Z"),
        ];
        for (ms, want) in table {
            assert_eq!(utc_timestamp(ms), want, "{ms}");
        }
    }

    #[test]
    fn status_table_has_the_contract_columns() {
        let records = vec![
            record(
                "demo",
                "api",
                ComponentStatus::MajorOutage,
                "quorum: 2 of 2 regions down",
            ),
            record(
                "demo",
                "website",
                ComponentStatus::Operational,
                "all regions up",
            ),
        ];
        assert_eq!(
            status_table(&records),
            "PAGE  COMPONENT  STATUS        SINCE                 RULE\n\
             demo  api        major_outage  2024-11-21T23:50:00Z  quorum: 2 of 2 regions down\n\
             demo  website    operational   2024-11-21T23:50:00Z  all regions up\n"
        );
        assert_eq!(status_table(&[]), "no component has a status yet\n");
    }

    #[test]
    fn tail_table_line_reads_the_envelope_generically() {
        let payload = br#"{"kind":"status_change","version":1,"id":"01JD0000000000000000000000","hlc":"1732233000000-00000","origin":"eu","data":{"page":"demo","component":"api","from":"operational","to":"major_outage","evidence":{"rule":"r"}}}"#;
        assert_eq!(
            tail_line("test.status.demo.api", payload, OutputFormat::Table),
            "test.status.demo.api  status_change  01JD0000000000000000000000  page=demo component=api from=operational to=major_outage\n"
        );
    }

    #[test]
    fn tail_table_line_handles_foreign_payloads() {
        assert_eq!(
            tail_line("test.x", b"hello\nworld", OutputFormat::Table),
            "test.x  -  -  hello world\n"
        );
        assert_eq!(
            tail_line("test.x", b"", OutputFormat::Table),
            "test.x  -  -  (empty)\n"
        );
        assert_eq!(
            tail_line(
                "test.api.config.get",
                br#"{"page":"demo"}"#,
                OutputFormat::Table
            ),
            "test.api.config.get  -  -  page=demo\n"
        );
        assert_eq!(
            tail_line("test.x", b"42", OutputFormat::Table),
            "test.x  -  -  42\n"
        );
    }

    #[test]
    fn tail_json_line_embeds_json_or_a_string() {
        let line = tail_line("test.x", br#"{"a":1}"#, OutputFormat::Json);
        let value: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"subject": "test.x", "payload": {"a": 1}})
        );
        let line = tail_line("test.x", b"not json", OutputFormat::Json);
        let value: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"subject": "test.x", "payload": "not json"})
        );
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
    }

    #[test]
    fn summaries_quote_when_needed_and_stay_short() {
        let value = serde_json::json!({"error": "connection refused", "latency_ms": 12, "empty": "", "ok": true, "nested": [1]});
        assert_eq!(
            summarize(&value),
            r#"latency_ms=12 ok=true empty="" error="connection refused""#
        );
        let long = serde_json::json!({ "text": "x".repeat(500) });
        let summary = summarize(&long);
        assert_eq!(summary.chars().count(), SUMMARY_MAX_CHARS);
        assert!(summary.ends_with('…'));
    }
}
