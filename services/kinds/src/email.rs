//! `email`: mail sent over SMTP with lettre, through one connection pool shared by the kind's
//! in-flight jobs. A job gives its parts (subject, text, html) or names a template rendered with
//! its `vars` (minijinja, strict: a variable the template uses and the job does not set is an
//! error, never an empty string in someone's inbox).
//!
//! The `Message-ID` is built from the job id, so a redelivery after a crash sends the same id and
//! receivers can de-duplicate. SMTP 5xx replies (550 mailbox unavailable) are `fatal` with the
//! server's reply as the error; 4xx replies, timeouts and connection errors are retryable.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration};

use apache_avro::types::Value;
use async_trait::async_trait;
use lettre::{
    message::{header::ContentType, Mailbox, MultiPart, SinglePart},
    transport::smtp::PoolConfig,
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use serde::Deserialize;
use sluice_core::json::FieldError;

use crate::{
    handler::{ErrorClass, Handler, Job, JobFailure, Outcome},
    kind::{parse_settings, HandlerType, KindError, Settings},
};

/// Recipients one email may have at most.
const MAX_RECIPIENTS: usize = 100;
/// Bytes a subject may have at most (RFC 5322's line limit).
const MAX_SUBJECT: usize = 998;
/// Bytes each body part may have at most.
const MAX_BODY: usize = 1024 * 1024;

/// `[kinds.email]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailSettings {
    /// The SMTP server: `smtp://host:port` (plain; add `?tls=required` to upgrade with STARTTLS),
    /// `smtps://host:port` (implicit TLS), with `user:password@` for AUTH. Default
    /// `smtp://127.0.0.1:1025`, the development Mailpit. Set it through
    /// `SLUICE__KINDS__EMAIL__SMTP_URL` when it holds a password.
    #[serde(default = "default_smtp_url")]
    smtp_url: String,
    /// The `From` of every email. Default `sluice <sluice@localhost>`.
    #[serde(default = "default_from")]
    from: String,
    /// Directory of templates: `<name>.txt`, `<name>.html`, `<name>.subject`. Read once at
    /// start (a syntax error fails the start, naming the file). Default: none.
    #[serde(default)]
    templates: Option<PathBuf>,
    /// Limit on each SMTP command (connect, each reply). Default 30 s.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    request_timeout: Duration,
    /// Open SMTP connections at most, shared by the kind's in-flight jobs. Default 10.
    #[serde(default = "default_max_connections")]
    max_connections: u32,
}

fn default_smtp_url() -> String {
    "smtp://127.0.0.1:1025".into()
}

fn default_from() -> String {
    "sluice <sluice@localhost>".into()
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_max_connections() -> u32 {
    10
}

/// The record, as the schema `schemas/email` defines it.
#[derive(Debug, Deserialize)]
struct EmailJob {
    to: Vec<String>,
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
    reply_to: Option<String>,
    template: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, String>,
}

pub struct Email;

impl HandlerType for Email {
    fn name(&self) -> &'static str {
        "email"
    }

    fn built_in(&self) -> bool {
        true
    }

    fn validate(&self, record: &Value) -> Result<(), FieldError> {
        let job: EmailJob = apache_avro::from_value(record)
            .map_err(|e| FieldError::new("", format!("not an email record: {e}")))?;
        validate(&job)
    }

    fn field_hints(&self) -> serde_json::Value {
        serde_json::json!({
            "to": {"minItems": 1, "maxItems": MAX_RECIPIENTS, "items": {"minLength": 3}},
            "subject": {"maxLength": MAX_SUBJECT},
            "template": {"pattern": "^[A-Za-z0-9_][A-Za-z0-9_-]*$"},
        })
    }

    fn check(&self, kind: &str, settings: &Settings) -> Result<(), KindError> {
        let settings: EmailSettings = parse_settings(kind, settings)?;
        from_mailbox(kind, &settings.from)?;
        transport_builder(kind, &settings)?;
        if let Some(dir) = &settings.templates {
            templates(kind, dir)?;
        }
        Ok(())
    }

    fn build(
        &self,
        kind: &str,
        settings: &Settings,
        _: &sluice_core::Config,
    ) -> Result<Arc<dyn Handler>, KindError> {
        let settings: EmailSettings = parse_settings(kind, settings)?;
        let from = from_mailbox(kind, &settings.from)?;
        let domain = from.email.domain().to_owned();
        let templates = match &settings.templates {
            Some(dir) => Some(templates(kind, dir)?),
            None => None,
        };
        Ok(Arc::new(EmailHandler {
            transport: transport_builder(kind, &settings)?.build(),
            from,
            domain,
            templates,
        }))
    }
}

fn from_mailbox(kind: &str, from: &str) -> Result<Mailbox, KindError> {
    from.parse()
        .map_err(|e| KindError::key(kind, "from", format!("not an email address: {e}")))
}

/// The transport's settings; `build()` starts its pool, which needs the tokio runtime.
fn transport_builder(
    kind: &str,
    settings: &EmailSettings,
) -> Result<lettre::transport::smtp::AsyncSmtpTransportBuilder, KindError> {
    // The URL may hold a password: the error names the key, never the value.
    let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.smtp_url).map_err(
        |_| {
            KindError::key(
                kind,
                "smtp_url",
                "must be smtp://host:port or smtps://host:port (optionally user:password@, ?tls=required)",
            )
        },
    )?;
    Ok(builder
        .timeout(Some(settings.request_timeout))
        .pool_config(PoolConfig::new().max_size(settings.max_connections.max(1))))
}

/// The templates of `dir`, each file under its file name (`welcome.txt`). Strict: an undefined
/// variable is an error.
fn templates(
    kind: &str,
    dir: &std::path::Path,
) -> Result<minijinja::Environment<'static>, KindError> {
    let problem = |p: String| KindError::key(kind, "templates", p);
    let entries = std::fs::read_dir(dir)
        .map_err(|e| problem(format!("cannot read {}: {e}", dir.display())))?;
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for entry in entries {
        let path = entry
            .map_err(|e| problem(format!("cannot read {}: {e}", dir.display())))?
            .path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let part = name.rsplit_once('.').map(|(_, ext)| ext);
        if !matches!(part, Some("txt" | "html" | "subject")) || !path.is_file() {
            continue;
        }
        let source = std::fs::read_to_string(&path)
            .map_err(|e| problem(format!("cannot read {}: {e}", path.display())))?;
        env.add_template_owned(name.to_owned(), source)
            .map_err(|e| problem(format!("{}: {e}", path.display())))?;
    }
    Ok(env)
}

fn validate(job: &EmailJob) -> Result<(), FieldError> {
    if job.to.is_empty() {
        return Err(FieldError::new("to", "must name at least one recipient"));
    }
    if job.to.len() > MAX_RECIPIENTS {
        return Err(FieldError::new(
            "to",
            format!("at most {MAX_RECIPIENTS} recipients"),
        ));
    }
    for (i, to) in job.to.iter().enumerate() {
        to.parse::<Mailbox>().map_err(|e| {
            FieldError::new(format!("to[{i}]"), format!("not an email address: {e}"))
        })?;
    }
    if let Some(reply_to) = &job.reply_to {
        reply_to
            .parse::<Mailbox>()
            .map_err(|e| FieldError::new("reply_to", format!("not an email address: {e}")))?;
    }
    if let Some(subject) = &job.subject {
        if subject.len() > MAX_SUBJECT || subject.contains(['\r', '\n']) {
            return Err(FieldError::new(
                "subject",
                format!("one line of at most {MAX_SUBJECT} bytes"),
            ));
        }
    }
    for (field, body) in [("text", &job.text), ("html", &job.html)] {
        if body.as_ref().is_some_and(|b| b.len() > MAX_BODY) {
            return Err(FieldError::new(field, format!("at most {MAX_BODY} bytes")));
        }
    }
    match &job.template {
        Some(name) => {
            let shape_ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                && !name.starts_with('-');
            if !shape_ok {
                return Err(FieldError::new(
                    "template",
                    "letters, digits, `_` and `-` only (a file name without its extension)",
                ));
            }
        }
        None => {
            if job.subject.is_none() {
                return Err(FieldError::new("subject", "is required without a template"));
            }
            if job.text.is_none() && job.html.is_none() {
                return Err(FieldError::new(
                    "text",
                    "a text or html body is required without a template",
                ));
            }
        }
    }
    Ok(())
}

struct EmailHandler {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Of the `From` address: the right-hand side of every `Message-ID`.
    domain: String,
    templates: Option<minijinja::Environment<'static>>,
}

/// The parts of one email, after templates.
struct Parts {
    subject: String,
    text: Option<String>,
    html: Option<String>,
}

fn fatal(message: impl Into<String>) -> JobFailure {
    JobFailure::new(ErrorClass::Fatal, message)
}

impl EmailHandler {
    fn parts(&self, job: &EmailJob) -> Result<Parts, JobFailure> {
        let Some(name) = &job.template else {
            return Ok(Parts {
                subject: job.subject.clone().unwrap_or_default(),
                text: job.text.clone(),
                html: job.html.clone(),
            });
        };
        let env = self.templates.as_ref().ok_or_else(|| {
            fatal(format!(
                "template `{name}` asked for, but [kinds.email] templates is not set"
            ))
        })?;
        let render = |part: &str| -> Result<Option<String>, JobFailure> {
            let file = format!("{name}.{part}");
            match env.get_template(&file) {
                Ok(template) => template
                    .render(&job.vars)
                    .map(Some)
                    .map_err(|e| fatal(format!("template {file}: {e}"))),
                Err(e) if e.kind() == minijinja::ErrorKind::TemplateNotFound => Ok(None),
                Err(e) => Err(fatal(format!("template {file}: {e}"))),
            }
        };
        let (text, html) = (render("txt")?, render("html")?);
        if text.is_none() && html.is_none() {
            return Err(fatal(format!(
                "template `{name}` not found (no {name}.txt or {name}.html)"
            )));
        }
        let subject = match render("subject")? {
            Some(subject) => subject.trim().to_owned(),
            None => job.subject.clone().ok_or_else(|| {
                fatal(format!(
                    "no subject: the job has none and there is no {name}.subject"
                ))
            })?,
        };
        if subject.contains(['\r', '\n']) {
            return Err(fatal(format!(
                "template {name}.subject renders more than one line"
            )));
        }
        Ok(Parts {
            subject,
            text,
            html,
        })
    }

    /// `<job-id@domain>`: the same for every delivery of the job.
    fn message_id(&self, job_id: &str) -> String {
        let local: String = job_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '.'
                }
            })
            .collect();
        format!("<{}@{}>", local.trim_matches('.'), self.domain)
    }

    fn message(&self, job: &Job, email: &EmailJob, parts: Parts) -> Result<Message, JobFailure> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .message_id(Some(self.message_id(&job.id)))
            .subject(parts.subject);
        for to in &email.to {
            builder = builder.to(to
                .parse()
                .map_err(|e| fatal(format!("to: {to:?} is not an email address: {e}")))?);
        }
        if let Some(reply_to) = &email.reply_to {
            builder = builder.reply_to(
                reply_to
                    .parse()
                    .map_err(|e| fatal(format!("reply_to: not an email address: {e}")))?,
            );
        }
        let built = match (parts.text, parts.html) {
            (Some(text), Some(html)) => {
                builder.multipart(MultiPart::alternative_plain_html(text, html))
            }
            (Some(text), None) => builder.singlepart(SinglePart::plain(text)),
            (None, Some(html)) => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(html),
            ),
            (None, None) => return Err(fatal("no body: neither text nor html")),
        };
        built.map_err(|e| fatal(format!("cannot build the message: {e}")))
    }
}

#[async_trait]
impl Handler for EmailHandler {
    async fn handle(&self, job: &Job) -> Result<Outcome, JobFailure> {
        let email: EmailJob = apache_avro::from_value(&job.record).map_err(|e| {
            JobFailure::new(ErrorClass::Decode, format!("not an email record: {e}"))
        })?;
        // `validate` already ran: the worker checks every record with the kind's rules first.
        let parts = self.parts(&email)?;
        let message = self.message(job, &email, parts)?;
        let message_id = self.message_id(&job.id);
        match self.transport.send(message).await {
            Ok(response) => Ok(Outcome::with_result(serde_json::json!({
                "message_id": message_id,
                "recipients": email.to.len(),
                "reply": response.message().collect::<Vec<_>>().join(" "),
            }))),
            // 5xx: the server refused for good (550 mailbox unavailable); its reply says why.
            Err(e) if e.is_permanent() => Err(fatal(format!("SMTP {e}"))),
            Err(e) => Err(JobFailure::new(ErrorClass::Retryable, format!("SMTP {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(to: &[&str]) -> EmailJob {
        EmailJob {
            to: to.iter().map(|s| (*s).to_owned()).collect(),
            subject: Some("Hi".into()),
            text: Some("Hello".into()),
            html: None,
            reply_to: None,
            template: None,
            vars: BTreeMap::new(),
        }
    }

    #[test]
    fn bad_input_names_the_field() {
        assert_eq!(validate(&job(&[])).unwrap_err().field, "to");
        assert_eq!(
            validate(&job(&["ada@example.com", "not an address"]))
                .unwrap_err()
                .field,
            "to[1]"
        );
        let mut two_lines = job(&["ada@example.com"]);
        two_lines.subject = Some("a\r\nBcc: someone@example.com".into());
        assert_eq!(validate(&two_lines).unwrap_err().field, "subject");
        let mut escape = job(&["ada@example.com"]);
        escape.template = Some("../secrets".into());
        assert_eq!(validate(&escape).unwrap_err().field, "template");
        let mut no_body = job(&["Ada <ada@example.com>"]);
        no_body.text = None;
        assert_eq!(validate(&no_body).unwrap_err().field, "text");
        assert!(validate(&job(&["Ada <ada@example.com>", "bob@example.org"])).is_ok());
    }

    fn handler(templates: Option<minijinja::Environment<'static>>) -> EmailHandler {
        EmailHandler {
            transport: AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1").build(),
            from: "sluice <sluice@example.com>".parse().unwrap(),
            domain: "example.com".into(),
            templates,
        }
    }

    // A pooled transport starts its pool on the tokio runtime.
    #[tokio::test]
    async fn the_message_id_is_the_job_id_at_the_senders_domain() {
        let h = handler(None);
        assert_eq!(
            h.message_id("0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b"),
            "<0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b@example.com>"
        );
        assert_eq!(h.message_id("a<b>@c"), "<a.b..c@example.com>");
    }

    #[tokio::test]
    async fn a_missing_template_variable_is_fatal_and_named() {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_template_owned(
            "welcome.txt",
            "Hello {{ name }}, from {{ team }}".to_owned(),
        )
        .unwrap();
        let h = handler(Some(env));
        let mut email = job(&["ada@example.com"]);
        email.template = Some("welcome".into());
        email.vars.insert("name".into(), "Ada".into());
        let failure = h.parts(&email).err().expect("team is not set");
        assert_eq!(failure.class, ErrorClass::Fatal);
        assert!(
            failure.message.contains("welcome.txt"),
            "{}",
            failure.message
        );

        email.vars.insert("team".into(), "sluice".into());
        let parts = h.parts(&email).ok().unwrap();
        assert_eq!(parts.text.as_deref(), Some("Hello Ada, from sluice"));
        assert_eq!(parts.subject, "Hi");

        email.template = Some("nope".into());
        let failure = h.parts(&email).err().unwrap();
        assert!(
            failure.message.contains("`nope` not found"),
            "{}",
            failure.message
        );
    }
}
