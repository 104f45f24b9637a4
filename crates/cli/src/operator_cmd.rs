//! `certhall operator …`: counter operators (柜台人员) from the command line
//! (administrators; audited with the OS user as actor).
//!
//! The password never appears on the command line (it would sit in the
//! shell history and in `ps`): it comes from `CERTHALL_OPERATOR_PASSWORD`
//! or is read from standard input (twice, without echo on a terminal).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use certhall_service::Services;
use clap::Subcommand;

/// The environment variable a password may come from.
pub const PASSWORD_ENV: &str = "CERTHALL_OPERATOR_PASSWORD";

/// `certhall operator` subcommands.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Add an operator. The password comes from CERTHALL_OPERATOR_PASSWORD
    /// or is asked for on standard input.
    Add {
        /// Login name (2–32 lower-case letters, digits, . _ -).
        #[arg(long)]
        username: String,
        /// Mobile phone the login codes go to.
        #[arg(long)]
        phone: String,
        /// operator (柜台审核员) or admin (管理员).
        #[arg(long, default_value = "operator")]
        role: String,
        /// Also grant the 制证 permission (producing keys at the counter).
        #[arg(long)]
        producer: bool,
    },
    /// List the operators.
    List,
    /// Grant (or with --revoke withdraw) the 制证 permission.
    Producer {
        /// The operator's login name.
        username: String,
        /// Withdraw instead of grant.
        #[arg(long)]
        revoke: bool,
    },
}

/// Runs one `certhall operator` command.
pub async fn run(services: &Services, command: OperatorCommand) -> anyhow::Result<ExitCode> {
    match command {
        OperatorCommand::List => {
            let now = services.clock.now();
            for o in services.operators().await? {
                let state = match o.locked_until {
                    Some(t) if t > now => format!("锁定至 {}", t.display_cst()),
                    _ => "正常".to_owned(),
                };
                println!(
                    "{}\t{}\t{}\t{}{}\t{}\t{}",
                    o.id,
                    o.username,
                    o.phone.masked(),
                    o.role.label_zh(),
                    if o.producer { "，制证" } else { "" },
                    state,
                    o.created_at.display_cst()
                );
            }
        }
        OperatorCommand::Add {
            username,
            phone,
            role,
            producer,
        } => {
            let password = password()?;
            let op = services
                .add_operator(
                    &username,
                    &phone,
                    &role,
                    &password,
                    crate::ca_cmd::cli_actor(),
                )
                .await
                .map_err(|e| match e.refusal() {
                    Some(r) => anyhow::anyhow!(r.message_zh()),
                    None => anyhow::anyhow!(e),
                })?;
            if producer {
                services
                    .set_producer(&op.username, true, crate::ca_cmd::cli_actor())
                    .await?;
            }
            println!(
                "已添加柜台人员 {}（{}{}，手机 {}）",
                op.username,
                op.role.label_zh(),
                if producer { "，制证" } else { "" },
                op.phone.masked()
            );
        }
        OperatorCommand::Producer { username, revoke } => {
            let op = services
                .set_producer(&username, !revoke, crate::ca_cmd::cli_actor())
                .await
                .map_err(|e| match e.refusal() {
                    Some(r) => anyhow::anyhow!(r.message_zh()),
                    None => anyhow::anyhow!(e),
                })?;
            println!(
                "{} {} 的制证权限",
                if op.producer {
                    "已开通"
                } else {
                    "已撤销"
                },
                op.username
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(p);
    }
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let first = read_line(tty, "请输入密码（至少10位，含字母和数字）：")?;
    if tty {
        let again = read_line(tty, "请再次输入密码：")?;
        if again != first {
            anyhow::bail!("两次输入的密码不一致");
        }
    }
    Ok(first)
}

fn read_line(tty: bool, prompt: &str) -> anyhow::Result<String> {
    if tty {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        set_echo(false);
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if tty {
        set_echo(true);
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Best effort: `stty` switches echo off on Unix terminals.
fn set_echo(on: bool) {
    let _ = std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status();
}
