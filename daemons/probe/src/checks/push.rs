//! Push checks: what a pushed payload means. Pure: the ingest endpoint
//! ([`crate::ingest`]) reads requests, checks tokens, keeps state and
//! publishes; this module parses payloads and turns state into a verdict.
//!
//! - Heartbeat: any request is a ping; lateness is the ingest's timer.
//! - Alertmanager (webhook payload version 4): alerts are keyed by
//!   fingerprint; a payload (one group) sets each of its alerts firing or
//!   resolved. The check is down while any alert is firing, degraded when
//!   every firing alert has a severity listed in `degraded_severities`.
//! - JSON signal: `{"status": "up" | "degraded" | "down", "message": "…"}`.

use std::collections::{BTreeMap, HashMap};

use beacon_contract::messages::{ErrorKind, Outcome};
use serde::Deserialize;

/// A pushed check's current verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushVerdict {
    /// Up, degraded or down.
    pub outcome: Outcome,
    /// Why, for people, when not up.
    pub error: Option<String>,
    /// Why, as a code, when not up.
    pub error_kind: Option<ErrorKind>,
}

impl PushVerdict {
    /// All is well.
    pub fn up() -> Self {
        Self {
            outcome: Outcome::Up,
            error: None,
            error_kind: None,
        }
    }
}

/// An Alertmanager webhook payload, version 4 (the fields Beacon reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerPayload {
    /// Must be `"4"`.
    pub version: String,
    /// `firing` or `resolved`, for the group.
    pub status: String,
    /// The group's alerts.
    pub alerts: Vec<Alert>,
    /// The group key (for logs).
    #[serde(default)]
    pub group_key: String,
}

/// One alert of a payload.
#[derive(Debug, Clone, Deserialize)]
pub struct Alert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Labels, e.g. `alertname`, `severity`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations, e.g. `summary`.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Alertmanager's id of the alert; the labels when absent.
    #[serde(default)]
    pub fingerprint: Option<String>,
}

impl Alert {
    fn key(&self) -> String {
        match &self.fingerprint {
            Some(f) if !f.is_empty() => f.clone(),
            _ => self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// Reads an Alertmanager payload, refusing anything but version 4 with
/// `firing`/`resolved` statuses.
pub fn parse_alertmanager(body: &[u8]) -> Result<AlertmanagerPayload, String> {
    let payload: AlertmanagerPayload = serde_json::from_slice(body)
        .map_err(|e| format!("not an Alertmanager webhook payload: {e}"))?;
    if payload.version != "4" {
        return Err(format!(
            "Alertmanager payload version {:?}; only version \"4\" is understood",
            payload.version
        ));
    }
    for status in std::iter::once(&payload.status).chain(payload.alerts.iter().map(|a| &a.status)) {
        if status != "firing" && status != "resolved" {
            return Err(format!(
                "alert status {status:?}; expected firing or resolved"
            ));
        }
    }
    if payload.alerts.is_empty() {
        return Err("the payload has no alerts".to_owned());
    }
    Ok(payload)
}

/// The alerts of one Alertmanager check that are firing now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FiringAlerts {
    /// By key: (alert name, severity).
    firing: HashMap<String, (String, String)>,
}

impl FiringAlerts {
    /// The state after `payload`: each of its alerts set firing or resolved.
    pub fn apply(&self, payload: &AlertmanagerPayload) -> FiringAlerts {
        let mut next = self.clone();
        for alert in &payload.alerts {
            let key = alert.key();
            if alert.status == "firing" {
                let name = alert
                    .labels
                    .get("alertname")
                    .cloned()
                    .unwrap_or_else(|| key.clone());
                let severity = alert.labels.get("severity").cloned().unwrap_or_default();
                next.firing.insert(key, (name, severity));
            } else {
                next.firing.remove(&key);
            }
        }
        next
    }

    /// Firing alerts.
    pub fn len(&self) -> usize {
        self.firing.len()
    }

    /// Whether none is firing.
    pub fn is_empty(&self) -> bool {
        self.firing.is_empty()
    }

    /// Down while any alert fires, degraded if all firing ones have a
    /// degraded severity, up when none fires.
    pub fn verdict(&self, degraded_severities: &[String]) -> PushVerdict {
        if self.firing.is_empty() {
            return PushVerdict::up();
        }
        let mut names: Vec<&str> = self.firing.values().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let all_degraded = self
            .firing
            .values()
            .all(|(_, severity)| degraded_severities.iter().any(|d| d == severity));
        PushVerdict {
            outcome: if all_degraded {
                Outcome::Degraded
            } else {
                Outcome::Down
            },
            error: Some(format!(
                "{} alert(s) firing: {}",
                self.firing.len(),
                names.join(", ")
            )),
            error_kind: Some(ErrorKind::Alert),
        }
    }
}

/// A generic JSON signal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signal {
    /// `up`, `degraded` or `down`.
    pub status: String,
    /// Why, for people.
    #[serde(default)]
    pub message: Option<String>,
}

/// Longest signal message kept.
const MAX_MESSAGE: usize = 1024;

/// Reads a JSON signal into its verdict.
pub fn parse_signal(body: &[u8]) -> Result<PushVerdict, String> {
    let signal: Signal = serde_json::from_slice(body).map_err(|e| {
        format!("not a signal: {e}; send {{\"status\": \"up\" | \"degraded\" | \"down\", \"message\": \"…\"}}")
    })?;
    let outcome = match signal.status.as_str() {
        "up" => Outcome::Up,
        "degraded" => Outcome::Degraded,
        "down" => Outcome::Down,
        other => return Err(format!("status {other:?}; expected up, degraded or down")),
    };
    if signal
        .message
        .as_ref()
        .is_some_and(|m| m.len() > MAX_MESSAGE)
    {
        return Err(format!("message longer than {MAX_MESSAGE} bytes"));
    }
    Ok(match outcome {
        Outcome::Up => PushVerdict::up(),
        _ => PushVerdict {
            outcome,
            error: Some(
                signal
                    .message
                    .unwrap_or_else(|| format!("signal says {}", signal.status)),
            ),
            error_kind: Some(ErrorKind::Signal),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(alerts: &[(&str, &str, &str)]) -> Vec<u8> {
        let alerts: Vec<serde_json::Value> = alerts
            .iter()
            .map(|(fingerprint, status, severity)| {
                serde_json::json!({
                    "status": status,
                    "labels": {"alertname": format!("A{fingerprint}"), "severity": severity},
                    "annotations": {"summary": "s"},
                    "startsAt": "2026-11-27T10:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus/graph",
                    "fingerprint": fingerprint,
                })
            })
            .collect();
        let status = if alerts.iter().any(|a| a["status"] == "firing") {
            "firing"
        } else {
            "resolved"
        };
        serde_json::to_vec(&serde_json::json!({
            "version": "4",
            "groupKey": "{}:{alertname=\"x\"}",
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "beacon",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager",
            "alerts": alerts,
        }))
        .expect("json")
    }

    #[test]
    fn grouped_alerts_fire_and_resolve_by_fingerprint() {
        let warn = vec!["warning".to_owned()];
        let state = FiringAlerts::default();
        let first = parse_alertmanager(&payload(&[
            ("1", "firing", "critical"),
            ("2", "firing", "warning"),
        ]))
        .expect("parses");
        let state = state.apply(&first);
        assert_eq!(state.len(), 2);
        assert_eq!(state.verdict(&warn).outcome, Outcome::Down);
        // The critical one resolves: only a warning fires, which degrades.
        let second = parse_alertmanager(&payload(&[
            ("1", "resolved", "critical"),
            ("2", "firing", "warning"),
        ]))
        .expect("parses");
        let state = state.apply(&second);
        assert_eq!(state.verdict(&warn).outcome, Outcome::Degraded);
        assert_eq!(state.verdict(&[]).outcome, Outcome::Down);
        let third = parse_alertmanager(&payload(&[("2", "resolved", "warning")])).expect("parses");
        assert_eq!(state.apply(&third).verdict(&warn), PushVerdict::up());
    }

    #[test]
    fn bad_payloads_are_refused_with_a_reason() {
        let v3 = br#"{"version":"3","status":"firing","alerts":[{"status":"firing"}]}"#;
        let table: &[(&[u8], &str)] = &[
            (b"not json", "not an Alertmanager"),
            (b"{}", "not an Alertmanager"),
            (v3, "version"),
            (
                br#"{"version":"4","status":"odd","alerts":[{"status":"firing"}]}"#,
                "status",
            ),
            (
                br#"{"version":"4","status":"firing","alerts":[]}"#,
                "no alerts",
            ),
        ];
        for (body, want) in table {
            let e = parse_alertmanager(body).expect_err("refused");
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn signals_map_to_verdicts() {
        assert_eq!(parse_signal(br#"{"status":"up"}"#), Ok(PushVerdict::up()));
        let down = parse_signal(br#"{"status":"down","message":"queue stuck"}"#).expect("parses");
        assert_eq!(
            (down.outcome, down.error.as_deref()),
            (Outcome::Down, Some("queue stuck"))
        );
        for bad in [
            &b"[]"[..],
            br#"{"status":"sideways"}"#,
            br#"{"status":"up","extra":1}"#,
            b"",
        ] {
            assert!(
                parse_signal(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
