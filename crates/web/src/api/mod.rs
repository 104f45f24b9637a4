//! The JSON API under `/api/v1`, described by [`openapi::document`].
//!
//! Errors are `{"code","message"}` with a stable machine code and a Chinese
//! message. Clients authenticate with the bearer token from
//! `POST /api/v1/auth/sms/verify`; the portal's own pages may instead use
//! their session cookie plus the `X-CSRF-Token` header.

use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

pub mod auth;
pub mod counter;
pub mod messages;
pub mod openapi;
mod openapi_checkout;
mod openapi_production;
pub mod orders;
pub mod payments;

/// Every API route, relative to `/api/v1`. The OpenAPI document must list
/// exactly these (checked by a test).
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/auth/sms/send"),
    ("post", "/auth/sms/verify"),
    ("post", "/auth/cert/challenge"),
    ("post", "/auth/cert/login"),
    ("post", "/auth/cert/failure"),
    ("post", "/auth/logout"),
    ("get", "/me"),
    ("get", "/messages"),
    ("post", "/messages/{id}/read"),
    ("post", "/messages/read-all"),
    ("get", "/applications"),
    ("get", "/orders"),
    ("post", "/orders"),
    ("get", "/orders/{id}"),
    ("put", "/orders/{id}/steps/{n}"),
    ("get", "/orders/{id}/materials"),
    ("get", "/orders/{id}/materials/{kind}"),
    ("put", "/orders/{id}/materials/{kind}"),
    ("post", "/counter/login"),
    ("post", "/counter/login/code"),
    ("post", "/counter/logout"),
    ("get", "/counter/orders"),
    ("get", "/counter/orders/{id}"),
    ("get", "/counter/orders/{id}/materials/{kind}"),
    ("post", "/counter/orders/{id}/approve"),
    ("post", "/counter/orders/{id}/reject"),
    ("post", "/counter/orders/{id}/cancel"),
    ("get", "/counter/notices"),
    ("get", "/orders/{id}/summary"),
    ("get", "/orders/{id}/checkout"),
    ("put", "/orders/{id}/checkout"),
    ("post", "/orders/{id}/checkout/revise"),
    ("get", "/orders/{id}/payments"),
    ("post", "/orders/{id}/payments"),
    ("post", "/orders/{id}/cancel"),
    ("post", "/orders/{id}/authorization/resend"),
    ("post", "/orders/{id}/authorization/revise"),
    ("get", "/addresses"),
    ("post", "/addresses"),
    ("put", "/addresses/{id}"),
    ("delete", "/addresses/{id}"),
    ("post", "/addresses/{id}/default"),
    ("get", "/divisions"),
    ("post", "/payment/notify/wechat"),
    ("post", "/payment/notify/alipay"),
    ("get", "/openapi.json"),
    ("get", "/certificates"),
    ("get", "/certificates/{serial}"),
    ("get", "/certificates/{serial}/download/{format}"),
    ("get", "/counter/production"),
    ("get", "/counter/production/{id}"),
    ("post", "/counter/production/{id}/attempts"),
    ("post", "/counter/production/attempts/{a}/token"),
    ("post", "/counter/production/attempts/{a}/csr"),
    ("post", "/counter/production/attempts/{a}/written"),
    ("post", "/counter/production/attempts/{a}/failed"),
    ("post", "/counter/production/{id}/ship"),
];

/// The `/api/v1` router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/sms/send", post(auth::send_code))
        .route("/auth/sms/verify", post(auth::verify_code))
        .route("/auth/cert/challenge", post(auth::cert_challenge))
        .route("/auth/cert/login", post(auth::cert_login))
        .route("/auth/cert/failure", post(auth::cert_failure))
        .route("/auth/logout", post(auth::logout))
        .route("/me", get(auth::me))
        .route("/messages", get(messages::list))
        .route("/messages/{id}/read", post(messages::mark_read))
        .route("/messages/read-all", post(messages::mark_all_read))
        .route("/applications", get(orders::applications))
        .route("/orders", get(orders::list).post(orders::start))
        .route("/orders/{id}", get(orders::show))
        .route(
            "/orders/{id}/steps/{n}",
            axum::routing::put(orders::save_step),
        )
        .route("/orders/{id}/materials", get(orders::materials))
        .route("/counter/login", post(counter::login))
        .route("/counter/login/code", post(counter::login_code))
        .route("/counter/logout", post(counter::logout))
        .route("/counter/orders", get(counter::queue))
        .route("/counter/orders/{id}", get(counter::detail))
        .route(
            "/counter/orders/{id}/materials/{kind}",
            get(counter::material),
        )
        .route("/counter/orders/{id}/approve", post(counter::approve))
        .route("/counter/orders/{id}/reject", post(counter::reject))
        .route("/counter/orders/{id}/cancel", post(counter::cancel))
        .route("/counter/notices", get(counter::notices))
        .route("/certificates", get(crate::pages::certificates::api_list))
        .route(
            "/certificates/{serial}",
            get(crate::pages::certificates::api_show),
        )
        .route(
            "/certificates/{serial}/download/{format}",
            get(crate::pages::certificates::api_download),
        )
        .route("/orders/{id}/summary", get(payments::summary))
        .route(
            "/orders/{id}/checkout",
            get(payments::checkout).put(payments::save_checkout),
        )
        .route(
            "/orders/{id}/checkout/revise",
            post(payments::revise_checkout),
        )
        .route(
            "/orders/{id}/payments",
            get(payments::payments).post(payments::pay),
        )
        .route("/orders/{id}/cancel", post(payments::cancel))
        .route(
            "/orders/{id}/authorization/resend",
            post(payments::resend_authorization),
        )
        .route(
            "/orders/{id}/authorization/revise",
            post(payments::revise_authorization),
        )
        .route(
            "/addresses",
            get(payments::addresses).post(payments::add_address),
        )
        .route(
            "/addresses/{id}",
            axum::routing::put(payments::update_address).delete(payments::delete_address),
        )
        .route("/addresses/{id}/default", post(payments::default_address))
        .route("/divisions", get(payments::divisions))
        .route("/payment/notify/wechat", post(payments::notify_wechat))
        .route("/payment/notify/alipay", post(payments::notify_alipay))
        .route("/openapi.json", get(openapi::serve))
}

/// Parses a JSON body, turning malformed JSON into a clear refusal.
pub(crate) mod json {
    use axum::extract::rejection::JsonRejection;
    use axum::extract::{FromRequest, Request};
    use serde::de::DeserializeOwned;

    use crate::error::{ApiError, WebError};

    /// Like `axum::Json`, with CertHall's error body.
    #[derive(Debug)]
    pub struct Body<T>(pub T);

    impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
        type Rejection = ApiError;

        async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
            match axum::Json::<T>::from_request(req, state).await {
                Ok(axum::Json(v)) => Ok(Self(v)),
                Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError(WebError::Refused(
                    certhall_domain::Refusal::MissingField(
                        "JSON 请求体（Content-Type: application/json）",
                    ),
                ))),
                Err(_) => Err(ApiError(WebError::Refused(
                    certhall_domain::Refusal::MissingField("格式正确的 JSON 请求体"),
                ))),
            }
        }
    }
}

/// The `/api/v1` routes that take an image as the body (their own body
/// limit, [`crate::extract::UPLOAD_FORM_LIMIT`]).
pub fn upload_router() -> Router<AppState> {
    Router::new()
        .route(
            "/orders/{id}/materials/{kind}",
            get(orders::material).put(orders::put_material),
        )
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::extract::SINGLE_IMAGE_LIMIT,
        ))
}
