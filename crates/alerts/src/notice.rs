//! What is sent: a [`Notice`] (one alert firing or resolved) and a [`Message`] (the notices
//! due for one channel at one evaluation, grouped), rendered for each channel type.
//!
//! The webhook body of one notice:
//!
//! ```json
//! {"status": "firing", "alert": "auth-failures", "severity": "critical",
//!  "summary": "...", "description": "...", "value": 42.0, "threshold": 10.0,
//!  "model_version": "3f2a...", "started_at": "2026-12-07T18:00:00Z", "resolved_at": null,
//!  "labels": {"condition": "auth_failures_above", "model": "news", "rule": "auth-failures",
//!             "severity": "critical"}}
//! ```
//!
//! A message of several notices is `{"status", "count", "notices": [one body per notice]}`,
//! its `status` `firing` when any notice fires.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};

/// Whether a notice announces or ends an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// One alert's news.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notice {
    pub status: Status,
    /// The rule's name.
    pub alert: String,
    pub severity: String,
    pub summary: String,
    pub description: String,
    pub value: f64,
    pub threshold: f64,
    pub model_version: String,
    #[serde(serialize_with = "rfc3339")]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339_opt")]
    pub resolved_at: Option<DateTime<Utc>>,
    pub labels: BTreeMap<String, String>,
    /// The alert's row in the history (not sent).
    #[serde(skip)]
    pub alert_id: i64,
}

fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn rfc3339_opt<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

impl Notice {
    /// `FIRING critical: rule — model version`.
    pub fn headline(&self) -> String {
        format!(
            "{} {}: {} — {}",
            self.status.name().to_uppercase(),
            self.severity,
            self.alert,
            self.model_label()
        )
    }

    /// The model's name and version when known (`news 3f2a`), else the version.
    fn model_label(&self) -> String {
        match self.labels.get("model") {
            Some(name) if !name.is_empty() => format!("{name} {}", self.model_version),
            _ => self.model_version.clone(),
        }
    }

    fn text(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\nvalue {} (threshold {}), model version {}, started {}",
            self.headline(),
            self.summary,
            self.description,
            round(self.value),
            self.threshold,
            self.model_version,
            self.started_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        if let Some(r) = self.resolved_at {
            s.push_str(&format!(
                ", resolved {}",
                r.to_rfc3339_opts(SecondsFormat::Secs, true)
            ));
        }
        s
    }
}

fn round(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

/// The notices one channel sends at once (one, or a group).
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub notices: Vec<Notice>,
    /// The history rows to update with this channel's outcome (one per notice).
    pub deliveries: Vec<i64>,
}

impl Message {
    fn status(&self) -> Status {
        if self.notices.iter().any(|n| n.status == Status::Firing) {
            Status::Firing
        } else {
            Status::Resolved
        }
    }

    /// The one-line title (an e-mail's subject, Slack's header).
    pub fn title(&self) -> String {
        match self.notices.as_slice() {
            [one] => format!("[taxon] {}", one.headline()),
            many => {
                let firing = many.iter().filter(|n| n.status == Status::Firing).count();
                format!(
                    "[taxon] {} alerts: {firing} firing, {} resolved",
                    many.len(),
                    many.len() - firing
                )
            }
        }
    }

    /// The webhook's JSON body (see the module documentation).
    pub fn webhook_body(&self) -> Value {
        match self.notices.as_slice() {
            [one] => json!(one),
            many => json!({
                "status": self.status(),
                "count": many.len(),
                "notices": many,
            }),
        }
    }

    /// A Slack incoming-webhook payload: `text` (the fallback for notifications) and
    /// `blocks` (a header, then one mrkdwn section per notice; at most 45 listed).
    pub fn slack_body(&self) -> Value {
        const MAX_LISTED: usize = 45;
        let mut blocks = vec![json!({
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(&self.title(), 150), "emoji": true},
        })];
        for n in self.notices.iter().take(MAX_LISTED) {
            let icon = match n.status {
                Status::Firing => ":rotating_light:",
                Status::Resolved => ":white_check_mark:",
            };
            let mut text = format!(
                "{icon} *{}* `{}` — {}\n{}\n_{}_\nvalue *{}* (threshold {}) · model `{}` · started {}",
                escape(&n.status.name().to_uppercase()),
                escape(&n.alert),
                escape(&n.severity),
                escape(&n.summary),
                escape(&n.description),
                round(n.value),
                n.threshold,
                escape(&n.model_label()),
                n.started_at.to_rfc3339_opts(SecondsFormat::Secs, true)
            );
            if let Some(r) = n.resolved_at {
                text.push_str(&format!(
                    " · resolved {}",
                    r.to_rfc3339_opts(SecondsFormat::Secs, true)
                ));
            }
            blocks.push(json!({
                "type": "section",
                "text": {"type": "mrkdwn", "text": truncate(&text, 3000)},
            }));
        }
        if self.notices.len() > MAX_LISTED {
            blocks.push(json!({
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": format!("and {} more", self.notices.len() - MAX_LISTED)}],
            }));
        }
        json!({ "text": truncate(&self.title(), 3000), "blocks": blocks })
    }

    /// The e-mail's plain-text body.
    pub fn email_body(&self) -> String {
        let mut body = String::new();
        for n in &self.notices {
            body.push_str(&n.text());
            body.push_str("\n\n");
        }
        body.push_str("-- \nSent by taxon serve --alerts; history: taxon alerts list\n");
        body
    }
}

/// Slack's mrkdwn escapes (`&`, `<`, `>`).
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max_chars - 1).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(status: Status, alert: &str) -> Notice {
        Notice {
            status,
            alert: alert.into(),
            severity: "critical".into(),
            summary: "too many failures".into(),
            description: "12.0 authentication failures per minute".into(),
            value: 12.0,
            threshold: 10.0,
            model_version: "abc123".into(),
            started_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            resolved_at: None,
            labels: BTreeMap::from([("model".to_string(), "news".to_string())]),
            alert_id: 1,
        }
    }

    #[test]
    fn one_notice_is_a_flat_body_and_a_group_lists_them() {
        let one = Message {
            notices: vec![notice(Status::Firing, "auth")],
            deliveries: vec![1],
        };
        let b = one.webhook_body();
        assert_eq!(b["status"], "firing");
        assert_eq!(b["alert"], "auth");
        assert_eq!(b["started_at"], "2023-11-14T22:13:20Z");
        assert_eq!(b["resolved_at"], Value::Null);
        assert_eq!(b["labels"]["model"], "news");
        assert!(b.get("alert_id").is_none());
        assert_eq!(one.title(), "[taxon] FIRING critical: auth — news abc123");
        let group = Message {
            notices: vec![
                notice(Status::Firing, "auth"),
                notice(Status::Resolved, "drift"),
            ],
            deliveries: vec![1, 2],
        };
        let b = group.webhook_body();
        assert_eq!(
            (b["status"].as_str(), b["count"].as_u64()),
            (Some("firing"), Some(2))
        );
        assert_eq!(b["notices"][1]["status"], "resolved");
        assert_eq!(group.title(), "[taxon] 2 alerts: 1 firing, 1 resolved");
    }

    #[test]
    fn slack_payload_has_text_and_blocks() {
        let mut n = notice(Status::Firing, "a<b>");
        n.summary = "x & y".into();
        let m = Message {
            notices: vec![n],
            deliveries: vec![1],
        };
        let b = m.slack_body();
        assert!(b["text"].as_str().unwrap().starts_with("[taxon] FIRING"));
        assert_eq!(b["blocks"][0]["type"], "header");
        let section = b["blocks"][1]["text"]["text"].as_str().unwrap();
        assert_eq!(b["blocks"][1]["text"]["type"], "mrkdwn");
        assert!(
            section.contains("a&lt;b&gt;") && section.contains("x &amp; y"),
            "{section}"
        );
    }
}
