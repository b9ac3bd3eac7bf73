//! `alerts.yaml`: channels (Slack, webhook, e-mail), rules (a condition on the server's
//! signals, a threshold, how long it must hold, a severity, the channels to notify) and
//! settings. Unknown fields are refused; every error names the file, the field and the bad
//! value. Secrets (`url_env`, `password_env`) are read from the environment at load, so a
//! missing variable stops the server at start, not at the first alert.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// The alert history's default path.
pub const DEFAULT_DB: &str = ".taxon/alerts.db";

/// A URL or password read from the config or the environment; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How the e-mail channel secures its SMTP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    /// Plain SMTP (a local relay).
    None,
    /// Plain connection upgraded with STARTTLS (required), port 587 by default.
    Starttls,
    /// TLS from the first byte (SMTPS), port 465 by default.
    Tls,
}

/// An e-mail channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailChannel {
    pub smtp_host: String,
    pub smtp_port: u16,
    pub tls: Tls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
}

/// Where notices go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Channel {
    /// A Slack incoming webhook.
    Slack {
        url: Secret,
    },
    /// Any HTTP endpoint taking taxon's JSON body (see [`crate::notice`]).
    Webhook {
        url: Secret,
    },
    Email(EmailChannel),
}

impl Channel {
    /// The channel's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Slack { .. } => "slack",
            Channel::Webhook { .. } => "webhook",
            Channel::Email(_) => "email",
        }
    }
}

/// What a rule watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// More than `threshold` (default 0) features of the online drift window drift past their
    /// thresholds (`taxon_drift_detected` of the served model).
    Drift,
    /// Live accuracy from feedback (`model_accuracy`) below `threshold`.
    AccuracyBelow,
    /// The 99th percentile of the model's compute time per prediction over the evaluation
    /// interval above `threshold` seconds.
    LatencyP99Above,
    /// Share of prediction requests answered 5xx (model errors included) over the interval.
    ErrorRatioAbove,
    /// Share of prediction requests shed with 503 (queue full) over the interval.
    ShedRatioAbove,
    /// Authentication failures per minute (`taxon_auth_failures_total`).
    AuthFailuresAbove,
    /// Logins refused by a rate limit per minute (`taxon_login_limited_total`).
    LoginLimitedAbove,
}

impl Condition {
    pub const ALL: [Condition; 7] = [
        Condition::Drift,
        Condition::AccuracyBelow,
        Condition::LatencyP99Above,
        Condition::ErrorRatioAbove,
        Condition::ShedRatioAbove,
        Condition::AuthFailuresAbove,
        Condition::LoginLimitedAbove,
    ];

    /// The name used in `alerts.yaml`.
    pub fn name(self) -> &'static str {
        match self {
            Condition::Drift => "drift",
            Condition::AccuracyBelow => "accuracy_below",
            Condition::LatencyP99Above => "latency_p99_above",
            Condition::ErrorRatioAbove => "error_ratio_above",
            Condition::ShedRatioAbove => "shed_ratio_above",
            Condition::AuthFailuresAbove => "auth_failures_above",
            Condition::LoginLimitedAbove => "login_limited_above",
        }
    }

    /// Whether `value` crosses `threshold` (below for accuracy, above for the others).
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Condition::AccuracyBelow => value < threshold,
            _ => value > threshold,
        }
    }

    /// Whether the threshold is a share in [0, 1].
    fn is_ratio(self) -> bool {
        matches!(
            self,
            Condition::AccuracyBelow | Condition::ErrorRatioAbove | Condition::ShedRatioAbove
        )
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How urgent a rule is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub name: String,
    pub condition: Condition,
    pub threshold: f64,
    /// How long the condition must hold before the alert fires.
    pub for_: Duration,
    pub severity: Severity,
    pub channels: Vec<String>,
    pub summary: Option<String>,
}

/// Engine and outbox settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// How often rules are evaluated (default 10 s).
    pub evaluate_every: Duration,
    /// A firing alert is notified again after this long (default 4 h).
    pub repeat_interval: Duration,
    /// A channel waits this long after a notice for more to send them as one message
    /// (default 0: only notices due at the same evaluation are grouped).
    pub group_wait: Duration,
    /// Messages waiting per channel; beyond this new ones are dropped and counted (1000).
    pub outbox_capacity: usize,
    /// The first retry's delay (default 1 s); each next one doubles, up to `retry`.
    pub retry_initial: Duration,
    /// The longest delay between two tries of a message (default 5 min).
    pub retry: Duration,
    /// The alert history (SQLite), default `.taxon/alerts.db`.
    pub db: PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            evaluate_every: Duration::from_secs(10),
            repeat_interval: Duration::from_secs(4 * 3600),
            group_wait: Duration::ZERO,
            outbox_capacity: 1000,
            retry_initial: Duration::from_secs(1),
            retry: Duration::from_secs(300),
            db: PathBuf::from(DEFAULT_DB),
        }
    }
}

/// A loaded, validated `alerts.yaml`.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertsConfig {
    /// The file it came from (for messages).
    pub path: PathBuf,
    pub channels: BTreeMap<String, Channel>,
    pub rules: Vec<Rule>,
    pub settings: Settings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    channels: BTreeMap<String, RawChannel>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    settings: RawSettings,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum RawChannel {
    Slack {
        url: Option<String>,
        url_env: Option<String>,
    },
    Webhook {
        url: Option<String>,
        url_env: Option<String>,
    },
    Email {
        smtp_host: String,
        smtp_port: Option<u16>,
        #[serde(default = "default_tls")]
        tls: Tls,
        username: Option<String>,
        password_env: Option<String>,
        from: String,
        to: Vec<String>,
    },
}

fn default_tls() -> Tls {
    Tls::Starttls
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    condition: Condition,
    threshold: Option<f64>,
    #[serde(rename = "for")]
    for_: Option<String>,
    severity: Severity,
    channels: Vec<String>,
    summary: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    evaluate_every: Option<String>,
    repeat_interval: Option<String>,
    group_wait: Option<String>,
    outbox_capacity: Option<usize>,
    retry_initial: Option<String>,
    retry: Option<String>,
    db: Option<PathBuf>,
}

/// Parses a duration like `500ms`, `30s`, `5m`, `4h`, `1d` (a number and a unit).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| {
        format!("`{s}` is not a duration: write a number and a unit, like 30s or 5m")
    })?;
    let seconds = match unit.trim() {
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        "" => {
            return Err(format!(
                "`{s}` has no unit: write ms, s, m, h or d (e.g. {number}s)"
            ));
        }
        other => {
            return Err(format!(
                "`{s}`: unknown unit `{other}`; use ms, s, m, h or d"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{s}` is out of range"))
}

impl AlertsConfig {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path, |name| std::env::var(name).ok())
    }

    /// Validates `text` (the content of `path`), reading `*_env` secrets with `env`.
    pub fn parse(
        text: &str,
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let raw: RawConfig = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let invalid = |field: String, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            message,
        };
        let mut channels = BTreeMap::new();
        for (name, raw) in raw.channels {
            let at = format!("channels.{name}");
            let url = |url: Option<String>,
                       url_env: Option<String>|
             -> Result<Secret, ConfigError> {
                let url = match (url, url_env) {
                    (Some(u), None) => u,
                    (None, Some(var)) => env(&var).filter(|v| !v.is_empty()).ok_or_else(|| {
                        invalid(
                            format!("{at}.url_env"),
                            format!("environment variable `{var}` is not set (or empty)"),
                        )
                    })?,
                    (Some(_), Some(_)) => {
                        return Err(invalid(
                            at.clone(),
                            "give either `url` or `url_env`, not both".into(),
                        ));
                    }
                    (None, None) => {
                        return Err(invalid(
                            at.clone(),
                            "needs `url` or `url_env` (the name of a variable holding the URL)"
                                .into(),
                        ));
                    }
                };
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    // The URL itself may be a secret: show only its start.
                    let head: String = url.chars().take(12).collect();
                    return Err(invalid(
                        format!("{at}.url"),
                        format!("`{head}...` is not an http:// or https:// URL"),
                    ));
                }
                Ok(Secret::new(url))
            };
            let channel = match raw {
                RawChannel::Slack { url: u, url_env } => Channel::Slack {
                    url: url(u, url_env)?,
                },
                RawChannel::Webhook { url: u, url_env } => Channel::Webhook {
                    url: url(u, url_env)?,
                },
                RawChannel::Email {
                    smtp_host,
                    smtp_port,
                    tls,
                    username,
                    password_env,
                    from,
                    to,
                } => {
                    if smtp_host.trim().is_empty() {
                        return Err(invalid(format!("{at}.smtp_host"), "is empty".into()));
                    }
                    if smtp_port == Some(0) {
                        return Err(invalid(
                            format!("{at}.smtp_port"),
                            "`0` is not a port".into(),
                        ));
                    }
                    let password = match (&username, password_env) {
                        (_, Some(var)) => Some(Secret::new(env(&var).ok_or_else(|| {
                            invalid(
                                format!("{at}.password_env"),
                                format!("environment variable `{var}` is not set"),
                            )
                        })?)),
                        (Some(_), None) => {
                            return Err(invalid(
                                format!("{at}.password_env"),
                                "`username` is set: name the variable holding its password".into(),
                            ));
                        }
                        (None, None) => None,
                    };
                    if password.is_some() && username.is_none() {
                        return Err(invalid(
                            format!("{at}.username"),
                            "`password_env` is set without a `username`".into(),
                        ));
                    }
                    check_address(&from).map_err(|m| invalid(format!("{at}.from"), m))?;
                    if to.is_empty() {
                        return Err(invalid(format!("{at}.to"), "lists no recipient".into()));
                    }
                    for (i, a) in to.iter().enumerate() {
                        check_address(a).map_err(|m| invalid(format!("{at}.to[{i}]"), m))?;
                    }
                    Channel::Email(EmailChannel {
                        smtp_host,
                        smtp_port: smtp_port.unwrap_or(match tls {
                            Tls::None => 25,
                            Tls::Starttls => 587,
                            Tls::Tls => 465,
                        }),
                        tls,
                        username,
                        password,
                        from,
                        to,
                    })
                }
            };
            channels.insert(name, channel);
        }

        let mut rules = Vec::with_capacity(raw.rules.len());
        let mut names = BTreeSet::new();
        for (i, r) in raw.rules.into_iter().enumerate() {
            let at = format!("rules[{i}]");
            if r.name.trim().is_empty() {
                return Err(invalid(format!("{at}.name"), "is empty".into()));
            }
            if !names.insert(r.name.clone()) {
                return Err(invalid(
                    format!("{at}.name"),
                    format!(
                        "`{}` names another rule too; rule names must be unique",
                        r.name
                    ),
                ));
            }
            let threshold = match (r.condition, r.threshold) {
                (Condition::Drift, t) => t.unwrap_or(0.0),
                (c, None) => {
                    return Err(invalid(
                        format!("{at}.threshold"),
                        format!("condition `{c}` needs a threshold"),
                    ));
                }
                (_, Some(t)) => t,
            };
            if !threshold.is_finite() || threshold < 0.0 {
                return Err(invalid(
                    format!("{at}.threshold"),
                    format!("`{threshold}` must be a number of 0 or more"),
                ));
            }
            if r.condition.is_ratio() && threshold > 1.0 {
                return Err(invalid(
                    format!("{at}.threshold"),
                    format!(
                        "`{threshold}`: condition `{}` compares a share, write it between 0 and 1",
                        r.condition
                    ),
                ));
            }
            let for_ = match &r.for_ {
                None => Duration::ZERO,
                Some(s) => parse_duration(s).map_err(|m| invalid(format!("{at}.for"), m))?,
            };
            if r.channels.is_empty() {
                return Err(invalid(
                    format!("{at}.channels"),
                    "lists no channel to notify".into(),
                ));
            }
            for (j, c) in r.channels.iter().enumerate() {
                if !channels.contains_key(c) {
                    let known: Vec<&str> = channels.keys().map(String::as_str).collect();
                    return Err(invalid(
                        format!("{at}.channels[{j}]"),
                        format!(
                            "`{c}` is not a channel of `channels:` (known: {})",
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                }
            }
            rules.push(Rule {
                name: r.name,
                condition: r.condition,
                threshold,
                for_,
                severity: r.severity,
                channels: r.channels,
                summary: r.summary,
            });
        }

        let defaults = Settings::default();
        let s = raw.settings;
        let duration = |v: Option<String>, field: &str, default: Duration| match v {
            None => Ok(default),
            Some(v) => parse_duration(&v).map_err(|m| invalid(format!("settings.{field}"), m)),
        };
        let settings = Settings {
            evaluate_every: duration(s.evaluate_every, "evaluate_every", defaults.evaluate_every)?,
            repeat_interval: duration(
                s.repeat_interval,
                "repeat_interval",
                defaults.repeat_interval,
            )?,
            group_wait: duration(s.group_wait, "group_wait", defaults.group_wait)?,
            outbox_capacity: s.outbox_capacity.unwrap_or(defaults.outbox_capacity),
            retry_initial: duration(s.retry_initial, "retry_initial", defaults.retry_initial)?,
            retry: duration(s.retry, "retry", defaults.retry)?,
            db: s.db.unwrap_or(defaults.db),
        };
        if settings.evaluate_every.is_zero() {
            return Err(invalid(
                "settings.evaluate_every".into(),
                "`0s`: rules need a positive evaluation interval".into(),
            ));
        }
        if settings.outbox_capacity == 0 {
            return Err(invalid(
                "settings.outbox_capacity".into(),
                "`0`: each channel needs room for at least one message".into(),
            ));
        }
        if settings.retry_initial.is_zero() || settings.retry < settings.retry_initial {
            return Err(invalid(
                "settings.retry".into(),
                format!(
                    "the longest retry delay ({:?}) must be positive and at least retry_initial ({:?})",
                    settings.retry, settings.retry_initial
                ),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            channels,
            rules,
            settings,
        })
    }
}

/// Checks an e-mail address (`name@host` or `Name <name@host>`).
fn check_address(a: &str) -> Result<(), String> {
    a.parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| format!("`{a}` is not an e-mail address: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
channels:
  ops-slack:
    type: slack
    url_env: SLACK_URL
  pager:
    type: webhook
    url: http://127.0.0.1:9/hook
  mail:
    type: email
    smtp_host: smtp.example.org
    tls: tls
    username: taxon
    password_env: SMTP_PASSWORD
    from: "taxon <taxon@example.org>"
    to: [ops@example.org]
rules:
  - name: drift
    condition: drift
    for: 5m
    severity: warning
    channels: [ops-slack]
  - name: accuracy
    condition: accuracy_below
    threshold: 0.8
    severity: critical
    channels: [pager, mail]
    summary: live accuracy dropped
settings:
  evaluate_every: 500ms
  db: /tmp/alerts.db
"#;

    fn env(name: &str) -> Option<String> {
        match name {
            "SLACK_URL" => Some("https://hooks.example.org/T/B/x".into()),
            "SMTP_PASSWORD" => Some("pw".into()),
            _ => None,
        }
    }

    fn err(text: &str) -> String {
        AlertsConfig::parse(text, Path::new("alerts.yaml"), env)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_full_config_loads_with_defaults() {
        let c = AlertsConfig::parse(FULL, Path::new("alerts.yaml"), env).unwrap();
        assert_eq!(c.channels.len(), 3);
        assert_eq!(
            c.channels["ops-slack"],
            Channel::Slack {
                url: Secret::new("https://hooks.example.org/T/B/x")
            }
        );
        let Channel::Email(mail) = &c.channels["mail"] else {
            panic!("not email");
        };
        assert_eq!((mail.smtp_port, mail.tls), (465, Tls::Tls));
        assert_eq!(mail.password.as_ref().unwrap().expose(), "pw");
        assert_eq!(c.rules[0].for_, Duration::from_secs(300));
        assert_eq!(c.rules[0].threshold, 0.0);
        assert_eq!(c.rules[1].threshold, 0.8);
        assert_eq!(c.settings.evaluate_every, Duration::from_millis(500));
        assert_eq!(c.settings.repeat_interval, Duration::from_secs(4 * 3600));
        assert_eq!(c.settings.db, PathBuf::from("/tmp/alerts.db"));
        assert!(!format!("{c:?}").contains("hooks.example.org"));
    }

    #[test]
    fn errors_name_the_file_the_field_and_the_value() {
        let e = err(
            "rules:\n  - name: a\n    condition: drift\n    severity: loud\n    channels: []\n",
        );
        assert!(e.contains("alerts.yaml") && e.contains("loud"), "{e}");
        let e = err("channels: {}\nsurprise: 1\n");
        assert!(e.contains("surprise"), "{e}");
        let e = err("channels:\n  a:\n    type: webhook\n    url: http://x\n    colour: red\n");
        assert!(e.contains("colour"), "{e}");
        let e = err("channels:\n  a:\n    type: pigeon\n");
        assert!(e.contains("pigeon"), "{e}");
        let e = err(&FULL.replace("for: 5m", "for: 5 minutes"));
        assert!(e.contains("rules[0].for") && e.contains("5 minutes"), "{e}");
        let e = err(&FULL.replace("[pager, mail]", "[pager, sms]"));
        assert!(
            e.contains("rules[1].channels[1]") && e.contains("`sms`"),
            "{e}"
        );
        let e = err(&FULL.replace("threshold: 0.8", "threshold: 80"));
        assert!(e.contains("rules[1].threshold") && e.contains("80"), "{e}");
        let e = err(&FULL.replace("SLACK_URL", "NOT_SET_ANYWHERE"));
        assert!(
            e.contains("channels.ops-slack.url_env") && e.contains("NOT_SET_ANYWHERE"),
            "{e}"
        );
        let e = err(&FULL.replace("ops@example.org", "not-an-address"));
        assert!(
            e.contains("channels.mail.to[0]") && e.contains("not-an-address"),
            "{e}"
        );
        let e = err(&FULL.replace("    threshold: 0.8\n", ""));
        assert!(
            e.contains("rules[1].threshold") && e.contains("accuracy_below"),
            "{e}"
        );
        let e = err(&FULL.replace("name: accuracy", "name: drift"));
        assert!(e.contains("unique"), "{e}");
        let e = err(&FULL.replace("evaluate_every: 500ms", "evaluate_every: 0s"));
        assert!(e.contains("settings.evaluate_every"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("3w").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn conditions_compare_in_their_direction() {
        assert!(Condition::AccuracyBelow.holds(0.7, 0.8));
        assert!(!Condition::AccuracyBelow.holds(0.9, 0.8));
        assert!(Condition::ErrorRatioAbove.holds(0.2, 0.1));
        assert!(!Condition::ErrorRatioAbove.holds(0.1, 0.1));
    }
}
