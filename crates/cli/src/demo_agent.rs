//! Demo mode's key agent: a 证书助手 running inside `certhall serve` with a
//! software token ("演示UKey") that holds an SM2 certificate bound to the
//! demo phone's account, so a newcomer can try 数字证书登录 with nothing
//! installed. Created on first start, reused afterwards.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use certhall_agent::soft::SoftTokens;
use certhall_agent::token::{Pin, TokenBackend};
use certhall_ca::{Family, KeyAlgorithm};
use certhall_domain::audit::Actor;
use certhall_domain::cert_login::origin_of;
use certhall_domain::Phone;
use certhall_service::ca::{role, IssueInput};
use certhall_service::Services;

/// The demo account's phone (log in with it by SMS, or with the demo
/// certificate).
pub const DEMO_PHONE: &str = "13800138000";
/// The demo token's user PIN.
pub const DEMO_PIN: &str = "123456";
/// The demo token's SO PIN (unblocks the user PIN).
pub const DEMO_SO_PIN: &str = "12345678";
const DEMO_TOKEN: &str = "演示UKey";
const DEMO_KEY: &str = "演示证书";
const DEMO_SUBJECT: &str =
    "C=CN,ST=山东省,L=枣庄市,O=枣庄演示科技有限公司,USCC=91350100M000100Y43,CN=枣庄演示科技有限公司";

/// Serves the demo agent on `agent_url` for pages of CertHall at `site`,
/// making sure the demo token holds a certificate CertHall knows. Demo
/// comfort, never a reason not to start: any failure (the port taken by a
/// real agent, an edited profile) is a warning and `None`.
pub async fn start(
    data_dir: &Path,
    agent_url: &str,
    public_url: &str,
    extra_origins: &[String],
    site: SocketAddr,
    services: &Services,
) -> Option<tokio::task::JoinHandle<()>> {
    match try_start(
        data_dir,
        agent_url,
        public_url,
        extra_origins,
        site,
        services,
    )
    .await
    {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "demo key agent not started");
            None
        }
    }
}

async fn try_start(
    data_dir: &Path,
    agent_url: &str,
    public_url: &str,
    extra_origins: &[String],
    site: SocketAddr,
    services: &Services,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let dir = data_dir.join("agent");
    let listen: SocketAddr = agent_url
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .filter(|a: &SocketAddr| a.ip().is_loopback())
        .with_context(|| {
            format!("agent_url {agent_url} is not http://<loopback address>:<port>")
        })?;
    let mut origins: Vec<String> = origin_of(public_url).into_iter().collect();
    origins.extend(extra_origins.iter().cloned());
    origins.push(format!("http://127.0.0.1:{}", site.port()));
    origins.push(format!("http://localhost:{}", site.port()));
    origins.sort();
    origins.dedup();
    let options = certhall_agent::Options {
        listen,
        allow_origins: origins,
        pkcs11_module: None,
        pkcs11_optional: true,
        soft_token_dir: Some(dir.join("tokens")),
        keep_blank_soft_token: true,
        state_dir: dir.join("state"),
    };
    // Bind first: with the port taken (another 证书助手 running), nothing
    // else is done.
    let (listener, agent) = certhall_agent::bind(&options)
        .await
        .with_context(|| format!("is another 证书助手 running on {listen}?"))?;
    let tokens = Arc::new(
        SoftTokens::open(dir.join("tokens"))
            .map_err(|e| anyhow::anyhow!("demo agent tokens: {e}"))?,
    );
    ensure_demo_certificate(&tokens, services).await?;
    Ok(tokio::spawn(async move {
        if let Err(e) = certhall_agent::serve(listener, agent, std::future::pending()).await {
            tracing::warn!(error = %e, "demo key agent stopped");
        }
    }))
}

/// Runs a token call on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, certhall_agent::token::TokenError> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await?
        .map_err(|e| anyhow::anyhow!("demo token: {e}"))
}

async fn ensure_demo_certificate(
    tokens: &Arc<SoftTokens>,
    services: &Services,
) -> anyhow::Result<()> {
    let t = tokens.clone();
    let existing = blocking(move || t.tokens()).await?;
    let serial = match existing.into_iter().find(|t| t.label == DEMO_TOKEN) {
        Some(info) => info.serial,
        None => {
            let t = tokens.clone();
            blocking(move || {
                t.create_token(DEMO_TOKEN, &Pin::new(DEMO_PIN), &Pin::new(DEMO_SO_PIN))
            })
            .await?
            .serial
        }
    };
    // A certificate CertHall issued and still has on record: nothing to do.
    let (t, s) = (tokens.clone(), serial.clone());
    for key in blocking(move || t.keys(&s)).await? {
        if let Some(der) = &key.certificate {
            let serial = <x509_cert::Certificate as der::Decode>::from_der(der)
                .map(|c| hex::encode(c.tbs_certificate.serial_number.as_bytes()))
                .unwrap_or_default();
            let known = certhall_store::ca::certificate(&services.store, &serial)
                .await?
                .is_some_and(|c| {
                    c.der == *der && c.revocation.is_none() && c.not_after > services.clock.now()
                });
            if known {
                return Ok(());
            }
        }
        let (t, s, id) = (tokens.clone(), serial.clone(), key.key_id.clone());
        blocking(move || t.delete_key(&s, &Pin::new(DEMO_PIN), &id)).await?;
    }

    let phone = Phone::parse(DEMO_PHONE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let account = services.ensure_account(&phone).await?;
    let (t, s) = (tokens.clone(), serial.clone());
    let (key, csr) = blocking(move || {
        let pin = Pin::new(DEMO_PIN);
        let key = t.generate_key(&s, &pin, KeyAlgorithm::Sm2, DEMO_KEY)?;
        let subject = certhall_agent::csr::subject_or_label(None, DEMO_KEY)?;
        let csr = certhall_agent::csr::build(&subject, key.algorithm, &key.public_key, |tbs| {
            t.sign(&s, &pin, &key.key_id, tbs)
        })?;
        Ok((key, csr))
    })
    .await?;
    let row = services
        .ca_issue(
            &IssueInput {
                family: Family::Sm2,
                profile: "enterprise",
                csr: &csr,
                subject: DEMO_SUBJECT,
                account: Some(account),
                order_id: None,
                predecessor: None,
                ends_by: None,
            },
            Actor::System,
        )
        .await?;
    let chain: Vec<Vec<u8>> =
        certhall_store::ca::active_authority(&services.store, Family::Sm2.as_str(), role::ISSUING)
            .await?
            .map(|a| a.der)
            .into_iter()
            .collect();
    let t = tokens.clone();
    blocking(move || {
        t.store_certificate(&serial, &Pin::new(DEMO_PIN), &key.key_id, &row.der, &chain)
    })
    .await?;
    tracing::info!("demo certificate written to the demo token");
    Ok(())
}
