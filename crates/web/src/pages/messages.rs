//! 消息提醒 (manual 2.3.6): list, mark one or all read.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use certhall_domain::message::MessageId;
use certhall_service::inbox::{MessagePage, PAGE_SIZE};
use serde::Deserialize;

use super::Empty;
use super::{render, Chrome};
use crate::error::PageError;
use crate::extract::{Applicant, BrowserId, ClientMeta, CsrfForm};
use crate::{paths, AppState};

#[derive(Template)]
#[template(path = "messages.html")]
struct MessagesPage {
    chrome: Chrome,
    page: MessagePage,
}

/// `?page=N`.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    page: Option<u32>,
}

/// `GET /messages`.
pub async fn list(
    State(state): State<AppState>,
    bid: BrowserId,
    Applicant(who): Applicant,
    Query(q): Query<PageQuery>,
) -> Result<Response, PageError> {
    let page = state
        .services
        .messages(who.account_id, q.page.unwrap_or(1), PAGE_SIZE)
        .await?;
    Ok(render(&MessagesPage {
        chrome: Chrome::new(&state, &bid, Some(&who), "messages"),
        page,
    }))
}

/// Where to go back to after marking.
#[derive(Debug, Deserialize)]
pub struct BackForm {
    #[serde(default)]
    back: String,
}

/// `POST /messages/{id}/read`.
pub async fn mark_read(
    State(state): State<AppState>,
    Applicant(who): Applicant,
    Path(id): Path<i64>,
    ClientMeta(meta): ClientMeta,
    CsrfForm(form): CsrfForm<BackForm>,
) -> Result<Response, PageError> {
    state
        .services
        .mark_message_read(who.account_id, MessageId(id), &meta)
        .await?;
    Ok(Redirect::to(back(&form.back)).into_response())
}

/// `POST /messages/read-all`.
pub async fn mark_all_read(
    State(state): State<AppState>,
    Applicant(who): Applicant,
    ClientMeta(meta): ClientMeta,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, PageError> {
    state
        .services
        .mark_all_messages_read(who.account_id, &meta)
        .await?;
    Ok(Redirect::to(paths::MESSAGES).into_response())
}

fn back(b: &str) -> &str {
    if b == paths::HOME || b.starts_with(paths::MESSAGES) && !b.contains("//") {
        b
    } else {
        paths::MESSAGES
    }
}
