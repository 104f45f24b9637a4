//! `certhall-agent`: the local key agent (证书助手).

use std::net::SocketAddr;
use std::path::PathBuf;

use certhall_agent::soft::SoftTokens;
use certhall_agent::token::Pin;
use certhall_agent::{Options, DEBIAN_SOFTHSM2, DEFAULT_PORT};
use clap::{Parser, Subcommand};

/// CertHall's local key agent: lets CertHall's pages use your USB key.
#[derive(Debug, Parser)]
#[command(name = "certhall-agent", version)]
struct Cli {
    /// Where to listen (loopback only).
    #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))]
    listen: SocketAddr,
    /// Origin of a CertHall site whose pages may use the agent
    /// (scheme://host[:port]); repeat for several.
    #[arg(
        long = "allow-origin",
        env = "CERTHALL_AGENT_ALLOW_ORIGIN",
        value_delimiter = ','
    )]
    allow_origins: Vec<String>,
    /// The PKCS#11 module of your USB key (default: Debian's SoftHSM2
    /// module when installed).
    #[arg(long, env = "CERTHALL_AGENT_PKCS11_MODULE")]
    pkcs11_module: Option<PathBuf>,
    /// Do not load any PKCS#11 module.
    #[arg(long, conflicts_with = "pkcs11_module")]
    no_pkcs11: bool,
    /// Directory of software tokens (软证书).
    #[arg(long, global = true, env = "CERTHALL_AGENT_SOFT_TOKEN_DIR")]
    soft_token_dir: Option<PathBuf>,
    /// Where the agent keeps its state.
    #[arg(long, env = "CERTHALL_AGENT_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Keep one blank software token in --soft-token-dir, for producing
    /// certificates at the counter without a real UKey (demo mode): listing
    /// the tokens creates one whenever none is blank.
    #[arg(long)]
    keep_blank_soft_token: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates a software token in --soft-token-dir. The user PIN and the
    /// security officer's PIN come from CERTHALL_AGENT_PIN and
    /// CERTHALL_AGENT_SO_PIN, else from standard input (one per line) —
    /// never from the command line, where other users and the shell
    /// history would see them.
    InitSoftToken {
        /// The token's label.
        #[arg(long)]
        label: String,
    },
    /// Creates a blank software token (no PINs, no keys) in
    /// --soft-token-dir, for the counter to initialise through the API
    /// (POST /v1/tokens/{token}/init), and prints its token id.
    NewBlankSoftToken,
}

/// A PIN from the environment, else one line of standard input (prompted
/// on standard error).
fn secret(env: &str, what: &str) -> anyhow::Result<Pin> {
    if let Ok(v) = std::env::var(env) {
        return Ok(Pin::new(v));
    }
    eprint!("请输入{what}（或设置 {env}）：");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let pin = line.trim_end_matches(['\r', '\n']).to_owned();
    if pin.is_empty() {
        anyhow::bail!("{what}为空（设置 {env}，或在标准输入中给出）");
    }
    Ok(Pin::new(pin))
}

fn home_dir(sub: &str, xdg: &str) -> PathBuf {
    std::env::var_os(xdg)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(sub)))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("certhall-agent")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "certhall_agent=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let soft_token_dir = cli
        .soft_token_dir
        .clone()
        .unwrap_or_else(|| home_dir(".local/share", "XDG_DATA_HOME").join("tokens"));
    match &cli.command {
        Some(Command::InitSoftToken { label }) => {
            let tokens =
                SoftTokens::open(soft_token_dir.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
            let pin = secret("CERTHALL_AGENT_PIN", "用户 PIN 码")?;
            let so_pin = secret("CERTHALL_AGENT_SO_PIN", "管理员 PIN 码（SO PIN）")?;
            for p in [&pin, &so_pin] {
                p.check_new().map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            let info = tokens
                .create_token(label, &pin, &so_pin)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("soft-{}", info.serial);
            return Ok(());
        }
        Some(Command::NewBlankSoftToken) => {
            let info = SoftTokens::open(soft_token_dir.clone())
                .and_then(|tokens| tokens.create_blank_token())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("soft-{}", info.serial);
            return Ok(());
        }
        None => {}
    }
    let pkcs11_module = if cli.no_pkcs11 {
        None
    } else {
        cli.pkcs11_module.clone().or_else(|| {
            let debian = PathBuf::from(DEBIAN_SOFTHSM2);
            debian.exists().then_some(debian)
        })
    };
    let options = Options {
        listen: cli.listen,
        allow_origins: cli.allow_origins.clone(),
        pkcs11_optional: cli.pkcs11_module.is_none(),
        pkcs11_module,
        soft_token_dir: Some(soft_token_dir),
        keep_blank_soft_token: cli.keep_blank_soft_token,
        state_dir: cli
            .state_dir
            .clone()
            .unwrap_or_else(|| home_dir(".local/state", "XDG_STATE_HOME")),
    };
    let (listener, agent) = certhall_agent::bind(&options).await?;
    if options.allow_origins.is_empty() {
        tracing::warn!("no --allow-origin given: no web page can use this agent");
    }
    // The first line of stdout says where the agent is (tests read it).
    println!(
        "certhall-agent listening on http://{}",
        listener.local_addr()?
    );
    tracing::info!(
        backends = ?agent.backend_kinds(),
        pkcs11 = ?options.pkcs11_module,
        soft = ?options.soft_token_dir,
        keep_blank_soft_token = options.keep_blank_soft_token,
        origins = ?options.allow_origins,
        "agent ready"
    );
    certhall_agent::serve(listener, agent, shutdown_signal()).await?;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
