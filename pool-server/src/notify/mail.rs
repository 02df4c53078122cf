//! Email: alerts through the operator's SMTP relay (`--alert-smtp-url`, STARTTLS or TLS as
//! the URL asks, checked against the web's roots or the operator's own CA), one mail per
//! message, its id in the `Message-ID` so a resend after a crash can be recognised by the
//! mail system as the same mail.

use std::path::Path;

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::channel;
use super::outbox::Message;

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// A relay from `url` (`smtp://HOST:PORT` plain, `smtp://...?tls=required` STARTTLS,
    /// `smtps://` TLS; credentials as `USER:PASS@`) sending as `from`; its certificate checked
    /// against `ca` (a PEM file) as well as the web's roots.
    pub fn new(url: &str, from: &str, ca: Option<&Path>) -> anyhow::Result<Mailer> {
        // lettre's errors may quote the URL, credentials and all: say only what is wrong.
        let wrong = || {
            anyhow::anyhow!(
                "--alert-smtp-url is not an SMTP URL this pool can use (smtp://HOST:25, \
                 smtp://USER:PASS@HOST:587?tls=required, smtps://USER:PASS@HOST:465)"
            )
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|_| wrong())?;
        if let Some(ca) = ca {
            let u = url::Url::parse(url).map_err(|_| wrong())?;
            let host = u.host_str().ok_or_else(wrong)?.to_owned();
            let pem = std::fs::read(ca)
                .map_err(|e| anyhow::anyhow!("--alert-smtp-ca {}: {e}", ca.display()))?;
            let cert = Certificate::from_pem(&pem).map_err(|_| {
                anyhow::anyhow!("--alert-smtp-ca {}: not a PEM certificate", ca.display())
            })?;
            let params = TlsParameters::builder(host)
                .add_root_certificate(cert)
                .build_rustls()
                .map_err(|e| anyhow::anyhow!("--alert-smtp-ca: {e}"))?;
            let mode = u
                .query_pairs()
                .find(|(k, _)| k == "tls")
                .map(|(_, v)| v.into_owned());
            let tls = match (u.scheme(), mode.as_deref()) {
                ("smtps", _) => Tls::Wrapper(params),
                (_, Some("required")) => Tls::Required(params),
                (_, Some("opportunistic")) => Tls::Opportunistic(params),
                _ => anyhow::bail!(
                    "--alert-smtp-ca is for a relay spoken to over TLS: smtps://, or \
                     smtp://...?tls=required"
                ),
            };
            builder = builder.tls(tls);
        }
        let transport = builder.timeout(Some(super::webhook::TIMEOUT)).build();
        let from: Mailbox = from
            .parse()
            .map_err(|e| anyhow::anyhow!("--alert-mail-from {from:?} is not a mailbox: {e}"))?;
        Ok(Mailer { transport, from })
    }

    /// Mail `message` to `to`; `Err` with the reason when the relay did not take it.
    pub async fn send(
        &self,
        to: &str,
        message: &Message,
        link: Option<&str>,
    ) -> Result<(), String> {
        let to: Mailbox = to.parse().map_err(|_| "not a mailbox".to_owned())?;
        let domain = self.from.email.domain().to_owned();
        let mail = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(channel::heading(&message.alerts))
            .message_id(Some(format!("<{}@{domain}>", message.id)))
            .header(ContentType::TEXT_PLAIN)
            .body(channel::text(&message.alerts, link))
            .map_err(|e| format!("could not build the mail: {e}"))?;
        self.transport.send(mail).await.map(|_| ()).map_err(|e| {
            if e.is_permanent() {
                "the relay refused the mail".to_owned()
            } else if e.is_transient() {
                "the relay deferred the mail".to_owned()
            } else {
                "no connection to the relay".to_owned()
            }
        })
    }
}
