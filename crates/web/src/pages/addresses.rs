//! 收货地址簿: the account's delivery addresses (add, change, make
//! default, delete). Step 6 offers them and saves new ones here.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use certhall_domain::checkout::AddressInput;
use serde::Deserialize;

use super::checkout::DivisionSelects;
use super::{render_with_status, Chrome, Empty};
use crate::error::{PageError, WebError};
use crate::extract::{Applicant, BrowserId, ClientMeta, CsrfForm};
use crate::{paths, AppState};

/// An address as listed.
#[derive(Debug)]
pub struct Line {
    id: i64,
    recipient: String,
    phone: String,
    line: String,
    is_default: bool,
}

#[derive(Template)]
#[template(path = "addresses.html")]
struct AddressesPage {
    chrome: Chrome,
    items: Vec<Line>,
    editing: Option<i64>,
    form: AddressForm,
    selects: DivisionSelects,
    error: Option<String>,
    notice: Option<String>,
}

/// The address form.
#[derive(Debug, Default, Deserialize)]
pub struct AddressForm {
    #[serde(default)]
    recipient: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    division: String,
    #[serde(default)]
    street: String,
    #[serde(default)]
    make_default: String,
}

/// `?edit=ID`, `?saved=1`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    edit: Option<i64>,
    #[serde(default)]
    saved: Option<String>,
}

async fn page(
    state: &AppState,
    bid: &BrowserId,
    who: &certhall_service::auth::SessionInfo,
    editing: Option<i64>,
    form: Option<AddressForm>,
    error: Option<WebError>,
    notice: Option<String>,
) -> Result<Response, PageError> {
    let book = state.services.addresses(who.account_id).await?;
    let form = match (form, editing) {
        (Some(f), _) => f,
        (None, Some(id)) => {
            let a = state.services.address(who.account_id, id).await?;
            AddressForm {
                recipient: a.row.recipient,
                phone: a.row.phone,
                division: format!("{:06}", a.row.division_code),
                street: a.row.street,
                make_default: if a.row.is_default {
                    "1".into()
                } else {
                    String::new()
                },
            }
        }
        (None, None) => AddressForm::default(),
    };
    let status = error
        .as_ref()
        .map_or(axum::http::StatusCode::OK, WebError::status);
    Ok(render_with_status(
        status,
        &AddressesPage {
            chrome: Chrome::new(state, bid, Some(who), "addresses"),
            items: book
                .iter()
                .map(|a| Line {
                    id: a.row.id,
                    recipient: a.row.recipient.clone(),
                    phone: a.row.phone.clone(),
                    line: a.line(),
                    is_default: a.row.is_default,
                })
                .collect(),
            editing,
            selects: DivisionSelects::of(&form.division),
            form,
            error: error.map(|e| e.message_zh()),
            notice,
        },
    ))
}

/// `GET /addresses`.
pub async fn list(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    Query(q): Query<ListQuery>,
) -> Result<Response, PageError> {
    let notice = q.saved.map(|_| "地址已保存。".to_owned());
    page(&state, &bid, &who, q.edit, None, None, notice).await
}

fn input(f: &AddressForm) -> AddressInput {
    AddressInput {
        recipient: f.recipient.clone(),
        phone: f.phone.clone(),
        division: f.division.clone(),
        street: f.street.clone(),
    }
}

/// `POST /addresses`: add.
pub async fn add(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<AddressForm>,
) -> Result<Response, PageError> {
    match state
        .services
        .save_address(
            who.account_id,
            None,
            &input(&form),
            form.make_default == "1",
            &meta,
        )
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("{}?saved=1", paths::ADDRESSES)).into_response()),
        Err(e) => page(&state, &bid, &who, None, Some(form), Some(e.into()), None).await,
    }
}

/// `POST /addresses/{id}`: change.
pub async fn update(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<AddressForm>,
) -> Result<Response, PageError> {
    match state
        .services
        .save_address(
            who.account_id,
            Some(id),
            &input(&form),
            form.make_default == "1",
            &meta,
        )
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("{}?saved=1", paths::ADDRESSES)).into_response()),
        Err(e) => {
            page(
                &state,
                &bid,
                &who,
                Some(id),
                Some(form),
                Some(e.into()),
                None,
            )
            .await
        }
    }
}

/// `POST /addresses/{id}/default`.
pub async fn make_default(
    State(state): State<AppState>,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, PageError> {
    state
        .services
        .set_default_address(who.account_id, id, &meta)
        .await?;
    Ok(Redirect::to(paths::ADDRESSES).into_response())
}

/// `POST /addresses/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, PageError> {
    state
        .services
        .delete_address(who.account_id, id, &meta)
        .await?;
    Ok(Redirect::to(paths::ADDRESSES).into_response())
}
