//! Publication for relying parties: CA certificates (`/ca/…`), CRLs
//! (`/crl/…`, RFC 5280 distribution points) and the OCSP responder
//! (`/ocsp`, RFC 6960 with the RFC 5019 profile: POST, and GET with the
//! base64 request in the path; HTTP caching headers per RFC 5019 §6.2).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use certhall_ca::Family;
use certhall_service::ca::{role, OcspAnswer};
use sha1::{Digest, Sha1};

use crate::error::PageError;
use crate::AppState;

/// Largest OCSP request accepted (RFC 5019 requests are a few hundred bytes).
const MAX_OCSP_REQUEST: usize = 8 * 1024;

/// The CA certificates and CRLs: downloads like any other page's.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ca/{file}", get(ca_file))
        .route("/crl/{file}", get(crl_file))
}

/// The OCSP responder. Relying parties' software calls it, never a
/// browser, at rates far above the portal's: `app` mounts it outside the
/// browser layers (browser id cookie, `Origin` check, page headers),
/// which would only cost time on every answer.
pub fn ocsp_router() -> Router<AppState> {
    Router::new()
        .route("/ocsp", post(ocsp_post))
        .route("/ocsp/{*request}", get(ocsp_get))
}

/// `sm2-issuing.der` → (sm2, issuing).
fn family_role(file: &str, ext: &str) -> Option<(Family, &'static str)> {
    let stem = file.strip_suffix(ext)?;
    let (family, which) = stem.split_once('-')?;
    let family: Family = family.parse().ok()?;
    let which = match which {
        "root" => role::ROOT,
        "issuing" => role::ISSUING,
        "ocsp" => role::OCSP,
        _ => return None,
    };
    Some((family, which))
}

fn binary(content_type: &'static str, body: Vec<u8>, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}

/// `GET /ca/{family}-{root|issuing|ocsp}.der` or `…-chain.pem`.
async fn ca_file(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, PageError> {
    if let Some(family) = file
        .strip_suffix("-chain.pem")
        .and_then(|f| f.parse::<Family>().ok())
    {
        let mut pem = String::new();
        for r in state.services.ca_chain(family).await? {
            pem.push_str(
                &certhall_ca::issue::to_pem(&r.der)
                    .map_err(|_| certhall_domain::Refusal::NotFound)?,
            );
        }
        return Ok(([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response());
    }
    let (family, which) = family_role(&file, ".der").ok_or(certhall_domain::Refusal::NotFound)?;
    let row = state.services.ca_active(family, which).await?;
    Ok(binary(
        "application/pkix-cert",
        row.der,
        "public, max-age=3600",
    ))
}

/// `GET /crl/{family}-{root|issuing}.crl`: the current CRL, re-signed when
/// close to its nextUpdate.
async fn crl_file(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, PageError> {
    let (family, which) = family_role(&file, ".crl").ok_or(certhall_domain::Refusal::NotFound)?;
    if which == role::OCSP {
        return Err(certhall_domain::Refusal::NotFound.into());
    }
    let issuer = state.services.ca_active(family, which).await?;
    let crl = state.services.ca_crl(&issuer, false).await?;
    let mut res = binary(
        "application/pkix-crl",
        crl.der,
        "public, max-age=300, no-transform",
    );
    if let Ok(v) = HeaderValue::from_str(&crl.this_update.http_date()) {
        res.headers_mut().insert(header::LAST_MODIFIED, v);
    }
    Ok(res)
}

/// `POST /ocsp` with `application/ocsp-request`.
/// An OCSP client gets an OCSP answer, whatever is wrong: a body over
/// [`MAX_OCSP_REQUEST`] is read no further and answered `malformedRequest`
/// (this route is outside the site-wide body limit and its bare 413).
async fn ocsp_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let ct_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/ocsp-request"));
    if !ct_ok {
        return ocsp_response(&state, malformed());
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_OCSP_REQUEST).await else {
        return ocsp_response(&state, malformed());
    };
    let answer = state.services.ca_ocsp(&body).await;
    ocsp_response(&state, answer)
}

/// `GET /ocsp/{base64(DER)}` (RFC 6960 Appendix A.1; the path is the
/// URL-encoded base64 of the request).
async fn ocsp_get(State(state): State<AppState>, Path(request): Path<String>) -> Response {
    let decoded = percent_encoding::percent_decode_str(&request)
        .decode_utf8_lossy()
        .into_owned();
    let der = base64::engine::general_purpose::STANDARD
        .decode(decoded.trim_end_matches('/'))
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE.decode(decoded.trim_end_matches('/'))
        });
    match der {
        Ok(der) if der.len() <= MAX_OCSP_REQUEST => {
            let answer = state.services.ca_ocsp(&der).await;
            ocsp_response(&state, answer)
        }
        _ => ocsp_response(&state, malformed()),
    }
}

fn malformed() -> OcspAnswer {
    OcspAnswer {
        der: certhall_ca::ocsp::error_response(x509_ocsp::OcspResponseStatus::MalformedRequest),
        cache: None,
    }
}

/// RFC 5019 §6.2 headers: cacheable responses say until when; nonce
/// responses must not be cached.
fn ocsp_response(state: &AppState, answer: OcspAnswer) -> Response {
    let now = state.services.clock.now();
    let mut res = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/ocsp-response")],
        answer.der.clone(),
    )
        .into_response();
    let h = res.headers_mut();
    match answer.cache {
        Some((this_update, next_update)) => {
            let max_age = next_update.since(now).as_secs();
            let etag = format!("\"{}\"", hex::encode(Sha1::digest(&answer.der)));
            for (name, value) in [
                (
                    header::CACHE_CONTROL,
                    format!("max-age={max_age}, public, no-transform, must-revalidate"),
                ),
                (header::LAST_MODIFIED, this_update.http_date()),
                (header::EXPIRES, next_update.http_date()),
                (header::ETAG, etag),
                (header::DATE, now.http_date()),
            ] {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    h.insert(name, v);
                }
            }
        }
        None => {
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache, no-store, must-revalidate"),
            );
        }
    }
    res
}
