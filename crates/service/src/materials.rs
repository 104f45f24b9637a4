//! Images on an order and step 5's submission (manual 2.3.1 第三步 license,
//! 第五步 materials and authorization).
//!
//! Every image is checked by content and re-encoded ([`certhall_upload`])
//! before it is stored; a refused upload stores nothing and leaves the
//! order as it was, and an accepted one is kept whatever later happens to
//! the step (a failed submission never loses an image).
//!
//! Submission by authorization letter puts the order in the counter's
//! queue; by legal-rep SMS it sends the legal representative a request and
//! waits for the reply ([`crate::sms_inbound`]) or the 72 hours
//! ([`Services::expire_authorizations`]).

use std::time::Duration;

use certhall_domain::audit::{Actor, AuditEvent};
use certhall_domain::materials::{
    check_submission, AuthorizationOutcome, LegalRepContact, MaterialKind, AUTHORIZATION_WINDOW,
};
use certhall_domain::order::{Authorization, OrderEvent, OrderState};
use certhall_domain::steps::{MaterialsStep, StepData};
pub use certhall_domain::wizard::LicenseReading;
use certhall_domain::wizard::{vet_license_reading, EnterpriseInput, LicenseVerdict};
use certhall_domain::{AccountId, OrderId, Phone, Refusal};
use certhall_notify::{Sms, SmsTemplate};
use certhall_store::materials::{
    self, AuthorizationRow, MaterialInfo, NewAuthorization, NewMaterial,
};
use certhall_store::orders::{self, OrderRow};
use certhall_store::LockKey;
use certhall_upload::{sanitize_image, CleanImage, ImageRules};
use serde_json::json;

use crate::counter::OperatorInfo;
use crate::orders::OrderActor;
use crate::{append_audit, RequestMeta, Result, ServiceError, Services};

pub use certhall_domain::wizard::LicenseReader;

/// What a stored license's reading fills in step 3, and the fields it
/// marks 请核对: the reading as the applicant was shown it at upload,
/// vetted again, so a misread code is not filled on a reload either.
/// `None` when the image was not read or is not a license.
pub fn shown_reading(info: &MaterialInfo) -> Option<(EnterpriseInput, Vec<String>)> {
    match vet_license_reading(info.ocr.clone()?) {
        LicenseVerdict::License { fields, unsure, .. } => Some((*fields, unsure)),
        LicenseVerdict::NotALicense => None,
    }
}

/// Authorization SMS per order in 24 hours (each one reaches a third
/// party's phone: resubmitting must not become a way to spam them).
const AUTH_SMS_PER_ORDER_PER_DAY: usize = 3;
/// Authorization SMS to one phone in 24 hours, across orders.
const AUTH_SMS_PER_PHONE_PER_DAY: usize = 10;
const DAY: Duration = Duration::from_secs(24 * 3600);

/// What reading a license gave.
#[derive(Debug, Clone)]
pub struct LicenseRead {
    /// The stored image.
    pub material: MaterialInfo,
    /// The fields read, when OCR is available and worked (a field the
    /// reading could not vouch for left empty).
    pub fields: Option<EnterpriseInput>,
    /// What to check by hand, in Chinese (a misread code left empty …).
    pub warnings: Vec<String>,
    /// The fields to mark 请核对 (names as in [`EnterpriseInput`]).
    pub unsure: Vec<String>,
    /// False when this CertHall has no OCR models (the user types).
    pub ocr_available: bool,
}

/// A license uploaded to another of the account's orders.
#[derive(Debug, Clone)]
pub struct EarlierLicense {
    /// That order.
    pub order: OrderId,
    /// Its enterprise, as saved at its step 3 (empty if not yet).
    pub enterprise: String,
    /// When the license was uploaded.
    pub uploaded_at: certhall_domain::Timestamp,
}

/// Step 5 as submitted.
#[derive(Debug, Clone, Default)]
pub struct MaterialsSubmission {
    /// `legal_rep_sms` or `letter`.
    pub authorization: String,
    /// Legal representative (SMS route).
    pub legal_rep_name: String,
    /// Their resident ID number.
    pub legal_rep_id_number: String,
    /// Their phone.
    pub legal_rep_phone: String,
}

impl Services {
    /// Stores an image of `kind` on the applicant's order, replacing the
    /// previous one. Refused (nothing stored) when the content is not a
    /// PNG/JPEG within the rules, or the step is not open.
    pub async fn upload_material(
        &self,
        account: AccountId,
        order_id: OrderId,
        kind: MaterialKind,
        file_name: &str,
        bytes: Vec<u8>,
        meta: &RequestMeta,
    ) -> Result<(MaterialInfo, CleanImage)> {
        let clean = self.clean_material(account, order_id, kind, bytes).await?;
        let info = self
            .store_material(account, order_id, kind, file_name, &clean, meta)
            .await?;
        Ok((info, clean))
    }

    /// Checks an image of `kind` by content and re-encodes it (nothing is
    /// stored): refused when it is not a PNG/JPEG within the rules, or the
    /// step is not open.
    async fn clean_material(
        &self,
        account: AccountId,
        order_id: OrderId,
        kind: MaterialKind,
        bytes: Vec<u8>,
    ) -> Result<CleanImage> {
        let order = self.order_of(account, order_id).await?;
        order.state.may_edit(kind.step())?;
        let _turn = self.image_turn().await?;
        Ok(tokio::task::spawn_blocking(move || {
            sanitize_image(&bytes, &ImageRules::materials())
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("image check: {e}")))?
        .map_err(|r| {
            tracing::info!(order = order_id.0, kind = %kind, refused = r.code(), "upload refused");
            Refusal::UploadRefused {
                material: kind.label_zh(),
                code: r.code(),
                message: r.message_zh(),
            }
        })?)
    }

    /// Stores a checked image of `kind` on the order, replacing the
    /// previous one, with its audit entry.
    async fn store_material(
        &self,
        account: AccountId,
        order_id: OrderId,
        kind: MaterialKind,
        file_name: &str,
        clean: &CleanImage,
        meta: &RequestMeta,
    ) -> Result<MaterialInfo> {
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        // Read again in the transaction, and move the order's version: a
        // submission racing this upload (PostgreSQL runs both at once)
        // finds the version moved, or this upload does — never a reviewed
        // order whose image changed after it was submitted.
        let order = self.owned_order(&mut tx, account, order_id).await?;
        order.state.may_edit(kind.step())?;
        if !orders::touch(&mut tx, order_id, order.version, now).await? {
            return Err(Refusal::OrderStateConflict(order.state.label_zh()).into());
        }
        materials::put(
            &mut tx,
            order_id.0,
            &NewMaterial {
                kind,
                format: clean.format().as_str(),
                width: clean.width(),
                height: clean.height(),
                sha256: clean.sha256_hex(),
                bytes: clean.bytes(),
                original_name: file_name,
            },
            now,
        )
        .await?;
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Account(account),
            meta,
            AuditEvent::MaterialUploaded,
            json!({
                "order": order_id, "kind": kind.as_str(), "sha256": clean.sha256_hex(),
                "bytes": clean.bytes().len(), "width": clean.width(), "height": clean.height(),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(materials::of_order(&self.store, order_id.0)
            .await?
            .into_iter()
            .find(|m| m.kind == kind)
            .ok_or(Refusal::NotFound)?)
    }

    /// Waits for a turn at the image work (see [`Services::image_work`]).
    async fn image_turn(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.image_work
            .acquire()
            .await
            .map_err(|e| ServiceError::Internal(format!("image work: {e}")))
    }

    /// How many image jobs may run at once on a machine with `cores`: all
    /// cores but one (one stays for the pages), at least one.
    pub fn image_work_permits(cores: usize) -> usize {
        cores.saturating_sub(1).max(1)
    }

    /// True when business licenses can be read here.
    pub fn ocr_available(&self) -> bool {
        self.license_reader.is_some()
    }

    /// 第三步: stores the license image and reads it. The reading is kept
    /// with the image (the counter compares it with what was typed) and
    /// returned to prefill the form; it is not saved as the step's data.
    pub async fn read_license(
        &self,
        account: AccountId,
        order_id: OrderId,
        file_name: &str,
        bytes: Vec<u8>,
        meta: &RequestMeta,
    ) -> Result<LicenseRead> {
        let kind = MaterialKind::License;
        let clean = self.clean_material(account, order_id, kind, bytes).await?;
        let Some(reader) = self.license_reader.clone() else {
            let material = self
                .store_material(account, order_id, kind, file_name, &clean, meta)
                .await?;
            return Ok(LicenseRead {
                material,
                fields: None,
                warnings: Vec::new(),
                unsure: Vec::new(),
                ocr_available: false,
            });
        };
        let started = std::time::Instant::now();
        let read = {
            let _turn = self.image_turn().await?;
            let image = clean.bytes().to_vec();
            tokio::task::spawn_blocking(move || reader.read(&image))
                .await
                .map_err(|e| ServiceError::Internal(format!("license OCR: {e}")))?
        };
        let raw = match read {
            Ok(raw) => raw,
            Err(e) => {
                // The reader's fault: the image is kept, the applicant types.
                tracing::warn!(order = order_id.0, error = %e, "license OCR failed");
                let material = self
                    .store_material(account, order_id, kind, file_name, &clean, meta)
                    .await?;
                return Ok(LicenseRead {
                    material,
                    fields: None,
                    warnings: Vec::new(),
                    unsure: Vec::new(),
                    ocr_available: true,
                });
            }
        };
        tracing::info!(
            order = order_id.0,
            ms = started.elapsed().as_millis() as u64,
            "license read"
        );
        let LicenseVerdict::License {
            fields,
            warnings,
            unsure,
        } = vet_license_reading(raw.clone())
        else {
            // Not kept as the license, and nothing filled.
            tracing::info!(order = order_id.0, "upload refused: not a license");
            return Err(Refusal::NotALicense.into());
        };
        let material = self
            .store_material(account, order_id, kind, file_name, &clean, meta)
            .await?;
        // The reading as read (the counter compares it with what was typed).
        let mut tx = self.store.begin_write().await?;
        materials::set_ocr(&mut tx, order_id.0, kind, &material.sha256, &raw).await?;
        tx.commit().await?;
        Ok(LicenseRead {
            material,
            fields: Some(*fields),
            warnings,
            unsure,
            ocr_available: true,
        })
    }

    /// The licenses on the account's other orders that step 3 of
    /// `order_id` offers to reuse (newest first, each image once).
    pub async fn earlier_licenses(
        &self,
        account: AccountId,
        order_id: OrderId,
    ) -> Result<Vec<EarlierLicense>> {
        self.order_of(account, order_id).await?;
        let mut seen = std::collections::HashSet::new();
        Ok(
            materials::licenses_of_account(&self.store, account, order_id.0, 20)
                .await?
                .into_iter()
                .filter(|(_, _, m)| seen.insert(m.sha256.clone()))
                .take(3)
                .map(|(order, enterprise, m)| EarlierLicense {
                    order: OrderId(order),
                    enterprise: enterprise.unwrap_or_default(),
                    uploaded_at: m.uploaded_at,
                })
                .collect(),
        )
    }

    /// 第三步: uses the license uploaded to another of the account's
    /// orders (the same enterprise applying again) instead of uploading it
    /// again. The image is checked and stored on this order as an upload
    /// would be, and its reading fills the form as a new reading would.
    pub async fn reuse_license(
        &self,
        account: AccountId,
        order_id: OrderId,
        from: OrderId,
        meta: &RequestMeta,
    ) -> Result<LicenseRead> {
        let kind = MaterialKind::License;
        self.order_of(account, from).await?;
        let (info, bytes) = materials::image(&self.store, from.0, kind)
            .await?
            .ok_or(Refusal::MaterialMissing("营业执照"))?;
        let clean = self.clean_material(account, order_id, kind, bytes).await?;
        let material = self
            .store_material(account, order_id, kind, &info.original_name, &clean, meta)
            .await?;
        let (fields, warnings, unsure) =
            match info.ocr.map(|raw| (vet_license_reading(raw.clone()), raw)) {
                Some((
                    LicenseVerdict::License {
                        fields,
                        warnings,
                        unsure,
                    },
                    raw,
                )) => {
                    let mut tx = self.store.begin_write().await?;
                    materials::set_ocr(&mut tx, order_id.0, kind, &material.sha256, &raw).await?;
                    tx.commit().await?;
                    (Some(*fields), warnings, unsure)
                }
                _ => (None, Vec::new(), Vec::new()),
            };
        Ok(LicenseRead {
            material,
            fields,
            warnings,
            unsure,
            ocr_available: self.ocr_available(),
        })
    }

    /// The images of the applicant's order (without bytes).
    pub async fn materials_of(
        &self,
        account: AccountId,
        order_id: OrderId,
    ) -> Result<Vec<MaterialInfo>> {
        self.order_of(account, order_id).await?;
        Ok(materials::of_order(&self.store, order_id.0).await?)
    }

    /// One image of the applicant's order, with its bytes.
    pub async fn material_image(
        &self,
        account: AccountId,
        order_id: OrderId,
        kind: MaterialKind,
    ) -> Result<(MaterialInfo, Vec<u8>)> {
        self.order_of(account, order_id).await?;
        Ok(materials::image(&self.store, order_id.0, kind)
            .await?
            .ok_or(Refusal::NotFound)?)
    }

    /// One image of any order, for a logged-in counter operator.
    pub async fn counter_material_image(
        &self,
        _who: &OperatorInfo,
        order_id: OrderId,
        kind: MaterialKind,
    ) -> Result<(MaterialInfo, Vec<u8>)> {
        Ok(materials::image(&self.store, order_id.0, kind)
            .await?
            .ok_or(Refusal::NotFound)?)
    }

    /// The order's newest legal-rep authorization request.
    pub async fn latest_authorization(
        &self,
        order_id: OrderId,
    ) -> Result<Option<AuthorizationRow>> {
        Ok(materials::latest_of_order(&self.store, order_id.0).await?)
    }

    /// 第五步: submits the materials with an authorization route. Refused,
    /// with the order unchanged, when an image is missing, the legal
    /// representative's data is wrong, or the order is not at step 5.
    pub async fn submit_materials(
        &self,
        account: AccountId,
        order_id: OrderId,
        input: &MaterialsSubmission,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        let order = self.order_of(account, order_id).await?;
        let route = Authorization::parse(&input.authorization)?;
        certhall_domain::order::transition_of(
            order.kind,
            order.state,
            OrderEvent::SubmitMaterials(route),
        )?;
        let present: Vec<MaterialKind> = materials::of_order(&self.store, order_id.0)
            .await?
            .into_iter()
            .map(|m| m.kind)
            .collect();
        check_submission(route, &present)?;
        let now = self.clock.now();
        let contact = match route {
            Authorization::Letter => None,
            Authorization::LegalRepSms => {
                let enterprise = self.steps_of(order_id).await?.enterprise;
                let on_license = enterprise.map(|e| e.legal_representative);
                Some(LegalRepContact::parse(
                    &input.legal_rep_name,
                    &input.legal_rep_id_number,
                    &input.legal_rep_phone,
                    on_license.as_deref().unwrap_or_default(),
                    now,
                )?)
            }
        };
        let data = StepData::Materials(MaterialsStep {
            authorization: route,
            legal_rep: contact.clone(),
        });
        // The SMS route: the request is recorded (and counted) before the
        // SMS goes out, so neither a failed send nor concurrent submissions
        // escape the limits.
        let request = match &contact {
            Some(c) => Some(self.send_authorization_request(&order, c).await?),
            None => None,
        };
        let moved = self
            .finish_submission(account, order_id, route, &data, request.as_ref(), meta)
            .await;
        if let (Err(_), Some(r)) = (&moved, &request) {
            let mut tx = self.store.begin_write().await?;
            materials::mark_failed(&mut tx, r.id, self.clock.now()).await?;
            tx.commit().await?;
        }
        moved
    }

    /// Step 5's writes, in one transaction: the data, the request made
    /// pending, the transition (compare-and-swap) with its audit entry.
    async fn finish_submission(
        &self,
        account: AccountId,
        order_id: OrderId,
        route: Authorization,
        data: &StepData,
        request: Option<&AuthorizationRow>,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        let order = self.owned_order(&mut tx, account, order_id).await?;
        // The images may have changed since the check above.
        check_submission(route, &materials::kinds_tx(&mut tx, order_id.0).await?)?;
        orders::save_step(&mut tx, order_id, data.step(), &data.to_json(), now).await?;
        if let Some(r) = request {
            materials::activate(&mut tx, r.id, order_id.0, now).await?;
            append_audit(
                &mut tx,
                self.clock.as_ref(),
                Actor::Account(account),
                meta,
                AuditEvent::AuthorizationRequested,
                json!({
                    "order": order_id, "request": r.id,
                    "phone": r.phone_masked(),
                    "expires_at": r.expires_at.rfc3339(),
                }),
            )
            .await?;
        }
        let order = self
            .order_event_tx(
                &mut tx,
                OrderActor::Applicant(account),
                order.id,
                Some(order.version),
                OrderEvent::SubmitMaterials(route),
                None,
                meta,
            )
            .await?;
        tx.commit().await?;
        Ok(order)
    }

    /// Records the request under the phone's lock (the limits hold across
    /// concurrent submissions and processes), then sends the SMS. A failed
    /// send marks the request failed and changes nothing else.
    async fn send_authorization_request(
        &self,
        order: &OrderRow,
        c: &LegalRepContact,
    ) -> Result<AuthorizationRow> {
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        tx.lock(LockKey::Phone(&c.phone)).await?;
        let recent =
            materials::requests_since(&mut tx, order.id.0, &c.phone, now.minus(DAY)).await?;
        if recent.for_order >= AUTH_SMS_PER_ORDER_PER_DAY
            || recent.for_phone >= AUTH_SMS_PER_PHONE_PER_DAY
        {
            return Err(Refusal::AuthorizationSmsLimit.into());
        }
        let request = materials::record_sending(
            &mut tx,
            &NewAuthorization {
                order_id: order.id.0,
                name: &c.name,
                id_number: &c.id_number,
                phone: &c.phone,
                requested_at: now,
                expires_at: now.plus(AUTHORIZATION_WINDOW),
            },
        )
        .await?;
        tx.commit().await?;
        let steps = self.steps_of(order.id).await?;
        let sms = Sms {
            to: Phone::parse(&c.phone)?,
            template: SmsTemplate::LegalRepAuthorization {
                applicant: steps.applicant_name().to_owned(),
                enterprise: steps.enterprise_name().to_owned(),
                application: steps.application.map(|a| a.name).unwrap_or_default(),
                order: order.id.0,
                hours: AUTHORIZATION_WINDOW.as_secs() / 3600,
            },
        };
        if let Err(e) = self.sms.send(&sms).await {
            let mut tx = self.store.begin_write().await?;
            materials::mark_failed(&mut tx, request.id, self.clock.now()).await?;
            tx.commit().await?;
            return Err(e.into());
        }
        Ok(request)
    }

    /// Closes the authorization requests whose 72 hours ran out: the order
    /// goes to 法定代表人未授权 (the applicant may choose another route).
    /// Safe to run from several processes at once. Returns how many.
    pub async fn expire_authorizations(&self) -> Result<usize> {
        let now = self.clock.now();
        let mut closed = 0;
        for a in materials::pending_expired(&self.store, now, 200).await? {
            let mut tx = self.store.begin_write().await?;
            if !materials::close(&mut tx, a.id, AuthorizationOutcome::Expired, now).await? {
                continue; // answered or expired by someone else meanwhile
            }
            match self
                .order_event_tx(
                    &mut tx,
                    OrderActor::System,
                    OrderId(a.order_id),
                    None,
                    OrderEvent::LegalRepRefused,
                    Some("法定代表人72小时内未回复授权短信"),
                    &RequestMeta::default(),
                )
                .await
            {
                Ok(_) => {}
                // The order moved on (cancelled, …): just close the request.
                Err(ServiceError::Refused(Refusal::OrderStateConflict(_))) => {}
                Err(e) => return Err(e),
            }
            tx.commit().await?;
            closed += 1;
        }
        Ok(closed)
    }
}

impl Services {
    /// 重新发送授权短信: the same legal representative gets the SMS again
    /// (counted by the same limits); the earlier request is withdrawn and
    /// the 72 hours start again.
    pub async fn resend_authorization(
        &self,
        account: AccountId,
        order_id: OrderId,
        meta: &RequestMeta,
    ) -> Result<AuthorizationRow> {
        let order = self.order_of(account, order_id).await?;
        if order.state != OrderState::AwaitingAuthorization {
            return Err(Refusal::OrderStateConflict(order.state.label_zh()).into());
        }
        let last = materials::latest_of_order(&self.store, order_id.0)
            .await?
            .filter(|a| a.outcome.is_pending())
            .ok_or_else(|| Refusal::OrderStateConflict(order.state.label_zh()))?;
        let contact = LegalRepContact {
            name: last.name.clone(),
            id_number: last.id_number.clone(),
            phone: last.phone.clone(),
        };
        let request = self.send_authorization_request(&order, &contact).await?;
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        let current = self.owned_order(&mut tx, account, order_id).await?;
        if current.state != OrderState::AwaitingAuthorization
            || !materials::activate(&mut tx, request.id, order_id.0, now).await?
        {
            materials::mark_failed(&mut tx, request.id, now).await?;
            tx.commit().await?;
            return Err(Refusal::OrderStateConflict(current.state.label_zh()).into());
        }
        append_audit(
            &mut tx,
            self.clock.as_ref(),
            Actor::Account(account),
            meta,
            AuditEvent::AuthorizationRequested,
            json!({
                "order": order_id, "request": request.id, "resent": true,
                "phone": request.phone_masked(), "expires_at": request.expires_at.rfc3339(),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(request)
    }

    /// Takes step 5 back while the legal representative has not answered
    /// (to correct their data or switch to the letter): the request is
    /// withdrawn — a later reply no longer counts — and the order is at
    /// step 5 again with everything uploaded kept.
    pub async fn revise_authorization(
        &self,
        account: AccountId,
        order_id: OrderId,
        meta: &RequestMeta,
    ) -> Result<OrderRow> {
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        let order = self
            .order_event_tx(
                &mut tx,
                OrderActor::Applicant(account),
                order_id,
                None,
                OrderEvent::ReviseAuthorization,
                None,
                meta,
            )
            .await?;
        materials::withdraw_pending(&mut tx, order_id.0, now).await?;
        tx.commit().await?;
        Ok(order)
    }
}
