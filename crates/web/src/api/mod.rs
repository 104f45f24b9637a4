//! The JSON API under `/api/v1`, described by [`openapi::document`].
//!
//! Errors are `{"code","message"}` with a stable machine code and a Chinese
//! message. Clients authenticate with the bearer token from
//! `POST /api/v1/auth/sms/verify`; the portal's own pages may instead use
//! their session cookie plus the `X-CSRF-Token` header.

use axum::routing::{get, post};

pub mod auth;
pub mod counter;
pub mod lifecycle;
pub mod messages;
pub mod openapi;
mod openapi_checkout;
mod openapi_lifecycle;
mod openapi_production;
mod openapi_relying;
pub mod orders;
pub mod payments;
pub mod relying;
pub mod routes;

pub use routes::Routes;

/// The `/api/v1` routes (the uploads apart: [`upload_routes`]).
pub fn routes() -> Routes {
    Routes::new()
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
        .route(
            "/certificates/{serial}/renewal/code",
            post(lifecycle::renewal_code),
        )
        .route(
            "/certificates/{serial}/renewal/challenge",
            post(lifecycle::renewal_challenge),
        )
        .route(
            "/certificates/{serial}/renewals",
            post(lifecycle::start_renewal),
        )
        .route(
            "/certificates/{serial}/renewal/order",
            post(lifecycle::renewal_order),
        )
        .route(
            "/certificates/{serial}/changes",
            post(lifecycle::start_change),
        )
        .route("/orders/{id}/change/code", post(lifecycle::change_code))
        .route(
            "/orders/{id}/change/challenge",
            post(lifecycle::change_challenge),
        )
        .route(
            "/orders/{id}/change/writes",
            post(lifecycle::start_change_write),
        )
        .route("/renewals/{id}", get(lifecycle::renewal))
        .route("/renewals/{id}/csr", post(lifecycle::renewal_csr))
        .route("/renewals/{id}/written", post(lifecycle::renewal_written))
        .route("/renewals/{id}/failed", post(lifecycle::renewal_failed))
        .route("/ukeys/{token}/unlock/code", post(lifecycle::unlock_code))
        .route("/ukeys/{token}/unlocks", post(lifecycle::release_so_pin))
        .route("/unlocks/{id}/result", post(lifecycle::unlock_result))
        .route("/relying/challenges", post(relying::challenge))
        .route("/relying/activations", post(relying::activate))
        .route("/relying/certificates/{serial}", get(relying::certificate))
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
pub fn upload_routes() -> Routes {
    Routes::new()
        .route(
            "/orders/{id}/materials/{kind}",
            get(orders::material).put(orders::put_material),
        )
        .map_router(|r| {
            r.layer(axum::extract::DefaultBodyLimit::max(
                crate::extract::SINGLE_IMAGE_LIMIT,
            ))
        })
}

/// Every `/api/v1` path CertHall routes, as the routers are built (the
/// OpenAPI check asks the real router which methods each answers).
pub fn paths() -> Vec<&'static str> {
    let mut all = routes()
        .merge(crate::production::api_routes())
        .merge(upload_routes())
        .paths()
        .to_vec();
    all.sort_unstable();
    all.dedup();
    all
}
