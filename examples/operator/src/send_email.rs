//! `send_email`: writes one RFC 5322 message into a Maildir outbox, at
//! most once per nonce.

use std::path::PathBuf;

use openexec::action::{Action, ActionError, Context, Effects};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::email::{check_address, check_body, check_subject, Maildir, Message};
use crate::stall::{self, Phase};

/// The action; `from` and the outbox come from the operator's
/// configuration, never from the request.
pub struct SendEmail {
    from: String,
    outbox: std::sync::Arc<Maildir>,
}

impl SendEmail {
    /// Sends from `from` (checked as an address) into the Maildir at `outbox`.
    pub fn new(from: String, outbox: PathBuf) -> Result<Self, String> {
        check_address(&from).map_err(|e| format!("sender: {e}"))?;
        Ok(Self {
            from,
            outbox: std::sync::Arc::new(Maildir::new(outbox)),
        })
    }
}

/// `send_email`'s payload.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Email {
    /// The recipient: one bare address, `local@domain`.
    pub to: String,
    /// The subject: at most 200 characters, no control characters.
    pub subject: String,
    /// The plain-text body: at most 32 KiB, lines of at most 998 bytes.
    pub body: String,
}

/// `send_email`'s result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Sent {
    /// The message's `Message-ID`, without angle brackets:
    /// `<idempotency key>@<sender's domain>`.
    pub message_id: String,
    /// The message's file name in the outbox's `new/`.
    pub file: String,
}

impl Action for SendEmail {
    const NAME: &'static str = "send_email";
    const EFFECTS: Effects = Effects::AtMostOnce;
    const TITLE: &'static str = "Send an e-mail";
    const DESCRIPTION: &'static str = "Writes one plain-text RFC 5322 message into the operator's Maildir outbox; at most once per nonce.";
    type Payload = Email;
    type Output = Sent;

    fn check(&self, email: &Email) -> Result<(), String> {
        check_address(&email.to)?;
        check_subject(&email.subject)?;
        check_body(&email.body)
    }

    async fn run(&self, ctx: Context, email: Email) -> Result<Sent, ActionError> {
        stall::point(Self::NAME, Phase::Before).await;
        let domain = self.from.rsplit_once('@').map_or("", |(_, d)| d);
        let message_id = format!("{}@{domain}", ctx.idempotency_key());
        let bytes = Message {
            from: &self.from,
            to: &email.to,
            subject: &email.subject,
            body: &email.body,
            message_id: &message_id,
            date: &chrono::Utc::now().to_rfc2822(),
        }
        .render();
        let outbox = std::sync::Arc::clone(&self.outbox);
        let path = ctx
            .blocking(move || outbox.deliver(&bytes))
            .await?
            .map_err(|e| ActionError::new(format!("outbox: {e}")))?;
        stall::point(Self::NAME, Phase::After).await;
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Sent { message_id, file })
    }
}
