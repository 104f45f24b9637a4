//! `certhall app …`: the 应用 catalogue from the command line
//! (administrators; audited with the OS user as actor).

use std::process::ExitCode;

use certhall_domain::application::{format_price, parse_price, Application};
use certhall_domain::production::KeyKind;
use certhall_service::Services;
use clap::Subcommand;

/// `certhall app` subcommands.
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// List the catalogue.
    List,
    /// Add an application.
    Add {
        /// Code, e.g. zzggzy (lower-case letters, digits, '-').
        #[arg(long)]
        code: String,
        /// Shown name, e.g. 枣庄公共资源交易.
        #[arg(long)]
        name: String,
        /// Certificate profile (see `certhall ca profile list`).
        #[arg(long, default_value = "enterprise")]
        profile: String,
        /// Key pair of its certificates: sm2 (国密), p256 or rsa2048.
        #[arg(long, default_value = "sm2", value_parser = parse_key_kind)]
        key: KeyKind,
        /// Certificate validity in days.
        #[arg(long, default_value_t = 365)]
        validity_days: u32,
        /// Price in yuan, e.g. 300 or 300.00.
        #[arg(long)]
        price: String,
        /// One line for applicants.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Change an application; only the options given change.
    Edit {
        /// Its code.
        code: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New profile.
        #[arg(long)]
        profile: Option<String>,
        /// New key pair kind: sm2, p256 or rsa2048.
        #[arg(long, value_parser = parse_key_kind)]
        key: Option<KeyKind>,
        /// New validity in days.
        #[arg(long)]
        validity_days: Option<u32>,
        /// New price in yuan.
        #[arg(long)]
        price: Option<String>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// Offer it to applicants (true) or not (false).
        #[arg(long)]
        active: Option<bool>,
    },
}

/// Runs one `certhall app` command.
pub async fn run(services: &Services, command: AppCommand) -> anyhow::Result<ExitCode> {
    let actor = crate::ca_cmd::cli_actor();
    match command {
        AppCommand::List => {
            for a in services.applications(false).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{} 天\t{}\t{}",
                    a.code,
                    a.name,
                    a.profile,
                    a.key_kind,
                    a.validity_days,
                    format_price(a.price_fen),
                    if a.active { "启用" } else { "停用" }
                );
            }
        }
        AppCommand::Add {
            code,
            name,
            profile,
            key,
            validity_days,
            price,
            description,
        } => {
            let app = Application {
                code,
                name,
                profile,
                key_kind: key,
                validity_days,
                price_fen: parse_price(&price).map_err(|r| anyhow::anyhow!(r.message_zh()))?,
                description,
                active: true,
            };
            save(services, &app, false, actor).await?;
            println!("已添加应用 {}（{}）", app.code, app.name);
        }
        AppCommand::Edit {
            code,
            name,
            profile,
            key,
            validity_days,
            price,
            description,
            active,
        } => {
            let mut app = services
                .application(&code)
                .await
                .map_err(|e| anyhow::anyhow!(refusal_text(e)))?;
            if let Some(v) = name {
                app.name = v;
            }
            if let Some(v) = profile {
                app.profile = v;
            }
            if let Some(v) = key {
                app.key_kind = v;
            }
            if let Some(v) = validity_days {
                app.validity_days = v;
            }
            if let Some(v) = price {
                app.price_fen = parse_price(&v).map_err(|r| anyhow::anyhow!(r.message_zh()))?;
            }
            if let Some(v) = description {
                app.description = v;
            }
            if let Some(v) = active {
                app.active = v;
            }
            save(services, &app, true, actor).await?;
            println!("已修改应用 {}", app.code);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn save(
    services: &Services,
    app: &Application,
    replace: bool,
    actor: certhall_domain::audit::Actor,
) -> anyhow::Result<()> {
    services
        .save_application(app, replace, actor)
        .await
        .map_err(|e| anyhow::anyhow!(refusal_text(e)))
}

fn refusal_text(e: certhall_service::ServiceError) -> String {
    match e.refusal() {
        Some(r) => r.message_zh(),
        None => e.to_string(),
    }
}

fn parse_key_kind(s: &str) -> Result<KeyKind, String> {
    KeyKind::parse(s).ok_or_else(|| format!("{s:?}: expected sm2, p256 or rsa2048"))
}
