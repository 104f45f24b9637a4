//! `certhall key-model …`: UKey models (介质), their stock per colour
//! (红Key / 蓝Key) and which applications offer them (administrators;
//! audited with the OS user as actor). Step 6 refuses a model with nothing
//! left before payment, never after.

use std::process::ExitCode;

use certhall_domain::application::{format_price, parse_price};
use certhall_domain::checkout::{KeyColour, KeyModel};
use certhall_service::Services;
use clap::Subcommand;

/// `certhall key-model` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyModelCommand {
    /// List the models with their stock (on hand, reserved, available).
    List,
    /// Add a model (no stock yet; count it in with `stock`).
    Add {
        /// Code, e.g. ukey-standard (lower-case letters, digits, '-').
        #[arg(long)]
        code: String,
        /// Shown name, e.g. 标准 UKey（红Key/蓝Key 随机发放）.
        #[arg(long)]
        name: String,
        /// Price in yuan, e.g. 80 or 80.00.
        #[arg(long)]
        price: String,
        /// One line for applicants.
        #[arg(long, default_value = "")]
        description: String,
        /// Picture: ukey-standard or ukey-compact.
        #[arg(long, default_value = "ukey-standard")]
        picture: String,
    },
    /// Change a model; only the options given change.
    Edit {
        /// Its code.
        code: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New price in yuan (orders already confirmed keep theirs).
        #[arg(long)]
        price: Option<String>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// New picture.
        #[arg(long)]
        picture: Option<String>,
        /// Offer it (true) or not (false).
        #[arg(long)]
        active: Option<bool>,
    },
    /// Count keys in (positive) or out (negative), with a reason.
    Stock {
        /// The model's code.
        code: String,
        /// red or blue (红 / 蓝).
        #[arg(long)]
        colour: String,
        /// Units in (e.g. 100) or out (e.g. -3).
        #[arg(long, allow_hyphen_values = true)]
        add: i64,
        /// Why (入库, 盘点, 损坏 …).
        #[arg(long)]
        reason: String,
    },
    /// Which models an application offers (none listed: every active model).
    Offer {
        /// The application's code (see `certhall app list`).
        #[arg(long)]
        app: String,
        /// Model codes, comma-separated; empty for every active model.
        #[arg(long, default_value = "")]
        models: String,
    },
}

fn text(e: certhall_service::ServiceError) -> anyhow::Error {
    match e.refusal() {
        Some(r) => anyhow::anyhow!(r.message_zh()),
        None => anyhow::anyhow!(e.to_string()),
    }
}

/// Runs one `certhall key-model` command.
pub async fn run(services: &Services, command: KeyModelCommand) -> anyhow::Result<ExitCode> {
    let actor = crate::ca_cmd::cli_actor();
    match command {
        KeyModelCommand::List => {
            for m in services.key_models().await.map_err(text)? {
                let colours: Vec<String> = m
                    .stock
                    .on_hand
                    .iter()
                    .map(|(c, n)| format!("{} {n}", c.label_zh()))
                    .collect();
                println!(
                    "{}\t{}\t{}\t{}\t已占用 {}\t可用 {}\t{}",
                    m.model.code,
                    m.model.name,
                    format_price(m.model.price_fen),
                    colours.join(" / "),
                    m.stock.reserved,
                    m.stock.available(),
                    if m.model.active { "启用" } else { "停用" }
                );
            }
        }
        KeyModelCommand::Add {
            code,
            name,
            price,
            description,
            picture,
        } => {
            let m = KeyModel {
                code,
                name,
                description,
                price_fen: parse_price(&price).map_err(|r| anyhow::anyhow!(r.message_zh()))?,
                picture,
                active: true,
            };
            services.add_key_model(&m, actor).await.map_err(text)?;
            println!(
                "已添加介质 {}（{}），请用 key-model stock 入库",
                m.code, m.name
            );
        }
        KeyModelCommand::Edit {
            code,
            name,
            price,
            description,
            picture,
            active,
        } => {
            let mut m = services.key_model(&code).await.map_err(text)?;
            if let Some(v) = name {
                m.name = v;
            }
            if let Some(v) = price {
                m.price_fen = parse_price(&v).map_err(|r| anyhow::anyhow!(r.message_zh()))?;
            }
            if let Some(v) = description {
                m.description = v;
            }
            if let Some(v) = picture {
                m.picture = v;
            }
            if let Some(v) = active {
                m.active = v;
            }
            services.edit_key_model(&m, actor).await.map_err(text)?;
            println!("已修改介质 {}", m.code);
        }
        KeyModelCommand::Stock {
            code,
            colour,
            add,
            reason,
        } => {
            let colour = KeyColour::parse(&colour)
                .ok_or_else(|| anyhow::anyhow!("颜色须为 red 或 blue（红 / 蓝）"))?;
            let stock = services
                .adjust_stock(&code, colour, add, &reason, actor)
                .await
                .map_err(text)?;
            println!(
                "{code} {}{add:+}：库存合计 {}，已占用 {}，可用 {}",
                colour.label_zh(),
                stock.total(),
                stock.reserved,
                stock.available()
            );
        }
        KeyModelCommand::Offer { app, models } => {
            let list: Vec<String> = models
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect();
            services
                .set_application_key_models(&app, &list, actor)
                .await
                .map_err(text)?;
            if list.is_empty() {
                println!("应用 {app} 提供全部启用的介质");
            } else {
                println!("应用 {app} 提供介质：{}", list.join("、"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
