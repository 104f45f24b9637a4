//! 证书助手 — CertHall's local key agent.
//!
//! A small program on the user's (or the counter's) PC that lets CertHall's
//! pages use the USB key without a browser plugin: it talks PKCS#11 to the
//! key (or reads a software token) and answers a versioned JSON API on the
//! loopback interface, only to the origins it is told to trust.
//!
//! - [`token`]: the backend trait every kind of token implements;
//! - [`pkcs11`]: any PKCS#11 module (SoftHSM2 in tests, the vendor's UKey
//!   module in real use);
//! - [`soft`]: software tokens, encrypted files in a directory;
//! - [`csr`]: PKCS#10 requests signed by a key inside a token;
//! - [`api`]: the HTTP API (`/v1/…`), its origin checks and error codes.
//!
//! `docs/agent.md` documents the API for pages and key vendors.

pub mod api;
pub mod csr;
pub mod pkcs11;
pub mod soft;
pub mod token;

/// The agent's default port on 127.0.0.1 (pages look for it there).
pub const DEFAULT_PORT: u16 = 17845;

/// Debian's SoftHSM2 module, the default `--pkcs11-module` when present.
pub const DEBIAN_SOFTHSM2: &str = "/usr/lib/softhsm/libsofthsm2.so";

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use token::{TokenBackend, TokenError};

/// How to start an agent (the command line, or CertHall's demo mode).
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen; must be a loopback address.
    pub listen: SocketAddr,
    /// Origins (`scheme://host[:port]`) of the pages the agent answers.
    pub allow_origins: Vec<String>,
    /// A PKCS#11 module, if any.
    pub pkcs11_module: Option<PathBuf>,
    /// The module was not asked for (a default): if it cannot be loaded,
    /// go on without it instead of failing.
    pub pkcs11_optional: bool,
    /// A software-token directory, if any.
    pub soft_token_dir: Option<PathBuf>,
    /// Keep one blank software token in `soft_token_dir`, created when the
    /// tokens are listed and none is blank, so that the counter always has
    /// a key to produce a certificate onto (CertHall's demo mode; see
    /// [`soft::SoftTokens::keep_blank_token`]). `false` for real use.
    pub keep_blank_soft_token: bool,
    /// Where the agent keeps its state (the PIN counts of PKCS#11 tokens).
    pub state_dir: PathBuf,
}

/// Opens the backends the options name. A PKCS#11 module that cannot be
/// loaded is an error (the user asked for it); so is a software-token
/// directory that cannot be created.
pub fn backends(options: &Options) -> Result<Vec<Arc<dyn TokenBackend>>, TokenError> {
    let mut backends: Vec<Arc<dyn TokenBackend>> = Vec::new();
    if let Some(module) = &options.pkcs11_module {
        match pkcs11::Pkcs11Tokens::open(module, options.state_dir.join("pin-counts.json")) {
            Ok(b) => backends.push(Arc::new(b)),
            Err(e) if options.pkcs11_optional => {
                tracing::warn!("PKCS#11 module {} not used: {e}", module.display());
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(dir) = &options.soft_token_dir {
        backends.push(Arc::new(
            soft::SoftTokens::open(dir.clone())?.keep_blank_token(options.keep_blank_soft_token),
        ));
    }
    Ok(backends)
}

/// Serves the agent on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    agent: api::Agent,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, agent.router())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds `options.listen` (refusing any address but loopback) and builds
/// the agent for the port actually bound.
pub async fn bind(options: &Options) -> anyhow::Result<(tokio::net::TcpListener, api::Agent)> {
    if !options.listen.ip().is_loopback() {
        anyhow::bail!(
            "the agent listens on loopback only (127.0.0.1 or ::1), not {}",
            options.listen
        );
    }
    let origins = options
        .allow_origins
        .iter()
        .map(|o| api::check_origin(o))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--allow-origin: {e}"))?;
    let backends = backends(options).map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    let local = listener.local_addr()?;
    Ok((listener, api::Agent::new(backends, origins, local)))
}
