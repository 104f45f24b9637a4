//! 制证 (step 8): a producer writes a paid order's certificate onto a
//! UKey through the key agent on their PC.
//!
//! The producer's page drives the agent; CertHall decides and records. One
//! call per stage, each checked against the attempt's state:
//!
//! 1. [`Services::production_start`]: the producer presents a token (blank,
//!    or one an earlier attempt of this order initialised); CertHall opens
//!    an attempt (one per order: the database's unique index picks the
//!    winner between two producers) and hands the page the PINs to set.
//! 2. [`Services::production_token_initialized`]: the token is initialised
//!    with them (its serial recorded: from now on the PINs are the token's).
//! 3. [`Services::production_csr`]: the key pair was generated in the token;
//!    CertHall issues the certificate from the order's verified data with
//!    the application's profile (never the request's subject).
//! 4. [`Services::production_written`]: the page read the certificate back
//!    from the token; equal bytes complete the attempt — the PIN goes to
//!    the applicant by SMS, a unit leaves stock, the order is 已制证.
//!
//! Any failure ([`Services::production_failed`], or an attempt left open
//! for [`ATTEMPT_STALE`]) ends the attempt and revokes a certificate it
//! issued (`cessationOfOperation`); the order stays 制证中 for the next one.

use std::time::Duration;

use certhall_ca::crl::Reason;
use certhall_ca::{Family, KeyAlgorithm};
use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::checkout::KeyColour;
use certhall_domain::operator::may_review;
use certhall_domain::order::{OrderEvent, OrderState};
use certhall_domain::production::{
    self, attempt_transition, AttemptEvent, AttemptState, FailedStage, KeyKind, ATTEMPT_STALE,
};
use certhall_domain::{OrderId, Refusal, Timestamp};
use certhall_notify::{Sms, SmsTemplate};
use certhall_store::ca::CertificateRow;
use certhall_store::checkouts::{self, CheckoutRow};
use certhall_store::key_models::{self, StockMove};
use certhall_store::orders::{self, OrderRow};
use certhall_store::production::{self as db, AttemptChange, NewAttempt};
// The rows the pages show, re-exported so the web names no store type.
pub use certhall_store::production::{AttemptRow, UkeyRow};
pub use certhall_store::shipments::{RouteRow, ShipmentRow};
use certhall_store::{accounts, LockKey};
use rand::rngs::OsRng;
use rand::seq::SliceRandom;
use serde_json::json;

use crate::ca::IssueInput;
use crate::counter::OperatorInfo;
use crate::orders::OrderActor;
use crate::{append_audit, RequestMeta, Result, ServiceError, Services};

/// Seal labels: a value sealed for one never opens as the other.
const USER_PIN_SEAL: &str = "token-user-pin";
/// See [`USER_PIN_SEAL`].
pub(crate) const SO_PIN_SEAL: &str = "token-so-pin";

/// The job's lease name.
pub const PRODUCTION_JOB: &str = "production";

/// What the order says about the certificate to make.
#[derive(Debug, Clone)]
pub struct OrderFacts {
    /// 企业名称 (step 3, checked by the counter).
    pub enterprise: String,
    /// 统一社会信用代码.
    pub uscc: String,
    /// 经办人 (step 1).
    pub applicant: String,
    /// The application's name.
    pub application: String,
    /// The application's profile.
    pub profile: String,
    /// The key pair to generate.
    pub key_kind: KeyKind,
}

/// An order at the production desk.
#[derive(Debug, Clone)]
pub struct ProductionItem {
    /// The order.
    pub order: OrderRow,
    /// What to make.
    pub facts: OrderFacts,
    /// Step 6 (model, address, invoice).
    pub checkout: Option<CheckoutRow>,
    /// The attempt under way, if any.
    pub open_attempt: Option<AttemptRow>,
}

/// Everything the production page shows about one order.
#[derive(Debug, Clone)]
pub struct ProductionDetail {
    /// The order and what to make.
    pub item: ProductionItem,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptRow>,
    /// The key made, once made.
    pub ukey: Option<UkeyRow>,
    /// Its certificate.
    pub certificate: Option<CertificateRow>,
    /// Shipments, oldest first, with their routes.
    pub shipments: Vec<crate::shipping::ShipmentView>,
    /// Units of the model on hand, per colour.
    pub on_hand: Vec<(KeyColour, i64)>,
}

/// The token the producer plugged in, as the agent listed it.
#[derive(Debug, Clone)]
pub struct TokenPresented {
    /// Its serial number.
    pub serial: String,
    /// Whether it is initialised already.
    pub initialized: bool,
}

/// An attempt opened: what the page tells the agent. `Debug` masks the
/// PINs.
#[derive(Clone)]
pub struct StartedAttempt {
    /// The attempt.
    pub attempt: AttemptRow,
    /// The user PIN to set (or the token's, on a retry).
    pub pin: String,
    /// The SO PIN to set; only for a blank token.
    pub so_pin: Option<String>,
    /// The token must be initialised first.
    pub needs_init: bool,
}

impl std::fmt::Debug for StartedAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartedAttempt")
            .field("attempt", &self.attempt.id)
            .field("needs_init", &self.needs_init)
            .finish_non_exhaustive()
    }
}

/// A certificate issued for the key in the token.
#[derive(Debug, Clone)]
pub struct IssuedForKey {
    /// Its serial.
    pub serial: String,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The chain (issuing CA, root), PEM.
    pub chain_pem: Vec<String>,
}

/// The CA hierarchy of a key kind.
pub fn family_of(kind: KeyKind) -> Family {
    match kind {
        KeyKind::Sm2 => Family::Sm2,
        KeyKind::P256 => Family::P256,
        KeyKind::Rsa2048 => Family::Rsa,
    }
}

fn key_matches(kind: KeyKind, alg: KeyAlgorithm) -> bool {
    matches!(
        (kind, alg),
        (KeyKind::Sm2, KeyAlgorithm::Sm2)
            | (KeyKind::P256, KeyAlgorithm::EcP256)
            | (KeyKind::Rsa2048, KeyAlgorithm::Rsa(2048))
    )
}

impl Services {
    /// What the order's verified data says about its certificate.
    pub async fn order_facts(&self, order_id: OrderId) -> Result<OrderFacts> {
        let steps = self.steps_of(order_id).await?;
        let app = steps.application.clone().unwrap_or_default();
        let key_kind = match app.key_kind {
            Some(k) => k,
            // Orders from before applications named their key kind.
            None => self
                .application(&app.code)
                .await
                .map(|a| a.key_kind)
                .unwrap_or(KeyKind::Sm2),
        };
        let enterprise = steps.enterprise.unwrap_or_default();
        Ok(OrderFacts {
            enterprise: enterprise.name,
            uscc: enterprise.uscc,
            applicant: steps.identity.map(|i| i.name).unwrap_or_default(),
            application: app.name,
            profile: app.profile,
            key_kind,
        })
    }

    async fn production_item(&self, order: OrderRow) -> Result<ProductionItem> {
        let facts = self.order_facts(order.id).await?;
        let checkout = checkouts::get(&self.store, order.id.0).await?;
        let open_attempt = db::of_order(&self.store, order.id.0)
            .await?
            .into_iter()
            .find(|a| a.state.is_open());
        Ok(ProductionItem {
            order,
            facts,
            checkout,
            open_attempt,
        })
    }

    /// The production desk: paid orders waiting for their key and orders
    /// in production, oldest first; then produced ones waiting to ship.
    pub async fn production_queue(&self, who: &OperatorInfo) -> Result<Vec<ProductionItem>> {
        require_producer(who)?;
        let mut out = Vec::new();
        for state in [
            OrderState::Paid,
            OrderState::InProduction,
            OrderState::Produced,
        ] {
            for order in orders::in_state(&self.store, state.to_db().0, 200).await? {
                out.push(self.production_item(order).await?);
            }
        }
        Ok(out)
    }

    /// One order at the production desk.
    pub async fn production_detail(
        &self,
        who: &OperatorInfo,
        order_id: OrderId,
    ) -> Result<ProductionDetail> {
        require_producer(who)?;
        let order = orders::get(&self.store, order_id)
            .await?
            .ok_or(Refusal::NotFound)?;
        let item = self.production_item(order).await?;
        let ukey = db::ukey_of_order(&self.store, order_id.0).await?;
        let certificate = match &ukey {
            Some(k) => certhall_store::ca::certificate(&self.store, &k.certificate_serial).await?,
            None => None,
        };
        let on_hand = match &item.checkout {
            Some(c) => key_models::stock(&self.store, &c.key_model).await?.on_hand,
            None => Vec::new(),
        };
        Ok(ProductionDetail {
            attempts: db::of_order(&self.store, order_id.0).await?,
            shipments: self.shipment_views(order_id).await?,
            item,
            ukey,
            certificate,
            on_hand,
        })
    }

    /// Stage 1: opens an attempt on the token the producer plugged in.
    pub async fn production_start(
        &self,
        who: &OperatorInfo,
        order_id: OrderId,
        token: &TokenPresented,
        meta: &RequestMeta,
    ) -> Result<StartedAttempt> {
        require_producer(who)?;
        let order = orders::get(&self.store, order_id)
            .await?
            .ok_or(Refusal::NotFound)?;
        if !matches!(order.state, OrderState::Paid | OrderState::InProduction) {
            return Err(Refusal::OrderStateConflict(order.state.label_zh()).into());
        }
        let account = accounts::get(&self.store, order.account_id)
            .await?
            .ok_or(Refusal::NotFound)?;
        may_review(&who.phone, &account.phone)?;
        let facts = self.order_facts(order_id).await?;
        let label = production::token_label(order_id.0, &facts.enterprise);
        let serial = token.serial.trim();
        if serial.is_empty() || serial.len() > 64 {
            return Err(Refusal::MissingField("UKey 序列号").into());
        }

        let mut tx = self.store.begin_write().await?;
        // A token already initialised is accepted only if this order's
        // production initialised it (a retry): its PINs are known.
        let (pin_sealed, so_pin_sealed) = if token.initialized {
            match db::token_owner(&mut tx, serial).await? {
                Some(owner) if owner == order_id.0 => {
                    let earlier = db::of_order_tx(&mut tx, order_id.0)
                        .await?
                        .into_iter()
                        .rev()
                        .find(|a| a.token_initialized && a.token_serial.as_deref() == Some(serial))
                        .ok_or(Refusal::TokenNotBlank)?;
                    (earlier.pin_sealed, earlier.so_pin_sealed)
                }
                Some(owner) => return Err(Refusal::TokenInUse(owner).into()),
                None => return Err(Refusal::TokenNotBlank.into()),
            }
        } else {
            // A blank token may still be claimed: another order's attempt
            // initialised it, and it was wiped since. Refused before the
            // agent writes anything to it.
            if let Some(owner) = db::token_owner(&mut tx, serial).await? {
                if owner != order_id.0 {
                    return Err(Refusal::TokenInUse(owner).into());
                }
            }
            (
                self.secret
                    .seal(USER_PIN_SEAL, production::user_pin(&mut OsRng).as_bytes()),
                self.secret
                    .seal(SO_PIN_SEAL, production::so_pin(&mut OsRng).as_bytes()),
            )
        };
        if pin_sealed.is_empty() {
            // The earlier attempt completed and wiped the PIN: that token
            // carries a finished key.
            return Err(Refusal::TokenInUse(order_id.0).into());
        }
        // The producer's own open attempt (its page lost the answer, or was
        // closed) ends here: starting again is their way of giving it up.
        let open = db::of_order_tx(&mut tx, order_id.0)
            .await?
            .into_iter()
            .find(|a| a.state.is_open());
        if let Some(open) = open {
            if open.operator_id != who.id {
                return Err(Refusal::ProductionBusy(open.operator_name).into());
            }
            drop(tx);
            let stage = if open.state == AttemptState::Issued {
                FailedStage::Write
            } else {
                FailedStage::Init
            };
            match self
                .end_attempt(
                    &open,
                    AttemptEvent::Fail,
                    Actor::Operator(who.id),
                    Ending {
                        stage,
                        message: "制证人重新开始制证",
                        unchanged_since: None,
                    },
                    meta,
                )
                .await
            {
                Ok(_) | Err(ServiceError::Refused(Refusal::ProductionAttemptClosed(_))) => {}
                Err(e) => return Err(e),
            }
            return Box::pin(self.production_start(who, order_id, token, meta)).await;
        }
        let now = self.clock.now();
        let Some(id) = db::insert(
            &mut tx,
            &NewAttempt {
                order_id: order_id.0,
                operator_id: who.id,
                operator_name: &who.username,
                key_kind: facts.key_kind,
                token_label: &label,
                token_serial: token.initialized.then_some(serial),
                token_initialized: token.initialized,
                pin_sealed: &pin_sealed,
                so_pin_sealed: &so_pin_sealed,
            },
            now,
        )
        .await?
        else {
            // Another producer's attempt won the race for the index.
            let busy = db::of_order_tx(&mut tx, order_id.0)
                .await?
                .into_iter()
                .find(|a| a.state.is_open())
                .map(|a| a.operator_name)
                .unwrap_or_default();
            return Err(Refusal::ProductionBusy(busy).into());
        };
        if order.state == OrderState::Paid {
            self.order_event_tx(
                &mut tx,
                OrderActor::Operator(who.id),
                order_id,
                Some(order.version),
                OrderEvent::StartProduction,
                None,
                meta,
            )
            .await?;
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Operator(who.id),
            meta,
            AuditEvent::ProductionAttempt,
            json!({
                "order": order_id, "attempt": id, "event": "started",
                "token": serial, "token_initialized": token.initialized,
                "key_kind": facts.key_kind.as_str(),
            }),
        )
        .await?;
        let attempt = db::get_tx(&mut tx, id).await?.ok_or(Refusal::NotFound)?;
        tx.commit().await?;
        let pin = self.open_pin(USER_PIN_SEAL, &attempt.pin_sealed)?;
        let so_pin = if token.initialized {
            None
        } else {
            Some(self.open_pin(SO_PIN_SEAL, &attempt.so_pin_sealed)?)
        };
        Ok(StartedAttempt {
            attempt,
            pin,
            so_pin,
            needs_init: !token.initialized,
        })
    }

    /// The refusal for an attempt that is no longer where the caller
    /// thought, naming where it is.
    async fn closed(&self, attempt_id: i64) -> ServiceError {
        match db::get(&self.store, attempt_id).await {
            Ok(Some(a)) => Refusal::ProductionAttemptClosed(a.state.label_zh()).into(),
            Ok(None) => Refusal::NotFound.into(),
            Err(e) => e.into(),
        }
    }

    pub(crate) fn open_pin(&self, label: &str, sealed: &str) -> Result<String> {
        self.secret
            .open(label, sealed)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                ServiceError::Internal(format!(
                    "a sealed {label} does not open: was the server secret changed?"
                ))
            })
    }

    /// The producer's own open attempt (others' attempts are not theirs
    /// to continue).
    async fn own_attempt(&self, who: &OperatorInfo, attempt_id: i64) -> Result<AttemptRow> {
        require_producer(who)?;
        match db::get(&self.store, attempt_id).await? {
            Some(a) if a.operator_id == who.id => Ok(a),
            _ => Err(Refusal::NotFound.into()),
        }
    }

    /// Stage 2: the token was initialised with the attempt's PINs; `serial`
    /// is its serial number now (some modules assign it at initialisation).
    pub async fn production_token_initialized(
        &self,
        who: &OperatorInfo,
        attempt_id: i64,
        serial: &str,
        meta: &RequestMeta,
    ) -> Result<AttemptRow> {
        let attempt = self.own_attempt(who, attempt_id).await?;
        if attempt.state != AttemptState::Started || attempt.token_initialized {
            return Err(Refusal::ProductionAttemptClosed(attempt.state.label_zh()).into());
        }
        let serial = serial.trim();
        if serial.is_empty() || serial.len() > 64 {
            return Err(Refusal::MissingField("UKey 序列号").into());
        }
        let mut tx = self.store.begin_write().await?;
        if let Some(owner) = db::token_owner(&mut tx, serial).await? {
            if owner != attempt.order_id {
                return Err(Refusal::TokenInUse(owner).into());
            }
        }
        let moved = db::update(
            &mut tx,
            attempt_id,
            AttemptState::Started,
            AttemptState::Started,
            &AttemptChange {
                token_serial: Some(serial),
                token_initialized: Some(true),
                ..AttemptChange::default()
            },
            self.clock.now(),
        )
        .await?;
        if !moved {
            drop(tx);
            return Err(self.closed(attempt_id).await);
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Operator(who.id),
            meta,
            AuditEvent::ProductionAttempt,
            json!({ "order": attempt.order_id, "attempt": attempt_id, "event": "token_initialized", "token": serial }),
        )
        .await?;
        let row = db::get_tx(&mut tx, attempt_id)
            .await?
            .ok_or(Refusal::NotFound)?;
        tx.commit().await?;
        Ok(row)
    }

    /// Stage 3: the key pair is in the token; issues its certificate.
    pub async fn production_csr(
        &self,
        who: &OperatorInfo,
        attempt_id: i64,
        csr: &[u8],
        key_id: &str,
        meta: &RequestMeta,
    ) -> Result<IssuedForKey> {
        let attempt = self.own_attempt(who, attempt_id).await?;
        attempt_transition(attempt.state, AttemptEvent::Issue)?;
        if !attempt.token_initialized || attempt.token_serial.is_none() {
            return Err(Refusal::OrderStepOutOfOrder(8).into());
        }
        let key_id = key_id.trim();
        if key_id.is_empty() || key_id.len() > 128 || !key_id.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(Refusal::MissingField("密钥标识").into());
        }
        let verified =
            certhall_ca::csr::verify(csr).map_err(|e| Refusal::CaRequestRefused(e.to_string()))?;
        if !key_matches(attempt.key_kind, verified.key) {
            return Err(Refusal::WrongKeyAlgorithm(attempt.key_kind.label_zh()).into());
        }
        let order = orders::get(&self.store, OrderId(attempt.order_id))
            .await?
            .ok_or(Refusal::NotFound)?;
        let facts = self.order_facts(order.id).await?;
        let subject =
            production::certificate_subject(&facts.enterprise, &facts.uscc, &facts.applicant);
        let family = family_of(attempt.key_kind);
        let cert = self
            .ca_issue(
                &IssueInput {
                    family,
                    profile: &facts.profile,
                    csr,
                    subject: &subject,
                    account: Some(order.account_id),
                    order_id: Some(order.id.0),
                    predecessor: None,
                    ends_by: None,
                },
                Actor::Operator(who.id),
            )
            .await?;
        let mut tx = self.store.begin_write().await?;
        let moved = db::update(
            &mut tx,
            attempt_id,
            AttemptState::Started,
            AttemptState::Issued,
            &AttemptChange {
                key_id: Some(key_id),
                certificate_serial: Some(&cert.serial),
                ..AttemptChange::default()
            },
            self.clock.now(),
        )
        .await?;
        if !moved {
            drop(tx);
            // The attempt ended meanwhile (failed, or the job gave up on
            // it): the certificate must not outlive it.
            self.revoke_unused_certificate(&cert.serial, "制证已结束，证书作废")
                .await?;
            return Err(self.closed(attempt_id).await);
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Operator(who.id),
            meta,
            AuditEvent::ProductionAttempt,
            json!({
                "order": order.id, "attempt": attempt_id, "event": "issued",
                "certificate": cert.serial, "key_id": key_id,
            }),
        )
        .await?;
        tx.commit().await?;
        self.issued_for_key(family, cert).await
    }

    /// A certificate issued for a key in a token, with its chain, as the
    /// agent writes them (PEM).
    pub(crate) async fn issued_for_key(
        &self,
        family: Family,
        cert: CertificateRow,
    ) -> Result<IssuedForKey> {
        let chain = self.ca_chain(family).await?;
        let pem = |der: &[u8]| certhall_ca::issue::to_pem(der).map_err(ServiceError::Ca);
        Ok(IssuedForKey {
            certificate_pem: pem(&cert.der)?,
            chain_pem: chain.iter().map(|a| pem(&a.der)).collect::<Result<_>>()?,
            serial: cert.serial,
        })
    }

    /// Stage 4: the certificate read back from the token. Equal bytes
    /// complete the production: the PIN goes to the applicant, a unit of
    /// the model leaves stock, the key is recorded and the order is
    /// 已制证 — all or nothing.
    pub async fn production_written(
        &self,
        who: &OperatorInfo,
        attempt_id: i64,
        read_back: &[u8],
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        let attempt = self.own_attempt(who, attempt_id).await?;
        attempt_transition(attempt.state, AttemptEvent::Confirm)?;
        let serial = attempt.certificate_serial.clone().unwrap_or_default();
        let cert = self.ca_certificate(&serial).await?;
        if cert.der != read_back {
            self.end_attempt(
                &attempt,
                AttemptEvent::Fail,
                Actor::Operator(who.id),
                Ending {
                    stage: FailedStage::ReadBack,
                    message: "从 UKey 读回的证书与签发的证书不一致",
                    unchanged_since: None,
                },
                meta,
            )
            .await?;
            return Err(Refusal::ReadBackMismatch.into());
        }
        let order = orders::get(&self.store, OrderId(attempt.order_id))
            .await?
            .ok_or(Refusal::NotFound)?;
        let checkout = checkouts::get(&self.store, order.id.0)
            .await?
            .ok_or(Refusal::CheckoutNotOpen(order.state.label_zh()))?;
        let in_stock = |on_hand: &[(KeyColour, i64)]| -> Vec<KeyColour> {
            on_hand
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(c, _)| *c)
                .collect()
        };
        if in_stock(
            &key_models::stock(&self.store, &checkout.key_model)
                .await?
                .on_hand,
        )
        .is_empty()
        {
            return Err(Refusal::StockEmpty(checkout.key_model_name.clone()).into());
        }
        let account = accounts::get(&self.store, order.account_id)
            .await?
            .ok_or(Refusal::NotFound)?;
        let pin = self.open_pin(USER_PIN_SEAL, &attempt.pin_sealed)?;
        // Touch the attempt first: the job leaves an attempt alone that
        // changed within the stale window, so it cannot be abandoned while
        // the SMS is on its way.
        let mut tx = self.store.begin_write().await?;
        let touched = db::update(
            &mut tx,
            attempt_id,
            AttemptState::Issued,
            AttemptState::Issued,
            &AttemptChange::default(),
            self.clock.now(),
        )
        .await?;
        tx.commit().await?;
        if !touched {
            return Err(self.closed(attempt_id).await);
        }
        // The SMS goes before the commit: if the commit fails the producer
        // confirms again (the page offers 重新确认) and the same PIN is sent
        // again; the other way round a failed SMS would lose the PIN with
        // the key made.
        self.sms
            .send(&Sms {
                to: account.phone.clone(),
                template: SmsTemplate::KeyPin {
                    order: order.id.0,
                    pin,
                },
            })
            .await?;

        let now = self.clock.now();
        let actor = Actor::Operator(who.id);
        let mut tx = self.store.begin_write().await?;
        tx.lock(LockKey::KeyModel(&checkout.key_model)).await?;
        let stock = key_models::stock_tx(&mut tx, &checkout.key_model).await?;
        let colour = *in_stock(&stock.on_hand)
            .choose(&mut OsRng)
            .ok_or_else(|| Refusal::StockEmpty(checkout.key_model_name.clone()))?;
        let actor_text = actor.to_string();
        if !key_models::apply_move(
            &mut tx,
            &StockMove {
                model: &checkout.key_model,
                colour,
                delta: -1,
                reason: "制证出库",
                actor: &actor_text,
            },
            now,
        )
        .await?
        {
            return Err(Refusal::StockEmpty(checkout.key_model_name.clone()).into());
        }
        checkouts::set_reserved(&mut tx, order.id.0, false).await?;
        if !db::update(
            &mut tx,
            attempt_id,
            AttemptState::Issued,
            AttemptState::Completed,
            &AttemptChange {
                wipe_pin: true,
                finished: true,
                ..AttemptChange::default()
            },
            now,
        )
        .await?
        {
            drop(tx);
            return Err(self.closed(attempt_id).await);
        }
        // No PIN of this order is kept any more (the SO PIN lives on in
        // `ukeys`).
        db::wipe_pins_of_order(&mut tx, order.id.0).await?;
        let token_serial = attempt.token_serial.clone().unwrap_or_default();
        if !db::insert_ukey(
            &mut tx,
            &UkeyRow {
                token_serial: token_serial.clone(),
                order_id: order.id.0,
                account_id: order.account_id,
                key_model: checkout.key_model.clone(),
                key_model_name: checkout.key_model_name.clone(),
                colour: colour.as_str().to_owned(),
                certificate_serial: serial.clone(),
                so_pin_sealed: attempt.so_pin_sealed.clone(),
                so_pin_pending: None,
                attempt_id,
                produced_at: now,
            },
        )
        .await?
        {
            return Err(Refusal::TokenInUse(order.id.0).into());
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            actor.clone(),
            meta,
            AuditEvent::KeyStockChanged,
            json!({ "model": checkout.key_model, "colour": colour.as_str(), "delta": -1, "reason": "制证出库", "order": order.id }),
        )
        .await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            actor,
            meta,
            AuditEvent::KeyProduced,
            json!({
                "order": order.id, "attempt": attempt_id, "token": token_serial,
                "certificate": serial, "model": checkout.key_model, "colour": colour.as_str(),
                "pin_sms_to": account.phone.masked(),
            }),
        )
        .await?;
        let order = self
            .order_event_tx(
                &mut tx,
                OrderActor::Operator(who.id),
                order.id,
                None,
                OrderEvent::Produced,
                None,
                meta,
            )
            .await?;
        tx.commit().await?;
        Ok(order)
    }

    /// The producer's page reports a failure at `stage` (the agent's or
    /// CertHall's message as shown). The attempt ends; a certificate it
    /// issued is revoked.
    pub async fn production_failed(
        &self,
        who: &OperatorInfo,
        attempt_id: i64,
        stage: FailedStage,
        message: &str,
        meta: &RequestMeta,
    ) -> Result<AttemptRow> {
        let attempt = self.own_attempt(who, attempt_id).await?;
        if !attempt.state.is_open() {
            // Reported twice, or the attempt ended otherwise (completed, or
            // abandoned by the job): the caller reads where it is.
            return Ok(attempt);
        }
        let message: String = message
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        self.end_attempt(
            &attempt,
            AttemptEvent::Fail,
            Actor::Operator(who.id),
            Ending {
                stage,
                message: &message,
                unchanged_since: None,
            },
            meta,
        )
        .await
    }

    async fn end_attempt(
        &self,
        attempt: &AttemptRow,
        event: AttemptEvent,
        actor: Actor,
        ending: Ending<'_>,
        meta: &RequestMeta,
    ) -> Result<AttemptRow> {
        let Ending {
            stage,
            message,
            unchanged_since,
        } = ending;
        let to = attempt_transition(attempt.state, event)?;
        let failure = format!("{}：{message}", stage.label_zh());
        let mut tx = self.store.begin_write().await?;
        if !db::update(
            &mut tx,
            attempt.id,
            attempt.state,
            to,
            &AttemptChange {
                failed_stage: Some(stage.as_str()),
                failure: Some(&failure),
                finished: true,
                unchanged_since,
                ..AttemptChange::default()
            },
            self.clock.now(),
        )
        .await?
        {
            drop(tx);
            return Err(self.closed(attempt.id).await);
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            actor,
            meta,
            AuditEvent::ProductionAttempt,
            json!({
                "order": attempt.order_id, "attempt": attempt.id, "event": to.as_str(),
                "stage": stage.as_str(), "failure": failure,
                "certificate": attempt.certificate_serial,
            }),
        )
        .await?;
        let row = db::get_tx(&mut tx, attempt.id)
            .await?
            .ok_or(Refusal::NotFound)?;
        tx.commit().await?;
        if let Some(serial) = &attempt.certificate_serial {
            // If this fails (or the process dies here), the job finds the
            // certificate on no key and revokes it.
            self.revoke_unused_certificate(serial, &failure).await?;
        }
        Ok(row)
    }

    /// Revokes a certificate nobody will use (the production or renewal it
    /// was issued for ended first); one already revoked is fine.
    pub(crate) async fn revoke_unused_certificate(&self, serial: &str, why: &str) -> Result<()> {
        match self
            .ca_revoke(
                serial,
                Reason::CessationOfOperation,
                Actor::System,
                Some(why),
            )
            .await
        {
            Ok(_) | Err(ServiceError::Refused(Refusal::AlreadyRevoked)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Abandons attempts left open for [`ATTEMPT_STALE`] and revokes
    /// certificates issued for production that ended on no key; abandons
    /// stale renewals ([`Services::sweep_renewals`]).
    pub async fn sweep_production(&self) -> Result<ProductionSweep> {
        let now = self.clock.now();
        let before = now.minus(ATTEMPT_STALE);
        let mut summary = ProductionSweep::default();
        for attempt in db::stale(&self.store, before).await? {
            match self
                .end_attempt(
                    &attempt,
                    AttemptEvent::Abandon,
                    Actor::System,
                    Ending {
                        stage: if attempt.state == AttemptState::Issued {
                            FailedStage::Write
                        } else {
                            FailedStage::Keygen
                        },
                        message: "制证页面超过 15 分钟未完成，已作废",
                        unchanged_since: Some(before),
                    },
                    &RequestMeta::default(),
                )
                .await
            {
                Ok(_) => summary.abandoned += 1,
                // Finished by its producer meanwhile.
                Err(ServiceError::Refused(Refusal::ProductionAttemptClosed(_))) => {}
                Err(e) => return Err(e),
            }
        }
        for serial in db::orphaned_certificates(&self.store, before).await? {
            self.revoke_unused_certificate(&serial, "制证未完成的证书，已作废")
                .await?;
            summary.revoked += 1;
        }
        summary.renewals_abandoned = self.sweep_renewals().await?;
        Ok(summary)
    }

    /// Runs [`Services::sweep_production`] for the current tick of
    /// `interval` unless another process has (a database lease).
    pub async fn run_production_job(
        &self,
        holder: &str,
        interval: Duration,
    ) -> Result<Option<ProductionSweep>> {
        self.run_leased(
            PRODUCTION_JOB,
            holder,
            interval,
            self.sweep_production(),
            |s| {
                format!(
                    "abandoned {} revoked {} renewals abandoned {}",
                    s.abandoned, s.revoked, s.renewals_abandoned
                )
            },
        )
        .await
    }
}

/// How an attempt ends: where, why, and (for the job) only if untouched
/// since when.
struct Ending<'a> {
    stage: FailedStage,
    message: &'a str,
    unchanged_since: Option<Timestamp>,
}

/// What one production sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProductionSweep {
    /// Attempts abandoned.
    pub abandoned: u32,
    /// Orphaned certificates revoked.
    pub revoked: u32,
    /// Renewals left open too long, abandoned (with their new
    /// certificates revoked).
    pub renewals_abandoned: u32,
}

fn require_producer(who: &OperatorInfo) -> Result<()> {
    if who.producer {
        Ok(())
    } else {
        Err(Refusal::NotProducer.into())
    }
}
