//! PIN 解锁 online (issue 12): after too many wrong PINs the UKey locks;
//! the applicant unlocks it from their own PC, without a counter.
//!
//! CertHall made the key (制证) and keeps its SO PIN sealed with the
//! server's key. To unlock:
//!
//! 1. The agent makes a one-time key pair; the page hands CertHall its
//!    public half with the SMS code ([`Services::release_so_pin`]).
//! 2. CertHall checks that the token is one it made for this account,
//!    chooses the next SO PIN (kept as pending), and seals both to the
//!    agent's key, bound to the token's serial — the page carries a box it
//!    cannot open.
//! 3. The agent opens it, sets the new user PIN the applicant typed (which
//!    never reaches CertHall) and rotates the SO PIN.
//! 4. The page reports the outcome ([`Services::finish_pin_unlock`]); on
//!    success the pending SO PIN becomes the token's.
//!
//! The token's SO PIN is always the stored one or the pending one: a
//! release while one is pending offers both and sets the pending one, so
//! no report lost on the way ever strands a token.

use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::message::{MessageKind, NewMessage};
use certhall_domain::production;
use certhall_domain::renewal::{
    unlock_transition, SoPinRelease, UnlockEvent, UnlockState, UNLOCK_STALE,
};
use certhall_domain::{AccountId, Refusal};
use certhall_store::messages;
use certhall_store::production::{self as pdb, UkeyRow};
use certhall_store::renewals as db;
pub use certhall_store::renewals::UnlockRow;
use rand::rngs::OsRng;
use serde_json::json;

use crate::auth::CodeSent;
use crate::production::SO_PIN_SEAL;
use crate::revocation::Confirmation;
use crate::{append_audit, RequestMeta, Result, ServiceError, Services};

/// The SO PINs sealed for the agent.
#[derive(Clone)]
pub struct SoPinReleased {
    /// The unlock, to report its outcome.
    pub unlock_id: i64,
    /// The box for the agent (base64url; see `certhall_ca::sealed`).
    pub sealed: String,
}

impl std::fmt::Debug for SoPinReleased {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoPinReleased")
            .field("unlock_id", &self.unlock_id)
            .finish_non_exhaustive()
    }
}

fn purpose(token: &str) -> String {
    format!("unlock:{token}")
}

impl Services {
    /// A key CertHall made for the account, by its token serial.
    async fn own_ukey(&self, account: AccountId, token_serial: &str) -> Result<UkeyRow> {
        pdb::ukeys_of_account(&self.store, account)
            .await?
            .into_iter()
            .find(|k| k.token_serial == token_serial.trim())
            .ok_or_else(|| Refusal::TokenNotOurs.into())
    }

    /// PIN 解锁: sends the code that confirms unlocking one of the
    /// account's keys.
    pub async fn send_unlock_code(
        &self,
        account: AccountId,
        token_serial: &str,
        meta: &RequestMeta,
    ) -> Result<CodeSent> {
        let ukey = self.own_ukey(account, token_serial).await?;
        let action = format!("UKey PIN 解锁（介质序列号{}）", ukey.token_serial);
        self.send_confirmation_code(account, &purpose(&ukey.token_serial), action, meta)
            .await
    }

    /// PIN 解锁, stage 1: releases the token's SO PIN (and the next one)
    /// sealed to the agent's one-time key `agent_key`, confirmed by the SMS
    /// code. A wrong code counts a try and releases nothing.
    pub async fn release_so_pin(
        &self,
        account: AccountId,
        token_serial: &str,
        agent_key: &str,
        code: &str,
        meta: &RequestMeta,
    ) -> Result<SoPinReleased> {
        let ukey = self.own_ukey(account, token_serial).await?;
        let token = ukey.token_serial.clone();
        // Refuse a malformed key before anything is consumed.
        certhall_ca::sealed::recipient_key(agent_key).map_err(|_| {
            Refusal::InvalidField("证书助手的一次性密钥格式不正确，请重新开始解锁。".into())
        })?;
        let phone = self.account_phone(account).await?;
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        if let Confirmation::Refused(r) = self
            .confirm_code(&mut tx, &phone, &purpose(&token), code)
            .await?
        {
            tx.commit().await?;
            return Err(r.into());
        }
        // Read under the transaction: a concurrent release or report has
        // committed or waits.
        let ukey = pdb::ukey_of_token(&mut tx, &token)
            .await?
            .ok_or(Refusal::TokenNotOurs)?;
        // An earlier release still in its agent key's lifetime may be
        // running in another page: refuse (nothing is written, the code
        // stays good). One never reported after that is over: this one
        // takes its place (the token has one of the offered SO PINs).
        if let Some(open) = db::open_unlock_of(&mut tx, &token).await? {
            if open.started_at.plus(UNLOCK_STALE) > now {
                return Err(Refusal::PinUnlockBusy.into());
            }
            unlock_transition(open.state, UnlockEvent::Abandon)?;
            db::finish_unlock(
                &mut tx,
                open.id,
                UnlockState::Abandoned,
                Some("被新的解锁取代"),
                now,
            )
            .await?;
        }
        let current = self.open_pin(SO_PIN_SEAL, &ukey.so_pin_sealed)?;
        let (so_pins, new_so_pin) = match &ukey.so_pin_pending {
            Some(pending) => {
                let pending = self.open_pin(SO_PIN_SEAL, pending)?;
                (vec![current, pending.clone()], pending)
            }
            None => {
                let next = production::so_pin(&mut OsRng);
                pdb::set_so_pin_pending(
                    &mut tx,
                    &token,
                    &self.secret.seal(SO_PIN_SEAL, next.as_bytes()),
                )
                .await?;
                (vec![current], next)
            }
        };
        let id = db::insert_unlock(&mut tx, account, &token, now)
            .await?
            .ok_or(Refusal::PinUnlockClosed(UnlockState::Released.label_zh()))?;
        let release = SoPinRelease {
            token: token.clone(),
            so_pins,
            new_so_pin,
        };
        let plain = serde_json::to_vec(&release)
            .map_err(|e| ServiceError::Internal(format!("so pin release: {e}")))?;
        let sealed = certhall_ca::sealed::seal(agent_key, token.as_bytes(), &plain)
            .map_err(|_| Refusal::InvalidField("证书助手的一次性密钥格式不正确。".into()))?;
        zeroize_vec(plain);
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Account(account),
            meta,
            AuditEvent::PinUnlockStep,
            json!({
                "unlock": id, "event": "released", "token": token,
                "so_pins_offered": release.so_pins.len(),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(SoPinReleased {
            unlock_id: id,
            sealed,
        })
    }

    /// PIN 解锁, stage 2: the page reports what the agent did. Success (the
    /// user PIN set, the SO PIN rotated) makes the pending SO PIN the
    /// token's; a failure keeps both.
    pub async fn finish_pin_unlock(
        &self,
        account: AccountId,
        unlock_id: i64,
        succeeded: bool,
        message: &str,
        meta: &RequestMeta,
    ) -> Result<UnlockRow> {
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        let unlock = db::get_unlock(&mut tx, unlock_id)
            .await?
            .filter(|u| u.account_id == account)
            .ok_or(Refusal::NotFound)?;
        let event = if succeeded {
            UnlockEvent::Complete
        } else {
            UnlockEvent::Fail
        };
        let to = unlock_transition(unlock.state, event)?;
        let why: String = message.trim().chars().take(200).collect();
        if !db::finish_unlock(
            &mut tx,
            unlock_id,
            to,
            (!succeeded).then_some(why.as_str()),
            now,
        )
        .await?
        {
            return Err(Refusal::PinUnlockClosed(unlock.state.label_zh()).into());
        }
        if succeeded {
            pdb::promote_so_pin(&mut tx, &unlock.token_serial).await?;
            messages::insert(
                &mut tx,
                account,
                &NewMessage {
                    kind: MessageKind::System,
                    title: "UKey PIN 已解锁".to_owned(),
                    body: format!(
                        "您的 UKey（介质序列号{}）已于{}在线解锁，请使用新设置的 PIN 码。\
                         如非本人操作，请立即联系客服。",
                        unlock.token_serial,
                        now.display_cst()
                    ),
                    order_id: None,
                },
                now,
            )
            .await?;
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Account(account),
            meta,
            AuditEvent::PinUnlockStep,
            json!({ "unlock": unlock_id, "event": to.as_str(), "token": unlock.token_serial, "why": (!succeeded).then_some(why) }),
        )
        .await?;
        let row = db::get_unlock(&mut tx, unlock_id)
            .await?
            .ok_or(Refusal::NotFound)?;
        tx.commit().await?;
        Ok(row)
    }

    /// The account's keys CertHall made (for 介质查询 on the unlock page).
    pub async fn my_ukeys(&self, account: AccountId) -> Result<Vec<UkeyRow>> {
        Ok(pdb::ukeys_of_account(&self.store, account).await?)
    }
}

fn zeroize_vec(mut v: Vec<u8>) {
    v.fill(0);
    std::hint::black_box(&v);
}
