//! The 应用 catalogue: administrators add and edit entries (`certhall app
//! …`, later the admin console); the wizard's step 2 lists the active ones.

use certhall_domain::application::{demo_catalogue, Application};
use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::Refusal;
use certhall_store::applications as db;
use serde_json::json;

use crate::{append_audit, RequestMeta, Result, Services};

impl Services {
    /// The catalogue (only what applicants may choose, if `active_only`).
    pub async fn applications(&self, active_only: bool) -> Result<Vec<Application>> {
        Ok(db::list(&self.store, active_only).await?)
    }

    /// One application.
    pub async fn application(&self, code: &str) -> Result<Application> {
        db::get(&self.store, code)
            .await?
            .ok_or_else(|| Refusal::ApplicationNotFound(code.to_owned()).into())
    }

    /// Adds (`replace` false) or replaces an application; checks that its
    /// certificate profile exists.
    pub async fn save_application(
        &self,
        app: &Application,
        replace: bool,
        actor: Actor,
    ) -> Result<()> {
        app.validate()?;
        self.ca_profile(&app.profile).await?;
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        let done = if replace {
            db::update(&mut tx, app, now).await?
        } else {
            db::insert(&mut tx, app, now).await?
        };
        if !done {
            return Err(if replace {
                Refusal::ApplicationNotFound(app.code.clone())
            } else {
                Refusal::ApplicationExists(app.code.clone())
            }
            .into());
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            actor,
            &RequestMeta::default(),
            AuditEvent::ApplicationSaved,
            json!({
                "code": app.code, "name": app.name, "profile": app.profile,
                "validity_days": app.validity_days, "price_fen": app.price_fen,
                "active": app.active, "replaced": replace,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Demo mode's catalogue (枣庄公共资源交易 and two more), added once.
    pub async fn ensure_demo_applications(&self) -> Result<()> {
        for app in demo_catalogue() {
            if db::get(&self.store, &app.code).await?.is_none() {
                self.save_application(&app, false, Actor::System).await?;
            }
        }
        Ok(())
    }
}
