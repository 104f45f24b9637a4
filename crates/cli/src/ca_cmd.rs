//! `certhall ca …`: the CA engine from the command line (operators only;
//! every operation is audited with the OS user as actor).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use certhall_ca::crl::Reason;
use certhall_ca::issue::to_pem;
use certhall_ca::profile::Profile;
use certhall_ca::Family;
use certhall_domain::audit::Actor;
use certhall_service::ca::{role, IssueInput, KeyBackend};
use certhall_service::Services;
use clap::Subcommand;

/// `certhall ca` subcommands.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a root and an issuing CA of a family.
    Init {
        /// sm2, p256 or rsa.
        #[arg(long)]
        family: Family,
        /// Keep the CA keys in this PKCS#11 module's token instead of
        /// encrypted files.
        #[arg(long, requires = "token_label")]
        pkcs11_module: Option<String>,
        /// Label of the PKCS#11 token.
        #[arg(long)]
        token_label: Option<String>,
    },
    /// Print the issuing CA then the root as PEM.
    Chain {
        /// sm2, p256 or rsa.
        #[arg(long)]
        family: Family,
    },
    /// Issue a certificate from a PKCS#10 request; prints the PEM.
    Issue {
        /// sm2, p256 or rsa.
        #[arg(long)]
        family: Family,
        /// Profile name (see `certhall ca profile list`).
        #[arg(long)]
        profile: String,
        /// The CSR file, PEM or DER.
        #[arg(long)]
        csr: PathBuf,
        /// The subject from verified data, e.g. "C=CN,O=…,USCC=…,CN=…".
        #[arg(long)]
        subject: String,
        /// Bind the certificate to the account of this phone.
        #[arg(long)]
        phone: Option<String>,
    },
    /// Revoke a certificate.
    Revoke {
        /// Serial (hex).
        serial: String,
        /// keyCompromise, superseded, cessationOfOperation, affiliationChanged, …
        #[arg(long)]
        reason: String,
        /// Free-text note for the record.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Show one certificate and its status.
    Show {
        /// Serial (hex).
        serial: String,
    },
    /// List issued certificates, newest first.
    List {
        /// Only this family.
        #[arg(long)]
        family: Option<Family>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Write the current CRL (re-signed first when close to its nextUpdate).
    Crl {
        /// sm2, p256 or rsa.
        #[arg(long)]
        family: Family,
        /// Whose CRL: the issuing CA (subscribers) or the root (CAs).
        #[arg(long, default_value = "issuing")]
        role: String,
        /// Write DER here; without it, PEM goes to stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Certificate profiles.
    Profile {
        #[command(subcommand)]
        command: ProfileCommand,
    },
}

/// `certhall ca profile …`.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List profiles as JSON lines.
    List,
    /// Add a profile from a JSON file.
    Add {
        /// JSON file (same shape as `list` prints).
        #[arg(long)]
        file: PathBuf,
    },
    /// Change a profile: replace it from a file, or change single fields.
    Edit {
        /// Profile name.
        name: String,
        /// Replace with this JSON file.
        #[arg(long)]
        file: Option<PathBuf>,
        /// New validity in days.
        #[arg(long)]
        validity_days: Option<u32>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// New certificate policy OID ("" removes it).
        #[arg(long)]
        policy_oid: Option<String>,
    },
}

/// The OS user running the command, as the audit log's actor.
pub fn cli_actor() -> Actor {
    operator()
}

fn operator() -> Actor {
    Actor::Cli(
        std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into()),
    )
}

fn status_text(c: &certhall_store::ca::CertificateRow, now: certhall_domain::Timestamp) -> String {
    match &c.revocation {
        Some(r) => format!("revoked ({}, {})", r.reason, r.revoked_at.rfc3339()),
        None if c.not_after < now => "expired".into(),
        None => "valid".into(),
    }
}

/// Runs a `ca` subcommand.
pub async fn run(services: &Services, cmd: CaCommand) -> anyhow::Result<ExitCode> {
    services.ca_seed_profiles().await?;
    let now = services.clock.now();
    match cmd {
        CaCommand::Init {
            family,
            pkcs11_module,
            token_label,
        } => {
            let backend = match (pkcs11_module, token_label) {
                (Some(module), Some(token_label)) => KeyBackend::Pkcs11 {
                    module,
                    token_label,
                },
                (None, None) => KeyBackend::File,
                _ => bail!("--pkcs11-module and --token-label go together"),
            };
            let rows = services.ca_init(family, &backend, operator()).await?;
            for r in rows {
                println!(
                    "{} {}: {} (serial {}, SHA-256 {})",
                    r.family, r.role, r.subject, r.serial, r.sha256
                );
            }
        }
        CaCommand::Chain { family } => {
            for r in services.ca_chain(family).await? {
                print!("{}", to_pem(&r.der)?);
            }
        }
        CaCommand::Issue {
            family,
            profile,
            csr,
            subject,
            phone,
        } => {
            let csr_bytes =
                std::fs::read(&csr).with_context(|| format!("cannot read {}", csr.display()))?;
            let account = match phone {
                Some(p) => {
                    let phone = certhall_domain::Phone::parse(&p)
                        .map_err(|r| anyhow::anyhow!(r.message_zh()))?;
                    Some(
                        certhall_store::accounts::id_by_phone(&services.store, &phone)
                            .await?
                            .with_context(|| {
                                format!(
                                    "no account for phone {} (log in once first)",
                                    phone.masked()
                                )
                            })?,
                    )
                }
                None => None,
            };
            let row = services
                .ca_issue(
                    &IssueInput {
                        family,
                        profile: &profile,
                        csr: &csr_bytes,
                        subject: &subject,
                        account,
                        order_id: None,
                        predecessor: None,
                        ends_by: None,
                    },
                    operator(),
                )
                .await?;
            eprintln!("issued serial {} to {}", row.serial, row.subject);
            print!("{}", to_pem(&row.der)?);
        }
        CaCommand::Revoke {
            serial,
            reason,
            comment,
        } => {
            let Some(reason) = Reason::parse(&reason) else {
                let names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
                bail!("unknown reason {reason:?}; use one of {}", names.join(", "));
            };
            let row = services
                .ca_revoke(&serial, reason, operator(), comment.as_deref())
                .await?;
            println!(
                "revoked {} ({}): {}",
                row.serial,
                reason.as_str(),
                row.subject
            );
        }
        CaCommand::Show { serial } => {
            let c = services.ca_certificate(&serial).await?;
            println!("serial:      {}", c.serial);
            println!("subject:     {}", c.subject);
            println!("profile:     {}", c.profile);
            println!("key:         {}", c.key_algorithm);
            println!("not before:  {}", c.not_before.rfc3339());
            println!("not after:   {}", c.not_after.rfc3339());
            println!("issued at:   {}", c.issued_at.rfc3339());
            println!("sha256:      {}", c.sha256);
            println!(
                "account:     {}",
                c.account_id
                    .map(|a| a.0.to_string())
                    .unwrap_or_else(|| "-".into())
            );
            println!("status:      {}", status_text(&c, now));
            if let Some(r) = &c.revocation {
                println!("revoked by:  {}", r.actor);
            }
            print!("{}", to_pem(&c.der)?);
        }
        CaCommand::List { family, limit } => {
            for c in services.ca_certificates(family, limit).await? {
                println!(
                    "{}  {}  {}  {}  {}",
                    c.serial,
                    c.not_after.rfc3339(),
                    status_text(&c, now),
                    c.profile,
                    c.subject
                );
            }
        }
        CaCommand::Crl {
            family,
            role: which,
            out,
        } => {
            if which != role::ISSUING && which != role::ROOT {
                bail!("--role is issuing or root");
            }
            let issuer = services.ca_active(family, &which).await?;
            let crl = services.ca_crl(&issuer, false).await?;
            match out {
                Some(path) => {
                    std::fs::write(&path, &crl.der)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("CRL number {} written to {}", crl.number, path.display());
                }
                None => print!(
                    "{}",
                    der::pem::encode_string("X509 CRL", der::pem::LineEnding::LF, &crl.der)
                        .map_err(|e| anyhow::anyhow!(e.to_string()))?
                ),
            }
        }
        CaCommand::Profile { command } => match command {
            ProfileCommand::List => {
                for p in services.ca_profiles().await? {
                    println!("{}", serde_json::to_string(&p)?);
                }
            }
            ProfileCommand::Add { file } => {
                let p: Profile = serde_json::from_str(
                    &std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?,
                )
                .with_context(|| format!("{} is not a profile", file.display()))?;
                services.ca_save_profile(&p, false, operator()).await?;
                println!("profile {} added", p.name);
            }
            ProfileCommand::Edit {
                name,
                file,
                validity_days,
                description,
                policy_oid,
            } => {
                let mut p = match file {
                    Some(file) => serde_json::from_str::<Profile>(
                        &std::fs::read_to_string(&file)
                            .with_context(|| format!("cannot read {}", file.display()))?,
                    )
                    .with_context(|| format!("{} is not a profile", file.display()))?,
                    None => services.ca_profile(&name).await?,
                };
                if p.name != name {
                    bail!("the file describes profile {:?}, not {name:?}", p.name);
                }
                if let Some(v) = validity_days {
                    p.validity_days = v;
                }
                if let Some(d) = description {
                    p.description = d;
                }
                if let Some(o) = policy_oid {
                    p.policy_oid = if o.is_empty() { None } else { Some(o) };
                }
                services.ca_save_profile(&p, true, operator()).await?;
                println!("profile {} saved", p.name);
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}
