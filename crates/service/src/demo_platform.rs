//! Demo mode's relying platform (`/dev/platform`, issue 12): a trading
//! platform's page for a newcomer to activate a certificate in the
//! browser. It is a platform like any other: registered in
//! `relying_platforms` (one per application, with a token derived from the
//! deployment's secret), it calls CertHall's relying API over HTTP with
//! [`certhall_relying::RelyingClient`], and it receives CertHall's webhook
//! on its own route, checking the signature with
//! [`certhall_relying::verify`] before it keeps an event. Nothing here
//! exists outside demo mode.

use certhall_domain::audit::Actor;
use certhall_domain::Refusal;
// What the pages pass on, re-exported so the web names no adapter crate.
pub use certhall_relying::{ApiAnswer, SIGNATURE_HEADER};
use certhall_store::relying::{self as db, DemoEventRow};

use crate::relying::PlatformInfo;
use crate::{Result, ServiceError, Services};

/// The demo platform of one application, as its page shows it.
#[derive(Debug, Clone)]
pub struct DemoPlatform {
    /// The platform as registered.
    pub info: PlatformInfo,
    /// The application's name.
    pub application_name: String,
    /// Where CertHall delivers its webhook.
    pub webhook_url: String,
    /// Events received (verified), newest first.
    pub events: Vec<DemoEventRow>,
}

/// The demo platform of an application is registered under this name.
fn platform_name(application_name: &str) -> String {
    format!("{application_name}平台（演示）")
}

/// The demo platform's webhook route for an application (under the demo
/// platform's base, which is CertHall's own URL).
pub fn webhook_path(application: &str) -> String {
    format!("/dev/platform/webhook/{application}")
}

impl Services {
    fn demo_platform_client(&self) -> Result<&certhall_relying::RelyingClient> {
        match (&self.demo_platform, self.demo_mode()) {
            (Some(c), true) => Ok(c),
            _ => Err(Refusal::NotFound.into()),
        }
    }

    /// The demo platform's bearer token for an application: derived from
    /// the deployment's secret, so every process has it and none stores it.
    fn demo_platform_token(&self, application: &str) -> String {
        format!(
            "chp_{}",
            hex::encode(
                self.secret
                    .mac("demo-relying-platform", &[application.as_bytes()])
            )
        )
    }

    /// The demo platform of `application`, registered on first use (its
    /// pages served from `origin`, CertHall's own origin as the browser
    /// sees it).
    pub async fn demo_platform(&self, application: &str, origin: &str) -> Result<DemoPlatform> {
        let client = self.demo_platform_client()?;
        let app = certhall_store::applications::get(&self.store, application)
            .await?
            .ok_or_else(|| Refusal::ApplicationNotFound(application.to_owned()))?;
        let name = platform_name(&app.name);
        let webhook_url = format!("{}{}", client.base(), webhook_path(application));
        let row = match db::by_name(&self.store, &name).await? {
            Some(row) => row,
            None => {
                // Another process may register it at the same moment: the
                // name is unique, and either row is the same platform.
                self.register_platform(
                    &name,
                    application,
                    &[origin.to_owned()],
                    Some(&webhook_url),
                    &self.demo_platform_token(application),
                    Actor::System,
                )
                .await?;
                db::by_name(&self.store, &name)
                    .await?
                    .ok_or(Refusal::NotFound)?
            }
        };
        // A newcomer may open the demo under another address (localhost
        // and 127.0.0.1): each origin the page is served from is added.
        let mut origins: Vec<String> = row.origins.lines().map(str::to_owned).collect();
        if certhall_domain::cert_login::origin_well_formed(origin)
            && !origins.iter().any(|o| o == origin)
        {
            origins.push(origin.to_owned());
            let mut tx = self.store.begin_write().await?;
            db::set_origins_and_webhook(&mut tx, row.id, &origins.join("\n"), Some(&webhook_url))
                .await?;
            tx.commit().await?;
        }
        let events = db::demo_events(&self.store, row.id, 20).await?;
        let mut info = PlatformInfo::from(row);
        info.origins = origins;
        Ok(DemoPlatform {
            info,
            application_name: app.name,
            webhook_url,
            events,
        })
    }

    /// The demo platform asks CertHall's API for an activation challenge.
    pub async fn demo_platform_challenge(&self, application: &str) -> Result<ApiAnswer> {
        let client = self.demo_platform_client()?;
        client
            .challenge(&self.demo_platform_token(application))
            .await
            .map_err(|e| ServiceError::Internal(format!("demo platform: {e}")))
    }

    /// The demo platform hands CertHall's API the agent's signed answer.
    pub async fn demo_platform_activate(
        &self,
        application: &str,
        answer: &serde_json::Value,
    ) -> Result<ApiAnswer> {
        let client = self.demo_platform_client()?;
        client
            .activate(&self.demo_platform_token(application), answer)
            .await
            .map_err(|e| ServiceError::Internal(format!("demo platform: {e}")))
    }

    /// The demo platform asks CertHall's API about a certificate.
    pub async fn demo_platform_status(&self, application: &str, serial: &str) -> Result<ApiAnswer> {
        let client = self.demo_platform_client()?;
        client
            .status(&self.demo_platform_token(application), serial)
            .await
            .map_err(|e| ServiceError::Internal(format!("demo platform: {e}")))
    }

    /// The demo platform's webhook receiver: verifies the signature as a
    /// platform must (with the secret `platform add --webhook` would have
    /// printed), then keeps the event once. `Err` means "answer 4xx".
    pub async fn demo_platform_receive(
        &self,
        application: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<bool> {
        self.demo_platform_client()?;
        let app = certhall_store::applications::get(&self.store, application)
            .await?
            .ok_or(Refusal::NotFound)?;
        let row = db::by_name(&self.store, &platform_name(&app.name))
            .await?
            .ok_or(Refusal::NotFound)?;
        let now = self.clock.now();
        certhall_relying::verify(
            &self.webhook_secret(row.id),
            signature,
            body,
            now.millis() / 1000,
        )
        .map_err(|_| Refusal::PlatformUnauthorized)?;
        let event: certhall_relying::PlatformEvent = serde_json::from_slice(body)
            .map_err(|_| Refusal::InvalidField("事件格式不正确".into()))?;
        let mut tx = self.store.begin_write().await?;
        let fresh = db::insert_demo_event(
            &mut tx,
            &DemoEventRow {
                platform_id: row.id,
                event_id: event.id,
                kind: event.kind.clone(),
                serial: event.serial.clone(),
                body: String::from_utf8_lossy(body).into_owned(),
                received_at: now,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(fresh)
    }
}
