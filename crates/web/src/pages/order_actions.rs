//! Cancelling an order, and the applicant's actions while the legal
//! representative has not answered the authorization SMS (send it again;
//! go back to step 5 to correct the number or use the letter instead).

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use certhall_domain::money::yuan_decimal;
use certhall_domain::{OrderId, Refusal};
use certhall_service::auth::SessionInfo;
use certhall_service::orders::{CancelPreview, OrderActor};

use super::{render, render_with_status, Chrome, Empty};
use crate::error::{PageError, WebError};
use crate::extract::{Applicant, BrowserId, ClientMeta, CsrfForm};
use crate::{paths, AppState};

#[derive(Template)]
#[template(path = "order_cancel.html")]
struct CancelPage {
    chrome: Chrome,
    order_id: OrderId,
    kind: &'static str,
    state: String,
    refund: Option<String>,
    error: Option<String>,
}

/// `GET /orders/{id}/cancel`: asks for confirmation, saying what happens
/// to a payment.
pub async fn cancel_show(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    Path(id): Path<OrderId>,
) -> Result<Response, PageError> {
    let preview = state.services.cancel_preview(who.account_id, id).await?;
    if !preview.cancellable {
        return Err(Refusal::OrderStateConflict(preview.order.state.label_zh()).into());
    }
    Ok(render(&CancelPage::of(&state, &bid, &who, &preview, None)))
}

impl CancelPage {
    fn of(
        state: &AppState,
        bid: &BrowserId,
        who: &SessionInfo,
        preview: &CancelPreview,
        error: Option<String>,
    ) -> Self {
        Self {
            chrome: Chrome::new(state, bid, Some(who), "orders"),
            order_id: preview.order.id,
            kind: preview.order.kind.label_zh(),
            state: preview.order.state.label_zh(),
            refund: preview.refund_fen.map(yuan_decimal),
            error,
        }
    }
}

/// `POST /orders/{id}/cancel`.
pub async fn cancel_submit(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<OrderId>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, PageError> {
    match state
        .services
        .cancel_order(OrderActor::Applicant(who.account_id), id, None, &meta)
        .await
    {
        Ok(_) => Ok(Redirect::to(&paths::order(id)).into_response()),
        Err(e) => {
            let preview = state.services.cancel_preview(who.account_id, id).await?;
            let e = WebError::from(e);
            Ok(render_with_status(
                e.status(),
                &CancelPage::of(&state, &bid, &who, &preview, Some(e.message_zh())),
            ))
        }
    }
}

/// `POST /orders/{id}/authorization/resend`: the SMS to the legal
/// representative again (counted by the same limits).
pub async fn resend_authorization(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<OrderId>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, PageError> {
    match state
        .services
        .resend_authorization(who.account_id, id, &meta)
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("{}?resent=1", paths::order(id))).into_response()),
        Err(e) => super::orders::status_page(&state, &bid, &who, id, None, Some(e.into())).await,
    }
}

/// `POST /orders/{id}/authorization/revise`: back to step 5 (correct the
/// legal representative, or use the letter); uploads stay.
pub async fn revise_authorization(
    State(state): State<AppState>,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<OrderId>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, PageError> {
    state
        .services
        .revise_authorization(who.account_id, id, &meta)
        .await?;
    Ok(Redirect::to(&format!("/orders/{id}/step/5")).into_response())
}
