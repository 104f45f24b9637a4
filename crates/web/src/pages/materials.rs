//! The wizard's image posts (multipart): step 3 with the business license
//! (read by OCR), step 5 with the seals, signature and authorization
//! letter; and the images themselves, for their previews.
//!
//! These routes take bodies up to [`UPLOAD_FORM_LIMIT`] (every other route
//! 256 KiB). An image that fails its check is named with the reason; the
//! other images of the same post are kept, and so is everything typed.

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use certhall_domain::materials::MaterialKind;
use certhall_domain::order::Step;
use certhall_domain::steps::OrderSteps;
use certhall_domain::{OrderId, Refusal};
use certhall_service::views::MaterialInfo;

use super::orders::{render_step, Extras, StepForm};
use crate::error::{PageError, WebError};
use crate::extract::{
    Applicant, BrowserId, ClientMeta, CsrfMultipart, SINGLE_IMAGE_LIMIT, UPLOAD_FORM_LIMIT,
};
use crate::AppState;

/// The upload routes (with their larger body limit).
pub fn upload_router() -> Router<AppState> {
    Router::new()
        .route("/orders/{id}/materials", post(materials_submit))
        .layer(DefaultBodyLimit::max(UPLOAD_FORM_LIMIT))
        .merge(
            Router::new()
                .route("/orders/{id}/enterprise", post(enterprise_submit))
                .layer(DefaultBodyLimit::max(SINGLE_IMAGE_LIMIT)),
        )
}

/// The applicant's image route.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/orders/{id}/materials/{kind}", get(image))
        .route("/orders/{id}/letter", get(letter))
}

#[derive(askama::Template)]
#[template(path = "authorization_letter.html")]
struct LetterPage {
    chrome: super::Chrome,
    order_id: OrderId,
    enterprise: String,
    uscc: String,
    legal_rep: String,
    applicant: String,
    applicant_id: String,
    application: String,
}

/// `GET /orders/{id}/letter`: the authorization letter (授权委托书) filled
/// in from steps 1–3, to print, sign, stamp and upload at step 5.
pub async fn letter(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    Path(id): Path<OrderId>,
) -> Result<Response, PageError> {
    let order = state.services.order_of(who.account_id, id).await?;
    let mut saved = OrderSteps::default();
    for step in [Step::Identity, Step::Application, Step::Enterprise] {
        if let Some(data) = state.services.order_step(&order, step).await? {
            saved.put(data);
        }
    }
    // A blank line to fill in by hand where a step is not saved yet.
    let text = |value: Option<&str>| match value {
        Some(v) if !v.is_empty() => v.to_owned(),
        _ => "＿＿＿＿＿＿".to_owned(),
    };
    let enterprise = saved.enterprise.as_ref();
    let identity = saved.identity.as_ref();
    Ok(super::render(&LetterPage {
        chrome: super::Chrome::new(&state, &bid, Some(&who), "orders"),
        order_id: id,
        enterprise: text(enterprise.map(|e| e.name.as_str())),
        uscc: text(enterprise.map(|e| e.uscc.as_str())),
        legal_rep: text(enterprise.map(|e| e.legal_representative.as_str())),
        applicant: text(identity.map(|i| i.name.as_str())),
        applicant_id: text(identity.map(|i| i.id_number.as_str())),
        application: text(saved.application.as_ref().map(|a| a.name.as_str())),
    }))
}

/// Answers a step-3 or step-5 post: the step again (with what was typed,
/// the refusal and the notes), or the next page.
struct StepReply<'a> {
    state: &'a AppState,
    bid: &'a BrowserId,
    who: &'a certhall_service::auth::SessionInfo,
    id: OrderId,
    step: Step,
}

impl StepReply<'_> {
    async fn page(
        &self,
        typed: &StepForm,
        err: Option<WebError>,
        extras: Extras,
    ) -> Result<Response, PageError> {
        render_step(
            self.state,
            self.bid,
            self.who,
            self.id,
            self.step,
            Some(typed),
            err,
            extras,
        )
        .await
    }

    /// A body that could not be read: the message, and the step as saved
    /// (nothing of the post is used).
    async fn unreadable(&self, refusal: Refusal) -> Result<Response, PageError> {
        let err = Some(WebError::Refused(refusal));
        let (state, bid, who) = (self.state, self.bid, self.who);
        render_step(
            state,
            bid,
            who,
            self.id,
            self.step,
            None,
            err,
            Extras::default(),
        )
        .await
    }

    async fn after<T>(
        &self,
        result: Result<T, certhall_service::ServiceError>,
        next: String,
        typed: &StepForm,
        extras: Extras,
    ) -> Result<Response, PageError> {
        match result {
            Ok(_) => Ok(Redirect::to(&next).into_response()),
            Err(e) => self.page(typed, Some(WebError::from(e)), extras).await,
        }
    }
}

/// `POST /orders/{id}/enterprise`: step 3. `action=read` stores the license
/// and fills the form with what OCR read; `action=save` (the default)
/// stores a chosen license too, then validates and saves the typed fields.
pub async fn enterprise_submit(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<OrderId>,
    CsrfMultipart(form): CsrfMultipart,
) -> Result<Response, PageError> {
    let s = &state.services;
    let mut typed = StepForm::of_fields(&form.fields);
    let reply = StepReply {
        state: &state,
        bid: &bid,
        who: &who,
        id,
        step: Step::Enterprise,
    };
    if let Some(r) = form.broken {
        return reply.unreadable(r).await;
    }
    let mut extras = Extras::default();
    // A license from another of the account's orders, instead of a file.
    let reuse = form.field("reuse").trim().to_owned();
    if !reuse.is_empty() {
        let Ok(from) = reuse.parse::<i64>().map(OrderId) else {
            return reply.unreadable(Refusal::NotFound).await;
        };
        match s.reuse_license(who.account_id, id, from, &meta).await {
            Ok(read) => {
                if let Some(fields) = &read.fields {
                    typed.merge_license(fields);
                    extras.unsure = Some(read.unsure.clone());
                }
                let mut notice = format!(
                    "已使用订单 {from} 中的营业执照{}，请逐项核对，并补充注册地和企业性质。",
                    if read.fields.is_some() {
                        "，识别结果已填入下方"
                    } else {
                        ""
                    }
                );
                for w in &read.warnings {
                    notice.push_str(w);
                }
                extras.notice = Some(notice);
                return reply.page(&typed, None, extras).await;
            }
            Err(e) => return reply.page(&typed, Some(WebError::from(e)), extras).await,
        }
    }
    let read_only = form.field("action") == "read";
    match form.files.iter().find(|f| f.field == "license") {
        Some(file) => {
            match s
                .read_license(
                    who.account_id,
                    id,
                    &file.file_name,
                    file.bytes.clone(),
                    &meta,
                )
                .await
            {
                Ok(read) => {
                    extras.notice = Some(match (&read.fields, read.ocr_available) {
                        (Some(fields), _) => {
                            if read_only {
                                typed.merge_license(fields);
                                extras.unsure = Some(read.unsure.clone());
                            }
                            let mut notice = "营业执照已上传并识别，识别结果已填入下方，请逐项核对，并补充注册地和企业性质。"
                                .to_owned();
                            for w in &read.warnings {
                                notice.push_str(w);
                            }
                            notice
                        }
                        (None, true) => {
                            "营业执照已上传，但未能识别其中的文字，请按营业执照填写下方各项。"
                                .to_owned()
                        }
                        (None, false) => {
                            "营业执照已上传。本系统暂未启用自动识别，请按营业执照填写下方各项。"
                                .to_owned()
                        }
                    });
                }
                Err(e) => return reply.page(&typed, Some(WebError::from(e)), extras).await,
            }
        }
        None if read_only => {
            let err = Some(WebError::Refused(Refusal::MaterialMissing("营业执照")));
            return reply.page(&typed, err, extras).await;
        }
        None => {}
    }
    if read_only {
        return reply.page(&typed, None, extras).await;
    }
    let saved = s
        .wizard_enterprise(who.account_id, id, &typed.enterprise(), &meta)
        .await;
    reply
        .after(saved, format!("/orders/{id}/step/4"), &typed, extras)
        .await
}

/// `POST /orders/{id}/materials`: step 5. Every chosen image is checked
/// and stored on its own; `action=upload` stops there, `action=save` (the
/// default) then submits with the chosen authorization route.
pub async fn materials_submit(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<OrderId>,
    CsrfMultipart(form): CsrfMultipart,
) -> Result<Response, PageError> {
    let s = &state.services;
    let typed = StepForm::of_fields(&form.fields);
    let reply = StepReply {
        state: &state,
        bid: &bid,
        who: &who,
        id,
        step: Step::Materials,
    };
    if let Some(r) = form.broken {
        return reply.unreadable(r).await;
    }
    let mut extras = Extras::default();
    let mut stored = Vec::new();
    let mut seen = Vec::new();
    for file in &form.files {
        // One image per known field; anything else is not even decoded.
        let Some(kind) = file
            .field
            .parse::<MaterialKind>()
            .ok()
            .filter(|k| k.step() == Step::Materials && !seen.contains(k))
        else {
            continue;
        };
        seen.push(kind);
        match s
            .upload_material(
                who.account_id,
                id,
                kind,
                &file.file_name,
                file.bytes.clone(),
                &meta,
            )
            .await
        {
            Ok(_) => stored.push(kind.label_zh()),
            Err(certhall_service::ServiceError::Refused(r @ Refusal::UploadRefused { .. })) => {
                extras.file_errors.push((kind, r.message_zh()));
            }
            Err(e) => {
                let err = Some(WebError::from(e));
                return reply.page(&typed, err, extras).await;
            }
        }
    }
    if !stored.is_empty() {
        extras.notice = Some(format!("已保存：{}。", stored.join("、")));
    }
    if !extras.file_errors.is_empty() {
        let err = Some(WebError::Refused(Refusal::InvalidField(
            "有图片未通过检查，请按提示重新选择后再提交（通过检查的图片已保存）".into(),
        )));
        return reply.page(&typed, err, extras).await;
    }
    if form.field("action") == "upload" {
        if stored.is_empty() {
            extras.notice = Some("没有选择要上传的图片。".into());
        }
        return reply.page(&typed, None, extras).await;
    }
    let submitted = s
        .submit_materials(who.account_id, id, &typed.submission(), &meta)
        .await;
    reply
        .after(submitted, format!("/orders/{id}"), &typed, extras)
        .await
}

/// `GET /orders/{id}/materials/{kind}`: one of the applicant's images.
pub async fn image(
    State(state): State<AppState>,
    Applicant(who): Applicant,
    Path((id, kind)): Path<(OrderId, String)>,
) -> Result<Response, PageError> {
    let kind: MaterialKind = kind
        .parse()
        .map_err(|()| WebError::Refused(Refusal::NotFound))?;
    let (info, bytes) = state
        .services
        .material_image(who.account_id, id, kind)
        .await?;
    Ok(image_response(&info, bytes))
}

/// An image as served: its stored type, never cached by shared caches,
/// not sniffed, nothing it could run.
pub fn image_response(info: &MaterialInfo, bytes: Vec<u8>) -> Response {
    let (mime, ext) = match info.format.as_str() {
        "png" => ("image/png", "png"),
        _ => ("image/jpeg", "jpg"),
    };
    let mut res = bytes.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "inline; filename=\"{}.{ext}\"",
        info.kind.as_str()
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    res
}
