//! taxon-alerts end to end inside one process: the engine's rules over made-up signals, the
//! outbox delivering to real HTTP sinks on 127.0.0.1 (one of which refuses at first), Slack
//! and webhook bodies as received, and e-mail through a real SMTP server (aiosmtpd).

mod channels;
mod common;
mod engine;
mod readme;
