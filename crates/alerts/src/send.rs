//! Sending one [`Message`] to one channel: Slack and webhooks as an HTTP POST of JSON
//! (reqwest over rustls; any 2xx is accepted), e-mail over SMTP (lettre's tokio transport:
//! plain, STARTTLS or TLS). Each send is bounded by a timeout; retrying is the outbox's job.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::{Channel, EmailChannel, Tls};
use crate::notice::{Message, Notice, Status};

/// How long one send may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// Sends messages; holds the HTTP client (connection pool) shared by every channel.
#[derive(Clone, Debug)]
pub struct Sender {
    http: reqwest::Client,
}

impl Sender {
    pub fn new() -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .user_agent(concat!("taxon-alerts/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { http })
    }

    /// Sends `message` to `channel`; the error says why it was not accepted.
    pub async fn send(&self, channel: &Channel, message: &Message) -> Result<(), String> {
        match channel {
            Channel::Slack { url } => self.post(url.expose(), &message.slack_body()).await,
            Channel::Webhook { url } => self.post(url.expose(), &message.webhook_body()).await,
            Channel::Email(email) => send_email(email, message).await,
        }
    }

    async fn post(&self, url: &str, body: &serde_json::Value) -> Result<(), String> {
        let response = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| describe_reqwest(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let text: String = text.chars().take(200).collect();
        Err(format!("answered {status}: {}", text.trim()))
    }
}

/// A reqwest error without the URL (a Slack or webhook URL carries its secret).
fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

async fn send_email(channel: &EmailChannel, message: &Message) -> Result<(), String> {
    let from: Mailbox = channel
        .from
        .parse()
        .map_err(|e| format!("bad from address `{}`: {e}", channel.from))?;
    let mut builder = lettre::Message::builder()
        .from(from)
        .subject(message.title())
        .header(ContentType::TEXT_PLAIN);
    for to in &channel.to {
        builder = builder.to(to
            .parse::<Mailbox>()
            .map_err(|e| format!("bad recipient `{to}`: {e}"))?);
    }
    let email = builder
        .body(message.email_body())
        .map_err(|e| format!("cannot build the e-mail: {e}"))?;
    let host = channel.smtp_host.as_str();
    let builder = match channel.tls {
        Tls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        Tls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
            .map_err(|e| format!("STARTTLS to {host}: {e}"))?,
        Tls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
            .map_err(|e| format!("TLS to {host}: {e}"))?,
    };
    let mut builder = builder.port(channel.smtp_port).timeout(Some(SEND_TIMEOUT));
    if let (Some(user), Some(password)) = (&channel.username, &channel.password) {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    let transport = builder.build();
    transport
        .send(email)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP {host}:{}: {e}", channel.smtp_port))
}

/// The message `taxon alerts test` sends to a channel.
pub fn test_notice(channel: &str) -> Message {
    let now = Utc::now();
    Message {
        notices: vec![Notice {
            status: Status::Firing,
            alert: "taxon-alerts-test".into(),
            severity: "info".into(),
            summary: format!("Test notice for channel `{channel}` from `taxon alerts test`"),
            description: "If you read this, the channel delivers taxon's alerts. Nothing is wrong."
                .into(),
            value: 0.0,
            threshold: 0.0,
            model_version: "test".into(),
            started_at: now,
            resolved_at: None,
            labels: BTreeMap::from([("test".to_string(), "true".to_string())]),
            alert_id: 0,
        }],
        deliveries: Vec::new(),
    }
}
