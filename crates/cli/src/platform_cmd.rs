//! `certhall platform …`: relying platforms (公共资源交易平台) that call
//! `/api/v1/relying/…` to activate certificates and check their status
//! (docs/relying-platform.md).

use std::process::ExitCode;

use certhall_service::Services;
use clap::Subcommand;

/// `certhall platform` subcommands.
#[derive(Debug, Subcommand)]
pub enum PlatformCommand {
    /// Register a platform; prints its bearer token once (only its hash
    /// is kept).
    Add {
        /// Its name, e.g. 枣庄公共资源交易平台.
        #[arg(long)]
        name: String,
        /// The application code its certificates are issued for
        /// (`certhall app list`).
        #[arg(long)]
        application: String,
        /// Origin of a page of the platform that has keys sign activation
        /// challenges (https://ggzy.example.cn); repeat for several.
        #[arg(long = "origin", required = true)]
        origins: Vec<String>,
        /// Where the platform is told of revocations of certificates
        /// activated there (signed POSTs, docs/relying-platform.md).
        #[arg(long)]
        webhook: Option<String>,
    },
    /// List the platforms.
    List,
}

/// Runs one `certhall platform` command.
pub async fn run(services: &Services, command: PlatformCommand) -> anyhow::Result<ExitCode> {
    match command {
        PlatformCommand::Add {
            name,
            application,
            origins,
            webhook,
        } => {
            let added = services
                .add_platform(
                    &name,
                    &application,
                    &origins,
                    webhook.as_deref(),
                    crate::ca_cmd::cli_actor(),
                )
                .await;
            match added {
                Ok(p) => {
                    println!(
                        "platform {} added: {name} (application {application})",
                        p.id
                    );
                    println!("token (shown once, keep it secret): {}", p.token);
                    if let Some(secret) = p.webhook_secret {
                        println!("webhook signing secret (keep it secret): {secret}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    let message = e
                        .refusal()
                        .map_or_else(|| e.to_string(), certhall_domain::Refusal::message_zh);
                    eprintln!("error: {message}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        PlatformCommand::List => {
            for p in services.platforms().await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    p.id,
                    p.name,
                    p.application,
                    p.origins.join(" ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
