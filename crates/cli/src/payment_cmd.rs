//! `certhall payment …`: the finance office's side of step 7 — a CSV of
//! payment attempts and refunds for a period, to reconcile against the
//! providers' bills (docs/payment.md, 对账), and a run of the
//! reconciliation job on demand.

use std::process::ExitCode;

use certhall_domain::money::yuan_decimal;
use certhall_domain::operator::{cst_day_start, DAY};
use certhall_service::Services;
use clap::Subcommand;

/// `certhall payment` subcommands.
#[derive(Debug, Subcommand)]
pub enum PaymentCommand {
    /// Attempts and refunds of a period as CSV (China time days).
    Report {
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last day, YYYY-MM-DD (inclusive) [default: the first day].
        #[arg(long)]
        to: Option<String>,
    },
    /// Ask the providers now about unsettled payments and refunds (what
    /// the job does every tick; safe while servers run).
    Reconcile,
}

fn csv(field: &str) -> String {
    if field.contains([',', '"', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// Runs one `certhall payment` command.
pub async fn run(services: &Services, command: PaymentCommand) -> anyhow::Result<ExitCode> {
    match command {
        PaymentCommand::Report { from, to } => {
            let start =
                cst_day_start(&from).ok_or_else(|| anyhow::anyhow!("--from 须为 YYYY-MM-DD"))?;
            let last = match &to {
                Some(t) => {
                    cst_day_start(t).ok_or_else(|| anyhow::anyhow!("--to 须为 YYYY-MM-DD"))?
                }
                None => start,
            };
            let end = last.plus(DAY);
            let store = &services.store;
            println!("kind,number,order,channel,amount_yuan,state,provider_number,created_cst,settled_cst,note");
            for a in certhall_store::payments::attempts_between(store, start, end).await? {
                println!(
                    "payment,{},{},{},{},{},{},{},{},{}",
                    a.out_trade_no,
                    a.order_id,
                    a.channel.as_str(),
                    yuan_decimal(a.amount_fen),
                    a.state.as_str(),
                    a.transaction_id.as_deref().unwrap_or(""),
                    a.created_at.display_cst(),
                    a.paid_at
                        .or(a.settled_at)
                        .map(|t| t.display_cst())
                        .unwrap_or_default(),
                    csv(a
                        .failure
                        .as_deref()
                        .or(a.settled_by.as_deref())
                        .unwrap_or("")),
                );
            }
            for r in certhall_store::payments::refunds_between(store, start, end).await? {
                println!(
                    "refund,{},{},,{},{},{},{},{},{}",
                    r.out_refund_no,
                    r.order_id,
                    yuan_decimal(-r.amount_fen),
                    r.state.as_str(),
                    r.provider_refund_id.as_deref().unwrap_or(""),
                    r.created_at.display_cst(),
                    r.succeeded_at.map(|t| t.display_cst()).unwrap_or_default(),
                    csv(&r.reason),
                );
            }
        }
        PaymentCommand::Reconcile => {
            let s = services.reconcile_payments().await?;
            println!(
                "queried {} · paid {} · closed {} · failed {} · refunds checked {} (final {}) · errors {}",
                s.queried, s.paid, s.closed, s.failed, s.refunds_checked, s.refunds_final, s.errors
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
