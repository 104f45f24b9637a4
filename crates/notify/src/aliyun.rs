//! Alibaba Cloud SMS (阿里云短信服务): the `SendSms` action of the `Dysmsapi`
//! product, API version 2017-05-25.
//!
//! Requests use the RPC style with signature version 1.0 (HMAC-SHA1), as
//! documented in 短信服务 › 签名机制
//! (<https://help.aliyun.com/document_detail/101343.html>; English:
//! <https://www.alibabacloud.com/help/en/sms/signature-method>):
//!
//! 1. every parameter except `Signature` is sorted by name, names and values
//!    are percent-encoded with RFC 3986 rules (`special_url_encode`: only
//!    `A-Z a-z 0-9 - _ . ~` stay as they are, a space becomes `%20`, `*`
//!    becomes `%2A`), joined as `name=value` with `&` (`canonical_query`);
//! 2. `StringToSign = HTTPMethod + "&" + encode("/") + "&" +
//!    encode(CanonicalizedQueryString)` (`string_to_sign`);
//! 3. `Signature = Base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign))`
//!    (`sign`).
//!
//! The request is a `POST` of the signed parameters as a form body to
//! <https://dysmsapi.aliyuncs.com/>; the JSON answer carries `Code` (`OK` on
//! success), `Message`, `BizId` and `RequestId`
//! (<https://help.aliyun.com/document_detail/55284.html>).
//!
//! The adapter takes the time from a [`Clock`] (the `Timestamp` parameter)
//! like any other code, and never puts the AccessKey secret in errors, logs
//! or `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use certhall_domain::{Clock, Timestamp};
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use sha1::Sha1;
use time::UtcOffset;

use crate::{Sms, SmsError, SmsGateway};

/// The public endpoint of Alibaba Cloud SMS.
pub const DEFAULT_ENDPOINT: &str = "https://dysmsapi.aliyuncs.com/";

/// The region every mainland SMS request names.
pub const DEFAULT_REGION_ID: &str = "cn-hangzhou";

/// The API version `SendSms` belongs to.
const API_VERSION: &str = "2017-05-25";

/// How long one request may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Everything but RFC 3986's unreserved characters is percent-encoded.
const ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// How CertHall reaches Alibaba Cloud SMS: credentials, the approved
/// signature (签名) and the approved template codes (模板 Code).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliyunConfig {
    /// The AccessKey ID of a RAM user allowed to call `dysms:SendSms`.
    pub access_key_id: String,
    /// The AccessKey secret; never printed (see the `Debug` impl).
    pub access_key_secret: String,
    /// The approved SMS signature name, e.g. `CertHall`, shown as 【…】.
    pub sign_name: String,
    /// [`SmsTemplate::key`](crate::SmsTemplate::key) → approved template
    /// code, e.g. `login_code = "SMS_123456789"`.
    pub templates: BTreeMap<String, String>,
    /// The API endpoint; [`DEFAULT_ENDPOINT`] unless set (tests point it at
    /// a local server).
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// The `RegionId` parameter; [`DEFAULT_REGION_ID`] unless set.
    #[serde(default = "default_region_id")]
    pub region_id: String,
}

fn default_endpoint() -> String {
    DEFAULT_ENDPOINT.to_owned()
}

fn default_region_id() -> String {
    DEFAULT_REGION_ID.to_owned()
}

impl fmt::Debug for AliyunConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AliyunConfig")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"***")
            .field("sign_name", &self.sign_name)
            .field("templates", &self.templates)
            .field("endpoint", &self.endpoint)
            .field("region_id", &self.region_id)
            .finish()
    }
}

/// The Alibaba Cloud SMS gateway.
#[derive(Debug)]
pub struct AliyunSms {
    config: AliyunConfig,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
}

impl AliyunSms {
    /// A gateway sending with `config`, reading the time from `clock`.
    /// Every request gives up after 10 seconds.
    pub fn new(config: AliyunConfig, clock: Arc<dyn Clock>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .unwrap_or_else(|e| {
                // Only a TLS backend that cannot start gets here; the
                // per-request timeout in `send` still applies.
                tracing::warn!(error = %e, "aliyun sms: default http client used");
                reqwest::Client::new()
            });
        Self {
            config,
            clock,
            client,
        }
    }

    /// The `SendSms` parameters, all but `Signature`.
    fn params(
        &self,
        sms: &Sms,
        template_code: &str,
        nonce: String,
        timestamp: String,
    ) -> BTreeMap<&'static str, String> {
        let template_param: serde_json::Map<String, serde_json::Value> = sms
            .template
            .params()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), serde_json::Value::String(value)))
            .collect();
        BTreeMap::from([
            ("AccessKeyId", self.config.access_key_id.clone()),
            ("Action", "SendSms".to_owned()),
            ("Format", "JSON".to_owned()),
            ("PhoneNumbers", sms.to.as_str().to_owned()),
            ("RegionId", self.config.region_id.clone()),
            ("SignName", self.config.sign_name.clone()),
            ("SignatureMethod", "HMAC-SHA1".to_owned()),
            ("SignatureNonce", nonce),
            ("SignatureVersion", "1.0".to_owned()),
            ("TemplateCode", template_code.to_owned()),
            (
                "TemplateParam",
                serde_json::Value::Object(template_param).to_string(),
            ),
            ("Timestamp", timestamp),
            ("Version", API_VERSION.to_owned()),
        ])
    }
}

#[async_trait]
impl SmsGateway for AliyunSms {
    async fn send(&self, sms: &Sms) -> Result<(), SmsError> {
        let key = sms.template.key();
        let template_code = self
            .config
            .templates
            .get(key)
            .ok_or(SmsError::TemplateNotConfigured(key))?;
        let params = self.params(
            sms,
            template_code,
            signature_nonce(),
            aliyun_timestamp(self.clock.now()),
        );
        let canonical = canonical_query(&params);
        let signature = sign(
            &self.config.access_key_secret,
            &string_to_sign("POST", &canonical),
        )
        .map_err(|_| SmsError::Transport("could not sign the request".to_owned()))?;
        let body = format!("{canonical}&Signature={}", special_url_encode(&signature));

        let response = self
            .client
            .post(&self.config.endpoint)
            .timeout(TIMEOUT)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| SmsError::Transport(e.to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| SmsError::Transport(e.to_string()))?;

        // Errors (a bad signature, flow control) come with a JSON body too,
        // sometimes with an HTTP error status: the body says more.
        let answer: SendSmsResponse = match serde_json::from_str(&text) {
            Ok(answer) => answer,
            Err(_) => {
                return Err(SmsError::Transport(format!(
                    "unreadable answer (HTTP {status})"
                )))
            }
        };
        if answer.code == "OK" && status.is_success() {
            tracing::info!(
                to = %sms.to.masked(),
                template = key,
                biz_id = answer.biz_id.as_deref().unwrap_or(""),
                request_id = answer.request_id.as_deref().unwrap_or(""),
                "aliyun sms accepted"
            );
            Ok(())
        } else {
            tracing::warn!(
                to = %sms.to.masked(),
                template = key,
                http_status = status.as_u16(),
                code = %answer.code,
                message = %answer.message,
                request_id = answer.request_id.as_deref().unwrap_or(""),
                "aliyun sms refused"
            );
            Err(SmsError::Provider {
                code: answer.code,
                message: answer.message,
            })
        }
    }
}

/// The JSON answer to `SendSms`.
#[derive(Debug, Deserialize)]
struct SendSmsResponse {
    #[serde(rename = "Code")]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
    #[serde(rename = "BizId", default)]
    biz_id: Option<String>,
    #[serde(rename = "RequestId", default)]
    request_id: Option<String>,
}

/// A fresh `SignatureNonce`: 128 random bits in hex.
fn signature_nonce() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// `YYYY-MM-DDThh:mm:ssZ` in UTC, whole seconds, as `Timestamp` requires.
fn aliyun_timestamp(t: Timestamp) -> String {
    let t = t.to_cst().to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Percent-encodes `s` the way Alibaba Cloud's POP signature expects
/// (their `specialUrlEncode`): UTF-8 bytes, RFC 3986 unreserved characters
/// kept, everything else `%XY` with upper-case hex, so a space is `%20`,
/// `*` is `%2A` and `~` stays `~`.
fn special_url_encode(s: &str) -> String {
    utf8_percent_encode(s, ENCODE_SET).to_string()
}

/// The canonicalized query string: parameters sorted by name, names and
/// values encoded, `name=value` pairs joined with `&`.
fn canonical_query(params: &BTreeMap<&str, String>) -> String {
    params
        .iter()
        .map(|(name, value)| format!("{}={}", special_url_encode(name), special_url_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `HTTPMethod & encode("/") & encode(canonical)`.
fn string_to_sign(method: &str, canonical: &str) -> String {
    format!(
        "{method}&{}&{}",
        special_url_encode("/"),
        special_url_encode(canonical)
    )
}

/// `Base64(HMAC-SHA1(secret + "&", string_to_sign))`.
///
/// HMAC takes keys of any length, so the error is never seen in practice.
fn sign(secret: &str, string_to_sign: &str) -> Result<String, hmac::digest::InvalidLength> {
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes())?;
    mac.update(string_to_sign.as_bytes());
    Ok(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use certhall_domain::clock::ManualClock;
    use certhall_domain::Phone;
    use percent_encoding::percent_decode_str;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use crate::SmsTemplate;

    #[test]
    fn encodes_like_special_url_encode() {
        let cases = [
            ("", ""),
            ("AZaz09", "AZaz09"),
            ("-_.~", "-_.~"),
            ("a b", "a%20b"),
            ("*", "%2A"),
            ("+", "%2B"),
            ("/", "%2F"),
            ("=", "%3D"),
            ("&", "%26"),
            (":", "%3A"),
            ("%", "%25"),
            ("\"", "%22"),
            ("{}", "%7B%7D"),
            ("阿里云", "%E9%98%BF%E9%87%8C%E4%BA%91"),
        ];
        for (input, want) in cases {
            assert_eq!(special_url_encode(input), want, "encoding {input:?}");
        }
    }

    #[test]
    fn canonical_query_sorts_and_encodes() {
        let params = BTreeMap::from([
            ("b", "x y".to_owned()),
            ("A", "1*2".to_owned()),
            ("a", "~/".to_owned()),
        ]);
        assert_eq!(canonical_query(&params), "A=1%2A2&a=~%2F&b=x%20y");
    }

    #[test]
    fn string_to_sign_encodes_the_canonical_query_again() {
        assert_eq!(
            string_to_sign("POST", "A=1%2A2&b=x%20y"),
            "POST&%2F&A%3D1%252A2%26b%3Dx%2520y"
        );
    }

    #[test]
    fn sign_keys_hmac_with_secret_and_ampersand() {
        // The key is the secret followed by '&', per the documentation.
        // Base64(HMAC-SHA1("ke&", "x")), computed independently (Python's
        // hmac module).
        assert_eq!(sign("ke", "x").unwrap(), "u5XB/TWJqswU4U0UsdmcVNyP39A=");
    }

    /// The worked example of 短信服务 › 签名机制,
    /// <https://help.aliyun.com/document_detail/101343.html> (formerly
    /// <https://help.aliyun.com/document_detail/56189.html>): AccessKeyId
    /// `testId`, AccessKeySecret `testSecret`, a `GET` of `SendSms`.
    #[test]
    fn reproduces_the_documented_signature() {
        let params = BTreeMap::from([
            ("AccessKeyId", "testId".to_owned()),
            ("Action", "SendSms".to_owned()),
            ("Format", "XML".to_owned()),
            ("OutId", "123".to_owned()),
            ("PhoneNumbers", "15300000001".to_owned()),
            ("RegionId", "cn-hangzhou".to_owned()),
            ("SignName", "阿里云短信测试专用".to_owned()),
            ("SignatureMethod", "HMAC-SHA1".to_owned()),
            (
                "SignatureNonce",
                "45e25e9b-0a6f-4070-8c85-2956eda1b466".to_owned(),
            ),
            ("SignatureVersion", "1.0".to_owned()),
            ("TemplateCode", "SMS_71390007".to_owned()),
            ("TemplateParam", r#"{"customer":"test"}"#.to_owned()),
            ("Timestamp", "2017-07-12T02:42:19Z".to_owned()),
            ("Version", "2017-05-25".to_owned()),
        ]);
        let canonical = canonical_query(&params);
        assert_eq!(
            canonical,
            "AccessKeyId=testId&Action=SendSms&Format=XML&OutId=123\
             &PhoneNumbers=15300000001&RegionId=cn-hangzhou\
             &SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5%8B%E8%AF%95%E4%B8%93%E7%94%A8\
             &SignatureMethod=HMAC-SHA1&SignatureNonce=45e25e9b-0a6f-4070-8c85-2956eda1b466\
             &SignatureVersion=1.0&TemplateCode=SMS_71390007\
             &TemplateParam=%7B%22customer%22%3A%22test%22%7D\
             &Timestamp=2017-07-12T02%3A42%3A19Z&Version=2017-05-25"
        );
        let to_sign = string_to_sign("GET", &canonical);
        assert_eq!(
            to_sign,
            "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML\
             %26OutId%3D123%26PhoneNumbers%3D15300000001%26RegionId%3Dcn-hangzhou\
             %26SignName%3D%25E9%2598%25BF%25E9%2587%258C%25E4%25BA%2591%25E7%259F%25AD\
             %25E4%25BF%25A1%25E6%25B5%258B%25E8%25AF%2595%25E4%25B8%2593%25E7%2594%25A8\
             %26SignatureMethod%3DHMAC-SHA1\
             %26SignatureNonce%3D45e25e9b-0a6f-4070-8c85-2956eda1b466\
             %26SignatureVersion%3D1.0%26TemplateCode%3DSMS_71390007\
             %26TemplateParam%3D%257B%2522customer%2522%253A%2522test%2522%257D\
             %26Timestamp%3D2017-07-12T02%253A42%253A19Z%26Version%3D2017-05-25"
        );
        let signature = sign("testSecret", &to_sign).unwrap();
        assert_eq!(signature, "zJDF+Lrzhj/ThnlvIToysFRq6t4=");
        assert_eq!(
            special_url_encode(&signature),
            "zJDF%2BLrzhj%2FThnlvIToysFRq6t4%3D"
        );
    }

    #[test]
    fn timestamp_is_whole_seconds_utc() {
        // 2026-11-25T06:30:00.250Z
        let t = Timestamp::from_millis(1_795_588_200_250);
        assert_eq!(aliyun_timestamp(t), "2026-11-25T06:30:00Z");
        let t = Timestamp::from_millis(1_499_827_339_999);
        assert_eq!(aliyun_timestamp(t), "2017-07-12T02:42:19Z");
    }

    #[test]
    fn nonces_differ() {
        let a = signature_nonce();
        assert_eq!(a.len(), 32);
        assert_ne!(a, signature_nonce());
    }

    #[test]
    fn debug_masks_the_secret() {
        let shown = format!("{:?}", config("http://127.0.0.1:9/"));
        assert!(shown.contains("***"));
        assert!(shown.contains("LTAI-test"));
        assert!(!shown.contains(SECRET));
    }

    #[test]
    fn config_defaults_and_rejects_unknown_fields() {
        let c: AliyunConfig = serde_json::from_str(
            r#"{"access_key_id":"id","access_key_secret":"s","sign_name":"CertHall",
                "templates":{"login_code":"SMS_1"}}"#,
        )
        .unwrap();
        assert_eq!(c.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(c.region_id, DEFAULT_REGION_ID);
        assert_eq!(c.templates["login_code"], "SMS_1");
        let bad = serde_json::from_str::<AliyunConfig>(
            r#"{"access_key_id":"id","access_key_secret":"s","sign_name":"CertHall",
                "templates":{},"secret":"typo"}"#,
        );
        assert!(bad.is_err());
    }

    const SECRET: &str = "s3cr3t-do-not-log";
    /// 2026-11-25T06:30:00.250Z
    const NOW_MS: i64 = 1_795_588_200_250;

    fn config(endpoint: &str) -> AliyunConfig {
        AliyunConfig {
            access_key_id: "LTAI-test".to_owned(),
            access_key_secret: SECRET.to_owned(),
            sign_name: "CertHall".to_owned(),
            templates: BTreeMap::from([("login_code".to_owned(), "SMS_465000001".to_owned())]),
            endpoint: endpoint.to_owned(),
            region_id: DEFAULT_REGION_ID.to_owned(),
        }
    }

    fn gateway(endpoint: &str) -> AliyunSms {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(NOW_MS)));
        AliyunSms::new(config(endpoint), clock)
    }

    fn login_sms() -> Sms {
        Sms {
            to: Phone::parse("15300000001").unwrap(),
            template: SmsTemplate::LoginCode {
                code: "042137".to_owned(),
                minutes: 5,
            },
        }
    }

    /// What the fake Aliyun received.
    struct Captured {
        request_line: String,
        headers: String,
        body: String,
    }

    /// Serves one HTTP request on 127.0.0.1 with `status` and `answer`;
    /// returns the endpoint URL and the captured request.
    async fn fake_aliyun(
        status: &'static str,
        answer: &'static str,
    ) -> (String, tokio::task::JoinHandle<Captured>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/", listener.local_addr().unwrap());
        let handle = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0_u8; 4096];
            let head_end = loop {
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "connection closed before the headers ended");
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i;
                }
            };
            let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .expect("a content-length header");
            while buf.len() < head_end + 4 + length {
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "connection closed before the body ended");
                buf.extend_from_slice(&chunk[..n]);
            }
            let body =
                String::from_utf8(buf[head_end + 4..head_end + 4 + length].to_vec()).unwrap();
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json;charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
            stream.write_all(response.as_bytes()).await.unwrap();
            stream.shutdown().await.unwrap();
            let (request_line, headers) = head.split_once("\r\n").unwrap();
            Captured {
                request_line: request_line.to_owned(),
                headers: headers.to_owned(),
                body,
            }
        });
        (endpoint, handle)
    }

    /// Decodes the form body and checks its signature against `SECRET`.
    fn check_signed(captured: &Captured) -> BTreeMap<String, String> {
        assert_eq!(captured.request_line, "POST / HTTP/1.1");
        assert!(captured
            .headers
            .to_ascii_lowercase()
            .contains("content-type: application/x-www-form-urlencoded"));
        let mut params: BTreeMap<String, String> = captured
            .body
            .split('&')
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap();
                (
                    percent_decode_str(name).decode_utf8().unwrap().into_owned(),
                    percent_decode_str(value)
                        .decode_utf8()
                        .unwrap()
                        .into_owned(),
                )
            })
            .collect();
        assert!(!captured.body.contains('+'), "spaces are %20, never +");
        let signature = params.remove("Signature").expect("a Signature");
        let unsigned: BTreeMap<&str, String> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let want = sign(SECRET, &string_to_sign("POST", &canonical_query(&unsigned))).unwrap();
        assert_eq!(signature, want, "signature valid for the other parameters");
        params
    }

    fn check_send_sms(params: &BTreeMap<String, String>) {
        let nonce = &params["SignatureNonce"];
        assert_eq!(nonce.len(), 32);
        let expected = [
            ("AccessKeyId", "LTAI-test"),
            ("Action", "SendSms"),
            ("Format", "JSON"),
            ("PhoneNumbers", "15300000001"),
            ("RegionId", "cn-hangzhou"),
            ("SignName", "CertHall"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", nonce.as_str()),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", "SMS_465000001"),
            ("TemplateParam", r#"{"code":"042137","minutes":"5"}"#),
            ("Timestamp", "2026-11-25T06:30:00Z"),
            ("Version", "2017-05-25"),
        ];
        let got: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn sends_a_signed_request_and_accepts_ok() {
        let (endpoint, server) = fake_aliyun(
            "200 OK",
            r#"{"Code":"OK","Message":"OK","BizId":"900619746936498440^0","RequestId":"F655A8D5-B967-440B-8683-DAD6FF8DE990"}"#,
        )
        .await;
        gateway(&endpoint).send(&login_sms()).await.unwrap();
        let captured = server.await.unwrap();
        let params = check_signed(&captured);
        check_send_sms(&params);
        assert!(!captured.body.contains(SECRET));
    }

    #[tokio::test]
    async fn provider_refusal_is_reported() {
        let (endpoint, server) = fake_aliyun(
            "200 OK",
            r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"触发分钟级流控","RequestId":"A1"}"#,
        )
        .await;
        let err = gateway(&endpoint).send(&login_sms()).await.unwrap_err();
        let params = check_signed(&server.await.unwrap());
        check_send_sms(&params);
        match err {
            SmsError::Provider { code, message } => {
                assert_eq!(code, "isv.BUSINESS_LIMIT_CONTROL");
                assert_eq!(message, "触发分钟级流控");
            }
            other => panic!("expected a provider error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn http_error_with_json_body_is_a_provider_error() {
        let (endpoint, server) = fake_aliyun(
            "400 Bad Request",
            r#"{"Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation.","RequestId":"B2"}"#,
        )
        .await;
        let err = gateway(&endpoint).send(&login_sms()).await.unwrap_err();
        server.await.unwrap();
        assert!(
            matches!(&err, SmsError::Provider { code, .. } if code == "SignatureDoesNotMatch"),
            "{err:?}"
        );
        assert!(!err.to_string().contains(SECRET));
    }

    #[tokio::test]
    async fn unreadable_answer_is_a_transport_error() {
        let (endpoint, server) = fake_aliyun("502 Bad Gateway", "<html>bad gateway</html>").await;
        let err = gateway(&endpoint).send(&login_sms()).await.unwrap_err();
        server.await.unwrap();
        assert!(matches!(err, SmsError::Transport(_)), "{err:?}");
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_a_transport_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let err = gateway(&endpoint).send(&login_sms()).await.unwrap_err();
        assert!(matches!(&err, SmsError::Transport(_)), "{err:?}");
        assert!(!err.to_string().contains(SECRET));
    }

    #[tokio::test]
    async fn unmapped_template_is_not_sent() {
        let mut c = config("http://127.0.0.1:9/");
        c.templates.clear();
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(NOW_MS)));
        let err = AliyunSms::new(c, clock)
            .send(&login_sms())
            .await
            .unwrap_err();
        assert!(
            matches!(err, SmsError::TemplateNotConfigured("login_code")),
            "{err:?}"
        );
    }
}
