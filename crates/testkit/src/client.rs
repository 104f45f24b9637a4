//! An in-process client for router tests: keeps cookies (and a bearer
//! token), speaks from one IP address (`X-Forwarded-For`, which
//! `WebConfig::for_tests` trusts), and logs in through the pages or the API.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::TestApp;

/// A client that keeps cookies and speaks from one IP address.
#[derive(Debug)]
pub struct Client<'a> {
    pub app: &'a TestApp,
    pub ip: String,
    pub cookies: BTreeMap<String, String>,
    pub bearer: Option<String>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
    /// The body as sent (images).
    pub raw: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
    pub fn csrf(&self) -> String {
        let marker = "name=\"_csrf\" value=\"";
        let start = self.body.find(marker).expect("page has a CSRF field") + marker.len();
        self.body[start..].split('"').next().unwrap().to_owned()
    }
}

impl<'a> Client<'a> {
    pub fn new(app: &'a TestApp, ip: &str) -> Self {
        Self {
            app,
            ip: ip.to_owned(),
            cookies: BTreeMap::new(),
            bearer: None,
        }
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: String,
        extra: &[(&str, String)],
    ) -> Reply {
        self.send_bytes(method, path, content_type, body.into_bytes(), extra)
            .await
    }

    /// A `multipart/form-data` POST: text fields, then files as
    /// `(field, file name, bytes)`.
    pub async fn post_multipart(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        files: &[(&str, &str, &[u8])],
    ) -> Reply {
        const BOUNDARY: &str = "----certhall-test-boundary-7d9a2c";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        for (name, file_name, bytes) in files {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        let ct = format!("multipart/form-data; boundary={BOUNDARY}");
        self.send_bytes(Method::POST, path, Some(&ct), body, &[])
            .await
    }

    /// Any request with a binary body.
    pub async fn send_bytes(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        extra: &[(&str, String)],
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("x-forwarded-for", &self.ip);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header(header::COOKIE, c.join("; "));
        }
        if let Some(t) = &self.bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in extra {
            req = req.header(*k, v);
        }
        let res = self
            .app
            .router
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        for sc in res.headers().get_all(header::SET_COOKIE) {
            let sc = sc.to_str().unwrap();
            let pair = sc.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || sc.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), 32 << 20)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            raw: bytes.to_vec(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(Method::GET, path, None, String::new(), &[]).await
    }

    pub async fn post_json(&mut self, path: &str, body: Value) -> Reply {
        self.send(
            Method::POST,
            path,
            Some("application/json"),
            body.to_string(),
            &[],
        )
        .await
    }

    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.send(
            Method::POST,
            path,
            Some("application/x-www-form-urlencoded"),
            body,
            &[],
        )
        .await
    }

    /// Logs in through the API and keeps the bearer token.
    pub async fn api_login(&mut self, phone: &str) -> Value {
        let r = self
            .post_json("/api/v1/auth/sms/send", json!({ "phone": phone }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let code = self.app.latest_code(phone).await.unwrap();
        let r = self
            .post_json(
                "/api/v1/auth/sms/verify",
                json!({ "phone": phone, "code": code }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let v = r.json();
        self.bearer = Some(v["token"].as_str().unwrap().to_owned());
        v
    }

    /// Logs an operator in at /counter (password, then the SMS code).
    pub async fn counter_login(&mut self, username: &str, password: &str, phone: &str) {
        let page = self.get("/counter/login").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let csrf = page.csrf();
        let r = self
            .post_form(
                "/counter/login",
                &[
                    ("_csrf", &csrf),
                    ("username", username),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.contains("counter-code-form"), "{}", r.body);
        let code = self.app.latest_code(phone).await.unwrap();
        let r = self
            .post_form("/counter/login/code", &[("_csrf", &csrf), ("code", &code)])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(r.location(), "/counter");
    }

    /// Logs in through the pages (cookies).
    pub async fn page_login(&mut self, phone: &str) {
        let page = self.get("/login").await;
        // Already logged in: /login redirects home; any page carries the token.
        let page = if page.status == StatusCode::SEE_OTHER {
            self.get(page.location()).await
        } else {
            page
        };
        let csrf = page.csrf();
        let r = self
            .post_form(
                "/login/code",
                &[("_csrf", &csrf), ("phone", phone), ("next", "/")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let code = self.app.latest_code(phone).await.unwrap();
        let r = self
            .post_form(
                "/login",
                &[
                    ("_csrf", &csrf),
                    ("phone", phone),
                    ("code", &code),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(r.location(), "/");
    }
}
