//! 注销 online (issue 12): the applicant revokes a certificate with a
//! reason and an SMS code; wrong, expired and missing codes change
//! nothing; OCSP and the CRL say revoked as soon as the page returns
//! (checked by OpenSSL).

use std::time::Duration;

use axum::http::Method;
use certhall_ca::Family;
use certhall_service::ca::role;
use certhall_testkit::client::Client;
use certhall_testkit::fixtures::openssl;
use certhall_testkit::TestApp;

use crate::audit_events;
use crate::reminders::{ca_ready, certificate_for, certificate_of};

fn fields(f: &[(&str, &str)]) -> Vec<(String, String)> {
    f.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn post(c: &mut Client<'_>, path: &str, csrf: &str, f: &[(&str, &str)]) -> (u16, String) {
    let mut all = fields(f);
    all.push(("_csrf".into(), csrf.to_owned()));
    let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = c.post_form(path, &refs).await;
    (r.status.as_u16(), r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applicant_revokes_a_certificate_online_with_an_sms_code() {
    for app in TestApp::each().await {
        let be = app.backend();
        ca_ready(&app).await;
        let s = &app.services;
        let phone = "13600000931";
        let (me, x) = certificate_for(&app, phone, "枣庄戊科技有限公司").await;
        let path = format!("/certificates/{}/revoke", x.serial);

        let mut c = Client::new(&app, "10.21.0.1");
        c.page_login(phone).await;
        let detail = c.get(&format!("/certificates/{}", x.serial)).await.body;
        assert!(detail.contains(&path), "{be}: the page offers 注销证书");
        let page = c.get(&path).await;
        assert_eq!(page.status.as_u16(), 200, "{be}");
        assert!(page.body.contains("证书介质（UKey）丢失"), "{be}");
        let csrf = page.csrf();

        // No code yet: refused, what was typed is kept.
        let typed = [
            ("action", "revoke"),
            ("reason", "key_lost"),
            ("comment", "UKey 随包丢失"),
            ("understood", "1"),
        ];
        let (status, body) = post(&mut c, &path, &csrf, &typed).await;
        assert_eq!(status, 400, "{be}: {body}");
        assert!(body.contains("验证码为6位数字"), "{be}");
        assert!(body.contains("UKey 随包丢失") && body.contains("value=\"key_lost\" checked"));

        // The login code (still the latest SMS) does not confirm a revocation.
        let login_code = app.latest_code(phone).await.unwrap();
        let (_, body) = post(
            &mut c,
            &path,
            &csrf,
            &[
                ("action", "revoke"),
                ("reason", "key_lost"),
                ("code", &login_code),
                ("understood", "1"),
            ],
        )
        .await;
        assert!(body.contains("请先获取短信验证码"), "{be}: {body}");

        // The code goes to the account's phone, named for what it confirms.
        let (status, body) = post(
            &mut c,
            &path,
            &csrf,
            &[
                ("action", "code"),
                ("reason", "key_lost"),
                ("comment", "UKey 随包丢失"),
            ],
        )
        .await;
        assert_eq!(status, 200, "{be}");
        assert!(body.contains("验证码已发送至 136****0931"), "{be}: {body}");
        assert!(body.contains("UKey 随包丢失"), "{be}: kept across the send");
        let sms = certhall_store::sms::outbox_recent(&app.db.store, Some(phone), 1)
            .await
            .unwrap();
        assert_eq!(sms[0].template, "confirm_code");
        assert!(
            sms[0].body.contains("证书注销（枣庄戊科技有限公司）"),
            "{}",
            sms[0].body
        );
        // Right after the login code (the cooldown is per purpose), but
        // not twice in a minute.
        let (_, body) = post(
            &mut c,
            &path,
            &csrf,
            &[("action", "code"), ("reason", "key_lost")],
        )
        .await;
        assert!(body.contains("秒后再重新获取"), "{be}: {body}");
        let code = app.latest_code(phone).await.unwrap();
        let wrong = if code == "000000" { "111111" } else { "000000" };

        // Wrong code: tries left shown; unticked box; no reason.
        let (status, body) = post(
            &mut c,
            &path,
            &csrf,
            &[
                ("action", "revoke"),
                ("reason", "key_lost"),
                ("code", wrong),
                ("understood", "1"),
            ],
        )
        .await;
        assert_eq!(status, 401, "{be}: a wrong code, as on the login page");
        assert!(body.contains("验证码不正确，还可尝试4次"), "{be}: {body}");
        let (_, body) = post(
            &mut c,
            &path,
            &csrf,
            &[
                ("action", "revoke"),
                ("reason", "key_lost"),
                ("code", &code),
            ],
        )
        .await;
        assert!(body.contains("请勾选"), "{be}");
        let (_, body) = post(
            &mut c,
            &path,
            &csrf,
            &[("action", "revoke"), ("code", &code), ("understood", "1")],
        )
        .await;
        assert!(body.contains("请选择注销原因"), "{be}");
        let long = "长".repeat(201);
        let (_, body) = post(
            &mut c,
            &path,
            &csrf,
            &[
                ("action", "revoke"),
                ("reason", "key_lost"),
                ("comment", &long),
                ("code", &code),
                ("understood", "1"),
            ],
        )
        .await;
        assert!(body.contains("不能超过200个字"), "{be}");

        // Expired: refused, nothing written.
        app.clock.advance(Duration::from_secs(5 * 60 + 1));
        let (status, body) = post(
            &mut c,
            &path,
            &csrf,
            &[
                ("action", "revoke"),
                ("reason", "key_lost"),
                ("code", &code),
                ("understood", "1"),
            ],
        )
        .await;
        assert_eq!(status, 401, "{be}: an expired code, as on the login page");
        assert!(body.contains("验证码已过期，请重新获取"), "{be}: {body}");
        assert!(
            s.ca_certificate(&x.serial)
                .await
                .unwrap()
                .revocation
                .is_none(),
            "{be}"
        );
        assert!(
            audit_events(&app, "ca.certificate_revoked")
                .await
                .is_empty(),
            "{be}"
        );

        // A fresh code: revoked.
        post(&mut c, &path, &csrf, &[("action", "code")]).await;
        let code = app.latest_code(phone).await.unwrap();
        let r = {
            let mut all = fields(&[
                ("action", "revoke"),
                ("reason", "key_lost"),
                ("comment", "UKey 随包丢失"),
                ("code", &code),
                ("understood", "1"),
            ]);
            all.push(("_csrf".into(), csrf.clone()));
            let refs: Vec<(&str, &str)> =
                all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            c.post_form(&path, &refs).await
        };
        assert_eq!(r.status.as_u16(), 303, "{be}: {}", r.body);
        let done = c.get(r.location()).await.body;
        assert!(
            done.contains("证书已注销") && done.contains("已注销"),
            "{be}"
        );
        let row = s.ca_certificate(&x.serial).await.unwrap();
        let rev = row.revocation.unwrap();
        assert_eq!(
            (rev.reason.as_str(), rev.comment.as_deref()),
            ("keyCompromise", Some("UKey 随包丢失"))
        );
        assert_eq!(rev.actor, format!("account:{}", me.0), "{be}");
        let titles: Vec<String> = s
            .messages(me, 1, 20)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|m| m.title)
            .collect();
        assert!(
            titles.contains(&"证书已注销".to_owned()),
            "{be}: {titles:?}"
        );
        assert_eq!(audit_events(&app, "ca.certificate_revoked").await.len(), 1);

        // OCSP and the CRL say so at once (OpenSSL reads both).
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("ee.pem"),
            certhall_ca::issue::to_pem(&x.der).unwrap(),
        )
        .unwrap();
        let issuing = s.ca_active(Family::P256, role::ISSUING).await.unwrap();
        std::fs::write(
            d.join("issuing.pem"),
            certhall_ca::issue::to_pem(&issuing.der).unwrap(),
        )
        .unwrap();
        openssl(
            d,
            &[
                "ocsp",
                "-issuer",
                "issuing.pem",
                "-cert",
                "ee.pem",
                "-no_nonce",
                "-reqout",
                "req.der",
            ],
        );
        let ocsp = c
            .send_bytes(
                Method::POST,
                "/ocsp",
                Some("application/ocsp-request"),
                std::fs::read(d.join("req.der")).unwrap(),
                &[],
            )
            .await;
        std::fs::write(d.join("resp.der"), &ocsp.raw).unwrap();
        let text = openssl(
            d,
            &[
                "ocsp",
                "-respin",
                "resp.der",
                "-issuer",
                "issuing.pem",
                "-cert",
                "ee.pem",
                "-noverify",
            ],
        );
        assert!(
            text.lines().any(|l| l.trim() == "revoked") && text.contains("Reason: keyCompromise"),
            "{be}: {text}"
        );
        let crl = c.get("/crl/p256-issuing.crl").await;
        std::fs::write(d.join("now.crl"), &crl.raw).unwrap();
        let text = openssl(
            d,
            &["crl", "-inform", "DER", "-in", "now.crl", "-noout", "-text"],
        );
        assert!(
            text.contains(&x.serial.to_uppercase()) && text.contains("Key Compromise"),
            "{be}: {text}"
        );

        // Once is enough; nobody else may.
        let again = c.get(&path).await.body;
        assert!(again.contains("该证书已经注销，无需重复操作"), "{be}");
        let (_, body) = post(&mut c, &path, &csrf, &[("action", "code")]).await;
        assert!(body.contains("该证书已经注销"), "{be}");
        let (_, y) = certificate_for(&app, phone, "枣庄己有限公司").await;
        let mut other = Client::new(&app, "10.21.0.2");
        other.page_login("13600000932").await;
        let other_path = format!("/certificates/{}/revoke", y.serial);
        assert_eq!(other.get(&other_path).await.status.as_u16(), 404, "{be}");
        let csrf = other.get("/").await.csrf();
        let (status, _) = post(&mut other, &other_path, &csrf, &[("action", "code")]).await;
        assert_eq!(status, 404, "{be}");
        assert!(s
            .ca_certificate(&y.serial)
            .await
            .unwrap()
            .revocation
            .is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_revokes_with_a_reason_and_an_admin_revokes_an_enterprise() {
    use certhall_domain::audit::Actor as A;
    for app in TestApp::each().await {
        let be = app.backend();
        ca_ready(&app).await;
        let s = &app.services;
        let e_uscc = certhall_testkit::fixtures::valid_uscc();
        let (owner, e1) = certificate_of(&app, "13600000941", "枣庄庚物流有限公司", &e_uscc).await;
        let (_, e2) = certificate_of(&app, "13600000942", "枣庄庚物流有限公司", &e_uscc).await;
        let (_, e3) = certificate_of(&app, "13600000943", "枣庄庚物流有限公司", &e_uscc).await;
        let (_, f1) = certificate_for(&app, "13600000944", "枣庄辛有限公司").await;
        for (name, phone, role) in [
            ("op941", "13500000941", "operator"),
            ("admin942", "13500000942", "admin"),
        ] {
            s.add_operator(name, phone, role, "counter2026x", A::Cli("test".into()))
                .await
                .unwrap();
        }

        // An operator finds the enterprise's certificates by name.
        let mut op = Client::new(&app, "10.22.0.1");
        op.counter_login("op941", "counter2026x", "13500000941")
            .await;
        let page = op
            .get("/counter/certificates?q=%E6%9E%A3%E5%BA%84%E5%BA%9A")
            .await;
        assert_eq!(page.status.as_u16(), 200, "{be}");
        assert_eq!(
            page.body
                .matches("data-testid=\"certificate-found\"")
                .count(),
            3,
            "{be}"
        );
        assert!(
            !page.body.contains("bulk-revoke-form"),
            "{be}: operators see no bulk form"
        );
        let csrf = page.csrf();
        let path = format!("/counter/certificates/{}/revoke", e1.serial);
        // No note: refused, nothing revoked.
        let (status, body) = post(
            &mut op,
            &path,
            &csrf,
            &[("reason", "keyCompromise"), ("q", "枣庄庚")],
        )
        .await;
        assert_eq!(status, 400, "{be}");
        assert!(body.contains("请填写注销说明"), "{be}");
        // superseded is not the counter's to give.
        let (_, body) = post(
            &mut op,
            &path,
            &csrf,
            &[("reason", "superseded"), ("comment", "x")],
        )
        .await;
        assert!(body.contains("请选择注销原因"), "{be}");
        assert!(s
            .ca_certificate(&e1.serial)
            .await
            .unwrap()
            .revocation
            .is_none());
        let r = {
            let refs = [
                ("_csrf", csrf.as_str()),
                ("reason", "keyCompromise"),
                ("comment", "持证人来柜台申请，UKey 被盗"),
                ("q", "枣庄庚"),
            ];
            op.post_form(&path, &refs).await
        };
        assert_eq!(r.status.as_u16(), 303, "{be}: {}", r.body);
        let back = op.get(r.location()).await.body;
        assert!(
            back.contains("证书已注销") && back.contains("已注销（密钥泄露"),
            "{be}"
        );
        let rev = s
            .ca_certificate(&e1.serial)
            .await
            .unwrap()
            .revocation
            .unwrap();
        assert!(rev.actor.starts_with("operator:"), "{be}: {}", rev.actor);
        assert_eq!(rev.comment.as_deref(), Some("持证人来柜台申请，UKey 被盗"));
        let titles: Vec<String> = s
            .messages(owner, 1, 20)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|m| m.body)
            .collect();
        assert!(
            titles.iter().any(|b| b.contains("已由柜台")),
            "{be}: {titles:?}"
        );
        // Bulk revocation is an administrator's.
        let (status, body) = post(
            &mut op,
            "/counter/certificates/bulk-revoke",
            &csrf,
            &[
                ("uscc", &e_uscc),
                ("reason", "cessationOfOperation"),
                ("comment", "企业注销"),
            ],
        )
        .await;
        assert_eq!(status, 403, "{be}");
        assert!(body.contains("仅限管理员"), "{be}");

        let mut admin = Client::new(&app, "10.22.0.2");
        admin
            .counter_login("admin942", "counter2026x", "13500000942")
            .await;
        let page = admin.get("/counter/certificates").await;
        assert!(page.body.contains("bulk-revoke-form"), "{be}");
        let csrf = page.csrf();
        let (_, body) = post(
            &mut admin,
            "/counter/certificates/bulk-revoke",
            &csrf,
            &[
                ("uscc", "91350100M000100Y4X"),
                ("reason", "cessationOfOperation"),
                ("comment", "企业注销"),
            ],
        )
        .await;
        assert!(body.contains("统一社会信用代码"), "{be}: {body}");
        let r = {
            let refs = [
                ("_csrf", csrf.as_str()),
                ("uscc", e_uscc.as_str()),
                ("reason", "cessationOfOperation"),
                ("comment", "企业已注销登记"),
            ];
            admin
                .post_form("/counter/certificates/bulk-revoke", &refs)
                .await
        };
        assert_eq!(r.status.as_u16(), 303, "{be}: {}", r.body);
        assert!(
            admin
                .get(r.location())
                .await
                .body
                .contains("已批量注销 2 张证书"),
            "{be}"
        );
        for c in [&e2, &e3] {
            let rev = s
                .ca_certificate(&c.serial)
                .await
                .unwrap()
                .revocation
                .unwrap();
            assert_eq!(rev.reason, "cessationOfOperation", "{be}");
            assert_eq!(rev.comment.as_deref(), Some("批量注销：企业已注销登记"));
        }
        assert!(
            s.ca_certificate(&f1.serial)
                .await
                .unwrap()
                .revocation
                .is_none(),
            "{be}: another enterprise untouched"
        );
        // The CRL lists all three.
        let crl = admin.get("/crl/p256-issuing.crl").await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("now.crl"), &crl.raw).unwrap();
        let text = openssl(
            dir.path(),
            &["crl", "-inform", "DER", "-in", "now.crl", "-noout", "-text"],
        );
        for c in [&e1, &e2, &e3] {
            assert!(text.contains(&c.serial.to_uppercase()), "{be}: {text}");
        }
        // Nothing left to revoke.
        let (_, body) = post(
            &mut admin,
            "/counter/certificates/bulk-revoke",
            &csrf,
            &[
                ("uscc", &e_uscc),
                ("reason", "cessationOfOperation"),
                ("comment", "再次"),
            ],
        )
        .await;
        assert!(body.contains("没有有效证书"), "{be}");
        assert_eq!(
            audit_events(&app, "ca.certificate_revoked").await.len(),
            3,
            "{be}"
        );
    }
}
