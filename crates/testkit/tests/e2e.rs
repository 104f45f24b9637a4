//! End-to-end tests in a real headless Chromium against CertHall served on
//! a real port, on SQLite and (when configured, always under `CI=true`) on
//! PostgreSQL: log in with an SMS code read from the demo outbox over HTTP,
//! read the welcome message, log out; a wrong code; a new certificate by
//! authorization letter (license OCR, refusal, counter rejection,
//! resubmission, approval) and by the legal representative's SMS reply.
//!
//! Screenshots go to `target/e2e-artifacts/<backend>-*.png`. Without
//! Chromium the tests are skipped (outside CI) with a `SKIPPED:` line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use certhall_testkit::browser::Browser;
use certhall_testkit::fixtures;
use certhall_testkit::{extract_code, RunningServer, TestApp};
use serde_json::Value;

const WELCOME: &str = "欢迎使用CertHall网上营业厅";

/// The code in the newest SMS to `phone`, read from `/dev/outbox.json` as a
/// tester would (not from the database).
async fn code_from_outbox(server: &RunningServer, phone: &str) -> String {
    let url = server.url("/dev/outbox.json");
    let reply = reqwest::get(&url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(reply.status().is_success(), "GET {url}: {}", reply.status());
    let sent: Vec<Value> = reply
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not a JSON array: {e}"));
    let to_phone = sent
        .iter()
        .find(|m| m["to"].as_str().is_some_and(|to| to.ends_with(phone)))
        .unwrap_or_else(|| panic!("no SMS to {phone} in {url}: {sent:?}"));
    let body = to_phone["body"].as_str().unwrap_or_default();
    extract_code(body).unwrap_or_else(|| panic!("no six-digit code in the SMS {body:?}"))
}

/// On `/login`: types `phone`, clicks 获取验证码 and waits for the notice.
async fn request_code(browser: &Browser, phone: &str) {
    browser.fill("#phone", phone).await;
    assert_eq!(browser.text_of("#send-code").await, "获取验证码");
    browser.click_and_wait_for_navigation("#send-code").await;
    let masked = format!("{}****{}", &phone[..3], &phone[7..]);
    assert_eq!(
        browser.text_of("[data-testid=notice]").await,
        format!("验证码已发送至 {masked}，5分钟内有效。")
    );
    let path = browser.current_path().await;
    assert!(
        path.starts_with(&format!("/login?sent=1&phone={phone}")),
        "after sending a code: {path}"
    );
    // The form still holds the phone, ready for the code, and the button
    // counts down before another code may be asked for.
    assert_eq!(browser.value_of("#phone").await, phone);
    assert!(
        browser.attribute("#send-code", "disabled").await.is_some(),
        "resend not disabled"
    );
    let label = browser.text_of("#send-code").await;
    assert!(
        label.starts_with("重新获取("),
        "resend button reads {label:?}"
    );
}

async fn login_and_messages(app: &TestApp, browser: &Browser) {
    let be = app.backend();
    let server = app.serve().await;
    let phone = "13800138000";

    // The login page, in Chinese, in demo mode.
    browser.goto(&server.url("/login")).await;
    assert_eq!(browser.current_path().await, "/login");
    assert!(
        browser.is_visible("[data-testid=demo-banner]").await,
        "demo banner hidden"
    );
    assert!(browser
        .text_of("[data-testid=demo-banner]")
        .await
        .contains("演示模式"));
    assert_eq!(browser.text_of("#login-title").await, "登录网上营业厅");
    let fonts = browser
        .assert_glyphs_render("[data-testid=demo-banner] strong", "演示模式")
        .await;
    assert!(
        !fonts.is_empty(),
        "{be}: Chromium reports no font for the banner"
    );
    assert!(!browser.exists("[data-testid=error]").await);
    browser.screenshot(&format!("{be}-login.png")).await;

    // Ask for a code; read it from the demo outbox; log in.
    request_code(browser, phone).await;
    browser.screenshot(&format!("{be}-code-sent.png")).await;
    let code = code_from_outbox(&server, phone).await;
    browser.fill("#code", &code).await;
    browser.click_and_wait_for_navigation("#login-submit").await;
    assert_eq!(browser.current_path().await, "/", "{be}: after logging in");

    // Home: greeting, workbench, the welcome message unread.
    assert_eq!(browser.text_of("main h1").await, "您好，138****8000");
    assert_eq!(browser.count("[data-testid=tile]").await, 7);
    assert!(browser.is_visible("[data-testid=demo-banner]").await);
    assert_eq!(
        browser
            .texts_of("[data-testid=message] .message-title")
            .await,
        [WELCOME]
    );
    assert_eq!(
        browser
            .texts_of("[data-testid=message].unread .message-title")
            .await,
        [WELCOME],
        "{be}: the welcome message should be unread"
    );
    assert_eq!(browser.text_of("[data-testid=unread-count]").await, "1");
    assert_eq!(browser.count("[data-testid=mark-read]").await, 1);
    browser.screenshot(&format!("{be}-home.png")).await;
    browser.use_phone_viewport().await;
    let widths = browser
        .eval("[document.documentElement.scrollWidth, innerWidth]")
        .await;
    assert_eq!(
        widths[0], widths[1],
        "{be}: the home page scrolls sideways on a phone"
    );
    browser.screenshot(&format!("{be}-home-phone.png")).await;
    browser.use_desktop_viewport().await;

    // 标为已读: back on the home page, nothing unread any more.
    let mark = "[data-testid=message].unread [data-testid=mark-read]";
    assert_eq!(browser.text_of(mark).await, "标为已读");
    browser.click_and_wait_for_navigation(mark).await;
    assert_eq!(
        browser.current_path().await,
        "/",
        "{be}: after marking read"
    );
    assert!(
        !browser.exists("[data-testid=unread-count]").await,
        "{be}: unread badge still shown"
    );
    assert_eq!(browser.count("[data-testid=message].unread").await, 0);
    assert_eq!(browser.count("[data-testid=mark-read]").await, 0);
    assert_eq!(
        browser
            .texts_of("[data-testid=message] .message-title")
            .await,
        [WELCOME]
    );

    // 消息提醒 page.
    browser.goto(&server.url("/messages")).await;
    assert_eq!(browser.current_path().await, "/messages");
    assert_eq!(
        browser.text_of("[data-testid=message-counts]").await,
        "共 1 条，未读 0 条"
    );
    assert_eq!(browser.count("[data-testid=message]").await, 1);
    browser.screenshot(&format!("{be}-messages.png")).await;

    // 退出, and the session is gone.
    assert_eq!(browser.text_of("[data-testid=logout]").await, "退出");
    browser
        .click_and_wait_for_navigation("[data-testid=logout]")
        .await;
    assert_eq!(browser.current_path().await, "/login?bye=1");
    assert_eq!(
        browser.text_of("[data-testid=notice]").await,
        "您已安全退出。"
    );
    assert!(!browser.exists("[data-testid=logout]").await);
    browser.screenshot(&format!("{be}-logout.png")).await;
    browser.goto(&server.url("/")).await;
    let path = browser.current_path().await;
    assert!(
        path.starts_with("/login"),
        "{be}: / after logout should redirect to /login, got {path}"
    );
    assert!(browser.exists("#login-submit").await);
}

async fn wrong_code(app: &TestApp, browser: &Browser) {
    let be = app.backend();
    let server = app.serve().await;
    let phone = "13900139000";

    browser.goto(&server.url("/login")).await;
    request_code(browser, phone).await;
    let code = code_from_outbox(&server, phone).await;
    // The same code with its last digit changed.
    let mut wrong: Vec<u8> = code.into_bytes();
    let last = wrong.len() - 1;
    wrong[last] = b'0' + (wrong[last] - b'0' + 1) % 10;
    let wrong = String::from_utf8(wrong).expect("digits");
    browser.fill("#code", &wrong).await;
    browser.click_and_wait_for_navigation("#login-submit").await;

    assert_eq!(
        browser.text_of("[data-testid=error]").await,
        "验证码不正确，还可尝试4次。"
    );
    assert_eq!(
        browser.current_path().await,
        "/login",
        "{be}: a refused login stays on the form"
    );
    assert_eq!(
        browser.value_of("#phone").await,
        phone,
        "{be}: the typed phone was lost"
    );
    assert!(
        !browser.exists("[data-testid=logout]").await,
        "{be}: logged in with a wrong code"
    );
    browser.screenshot(&format!("{be}-wrong-code.png")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_read_the_welcome_message_and_log_out() {
    for app in TestApp::each().await {
        let Some(mut browser) = Browser::launch().await else {
            return;
        };
        browser.set_label(&format!("{}-login", app.backend()));
        login_and_messages(&app, &browser).await;
        browser.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_code_is_explained_and_keeps_the_phone() {
    for app in TestApp::each().await {
        let Some(mut browser) = Browser::launch().await else {
            return;
        };
        browser.set_label(&format!("{}-wrong-code", app.backend()));
        wrong_code(&app, &browser).await;
        browser.close().await;
    }
}

/// 证书新办 steps 1–4 in the browser, then the counter's review of the
/// order: an operator logs in at /counter (password + SMS code from the
/// outbox), returns the order with a reason, and the applicant sees it.
/// Step 5 (materials and authorization) is not built yet, so the test moves
/// the order into the review queue through the service, as step 5 will.
/// Writes the test's images where the browser's file dialog can pick them.
fn image_files(
    dir: &std::path::Path,
) -> std::collections::HashMap<&'static str, std::path::PathBuf> {
    let (license, _) = fixtures::license_jpeg(LICENSE_SEED);
    let files: [(&str, &str, Vec<u8>); 7] = [
        ("license", "营业执照.jpg", license),
        ("company_seal", "公章.png", fixtures::png(480, 480)),
        ("legal_rep_seal", "法人章.png", fixtures::png(400, 400)),
        ("legal_rep_signature", "签名.jpg", fixtures::jpeg(720, 360)),
        (
            "authorization_letter",
            "授权委托书.jpg",
            fixtures::jpeg(900, 1270),
        ),
        (
            "letter_v2",
            "授权委托书-补签.jpg",
            fixtures::jpeg(1000, 1400),
        ),
        (
            "fake",
            "公章-其实是文本.png",
            b"this is a text file renamed .png\n".to_vec(),
        ),
    ];
    files
        .into_iter()
        .map(|(key, name, bytes)| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            (key, path)
        })
        .collect()
}

const LICENSE_SEED: u64 = 20_261_125;

/// Step 3's 识别营业执照 with a license chosen: while it is read the page
/// says so and takes no second click; then the answer arrives.
async fn read_license_showing_progress(browser: &Browser) {
    browser.click("[data-testid=read-license]").await;
    browser
        .wait_until(
            "(() => { const s = document.querySelector('[data-testid=reading-status]'); \
               const b = document.querySelector('[data-testid=read-license]'); \
               return !!s && !s.hidden && s.textContent.includes('正在上传并识别营业执照') && b.disabled; })()",
            "the reading shown as under way",
        )
        .await;
    browser
        .wait_for_text("[data-testid=notice]", "营业执照已上传并识别")
        .await;
}

/// Logs `phone` in through the login page (unless still logged in).
async fn log_in(server: &RunningServer, browser: &Browser, phone: &str) {
    browser.goto(&server.url("/login")).await;
    if browser.current_path().await == "/" {
        return; // still logged in
    }
    request_code(browser, phone).await;
    let code = code_from_outbox(server, phone).await;
    browser.fill("#code", &code).await;
    browser.click_and_wait_for_navigation("#login-submit").await;
    assert_eq!(browser.current_path().await, "/");
}

/// The counter operator logs in (password, then the code from the outbox),
/// unless still logged in.
async fn counter_log_in(server: &RunningServer, browser: &Browser, username: &str, phone: &str) {
    browser.goto(&server.url("/counter")).await;
    if browser.current_path().await == "/counter" {
        return; // still logged in
    }
    browser.goto(&server.url("/counter/login")).await;
    browser.fill("#username", username).await;
    browser.fill("#password", "Counter-pass-2026").await;
    browser
        .click_and_wait_for_navigation("[data-testid=counter-login-submit]")
        .await;
    let code = code_from_outbox(server, phone).await;
    browser.fill("#code", &code).await;
    browser
        .click_and_wait_for_navigation("[data-testid=counter-code-submit]")
        .await;
}

async fn letter_route(app: &TestApp, browser: &Browser) {
    let be = app.backend();
    app.services.ca_seed_profiles().await.unwrap();
    app.services.ensure_demo_applications().await.unwrap();
    let server = app.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let files = image_files(dir.path());
    let (_, printed) = fixtures::license_jpeg(LICENSE_SEED);
    let phone = "13700137000";
    let shot = |name: &str| format!("{be}-letter-{name}.png");

    log_in(&server, browser, phone).await;
    browser
        .click_and_wait_for_navigation("a.tile[href='/apply/new']")
        .await;
    browser.screenshot(&shot("00-start")).await;
    browser
        .click_and_wait_for_navigation("[data-testid=start-order]")
        .await;

    // Step 1: a wrong check digit is explained; the name stays.
    assert_eq!(
        browser.text_of("[data-testid=step-title]").await,
        "第1步：个人实名认证"
    );
    browser.fill("#name", "张三").await;
    browser.fill("#id_number", "110105194912310021").await;
    browser
        .click_and_wait_for_navigation("[data-testid=next]")
        .await;
    assert!(browser
        .text_of("[data-testid=error]")
        .await
        .contains("校验位不正确"));
    assert_eq!(browser.value_of("#name").await, "张三", "{be}: name lost");
    browser.screenshot(&shot("01-step1-error")).await;
    browser.fill("#id_number", "11010519491231002X").await;
    browser
        .click_and_wait_for_navigation("[data-testid=next]")
        .await;

    // Step 2: the catalogue.
    assert!(browser
        .text_of("[data-testid=apps]")
        .await
        .contains("枣庄公共资源交易"));
    browser.click("input[name=application][value=zzggzy]").await;
    browser.screenshot(&shot("02-step2")).await;
    browser
        .click_and_wait_for_navigation("[data-testid=next]")
        .await;

    // Step 3: the license photo is read and fills the form.
    assert_eq!(
        browser.text_of("[data-testid=step-title]").await,
        "第3步：企业实名认证"
    );
    browser.choose_file("#license", &files["license"]).await;
    // While the license is read the page says so and takes no second
    // click; then the answer arrives.
    read_license_showing_progress(browser).await;
    assert!(
        browser
            .images_loaded("[data-testid=preview-license] img")
            .await
    );
    assert_eq!(
        browser.value_of("#ent_uscc").await,
        printed.uscc,
        "{be}: USCC"
    );
    assert_eq!(
        browser.value_of("#ent_name").await,
        printed.name,
        "{be}: name"
    );
    browser.screenshot(&shot("03-step3-read")).await;
    // The applicant checks every field against the license, as asked.
    for (sel, value) in [
        ("#ent_name", &printed.name),
        ("#ent_kind", &printed.kind),
        ("#ent_legal_representative", &printed.legal_representative),
        ("#ent_address", &printed.address),
        ("#ent_registered_capital", &printed.registered_capital),
    ] {
        if browser.value_of(sel).await != *value {
            browser.fill(sel, value).await;
        }
    }
    browser
        .fill(
            "#ent_registered_place",
            &fixtures::registered_place(&printed.address),
        )
        .await;
    browser
        .eval("document.getElementById('ent_nature').value = '私营企业'")
        .await;
    browser
        .click_and_wait_for_navigation("[data-testid=next]")
        .await;
    if browser.exists("[data-testid=error]").await {
        // The date, if OCR misread it: typed as printed.
        browser.fill("#ent_established", &printed.established).await;
        browser
            .click_and_wait_for_navigation("[data-testid=next]")
            .await;
    }

    // Step 4: online.
    assert_eq!(
        browser.text_of("[data-testid=step-title]").await,
        "第4步：办理方式"
    );
    browser.click("input[name=handling][value=online]").await;
    browser
        .click_and_wait_for_navigation("[data-testid=next]")
        .await;

    // Step 5: a text file renamed .png is refused by content.
    assert_eq!(
        browser.text_of("[data-testid=step-title]").await,
        "第5步：上传材料与授权"
    );
    let order_id: i64 = browser
        .current_path()
        .await
        .split('/')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    browser.choose_file("#company_seal", &files["fake"]).await;
    browser
        .click_and_wait_for_navigation("[data-testid=upload]")
        .await;
    assert!(
        browser
            .text_of("[data-testid=error-company_seal]")
            .await
            .contains("不是 PNG 或 JPEG"),
        "{be}"
    );
    browser.screenshot(&shot("04-step5-refused")).await;
    for kind in [
        "company_seal",
        "legal_rep_seal",
        "legal_rep_signature",
        "authorization_letter",
    ] {
        browser.choose_file(&format!("#{kind}"), &files[kind]).await;
    }
    browser
        .click("input[name=authorization][value=letter]")
        .await;
    browser
        .click_and_wait_for_navigation("[data-testid=next]")
        .await;
    assert_eq!(
        browser.current_path().await,
        format!("/orders/{order_id}"),
        "{be}: {}",
        browser.content().await
    );
    assert_eq!(
        browser.text_of("[data-testid=order-state]").await,
        "柜台审核中"
    );
    browser.screenshot(&shot("05-submitted")).await;

    // The counter: the queue, the materials beside the data; returned.
    app.services
        .add_operator(
            "wang",
            "13900000009",
            "operator",
            "Counter-pass-2026",
            certhall_domain::audit::Actor::Cli("test".into()),
        )
        .await
        .unwrap();
    counter_log_in(&server, browser, "wang", "13900000009").await;
    assert!(browser
        .text_of("[data-testid=waiting-count]")
        .await
        .contains('1'));
    browser.screenshot(&shot("06-counter-queue")).await;
    browser
        .click_and_wait_for_navigation("[data-testid=review-link]")
        .await;
    assert!(
        browser.images_loaded("[data-testid=materials] img").await,
        "{be}: the counter cannot see the materials"
    );
    assert_eq!(browser.count("[data-testid=materials] img").await, 4);
    assert!(
        browser
            .images_loaded("[data-testid=counter-license] img")
            .await
    );
    assert!(browser
        .text_of("[data-testid=license-check]")
        .await
        .contains(&printed.uscc));
    browser.click("input[name=reason][value=其他]").await;
    browser
        .fill("#reason-text", "授权委托书缺少法定代表人签字")
        .await;
    browser.screenshot(&shot("07-counter-detail")).await;
    browser
        .click_and_wait_for_navigation("[data-testid=reject]")
        .await;
    browser.screenshot(&shot("08-counter-returned")).await;

    // The applicant sees the reason, replaces the letter, resubmits.
    log_in(&server, browser, phone).await;
    assert!(
        browser
            .content()
            .await
            .contains("授权委托书缺少法定代表人签字"),
        "{be}: the reason is not among the home page's messages"
    );
    browser
        .goto(&server.url(&format!("/orders/{order_id}")))
        .await;
    assert_eq!(
        browser.current_path().await,
        format!("/orders/{order_id}/step/5")
    );
    assert!(browser
        .text_of("[data-testid=return-reason]")
        .await
        .contains("授权委托书缺少法定代表人签字"));
    assert!(browser.images_loaded("[data-testid=materials] img").await);
    browser.screenshot(&shot("09-returned")).await;
    browser
        .choose_file("#authorization_letter", &files["letter_v2"])
        .await;
    browser
        .click("input[name=authorization][value=letter]")
        .await;
    browser
        .click_and_wait_for_navigation("[data-testid=next]")
        .await;
    assert_eq!(
        browser.text_of("[data-testid=order-state]").await,
        "柜台审核中"
    );
    browser.screenshot(&shot("10-resubmitted")).await;

    // The operator approves.
    counter_log_in(&server, browser, "wang", "13900000009").await;
    browser
        .click_and_wait_for_navigation("[data-testid=review-link]")
        .await;
    browser
        .click_and_wait_for_navigation("[data-testid=approve]")
        .await;
    assert!(
        browser.is_visible("[data-testid=confirm-approve]").await,
        "{be}: 审核通过 did not ask for confirmation"
    );
    browser
        .click_and_wait_for_navigation("[data-testid=confirm-approve-yes]")
        .await;
    browser.screenshot(&shot("11-counter-approved")).await;

    // The applicant's home: the review message, the order at step 6.
    log_in(&server, browser, phone).await;
    let home = browser.content().await;
    assert!(home.contains("审核通过"), "{be}: no review message on home");
    let line = browser
        .text_of(&format!(
            "[data-testid=active-order][data-order='{order_id}']"
        ))
        .await;
    assert!(
        line.contains("审核通过，请选择介质与收货地址"),
        "{be}: {line}"
    );
    browser.screenshot(&shot("12-home-step6")).await;
}

async fn sms_route(app: &TestApp, browser: &Browser) {
    let be = app.backend();
    let server = app.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let files = image_files(dir.path());
    let phone = "13600136001";
    let rep = "13900139001";
    let shot = |name: &str| format!("{be}-sms-{name}.png");
    let (_, first) = fixtures::order_at_step_five(app, phone).await;
    let (_, second) = fixtures::order_at_step_five(app, phone).await;
    log_in(&server, browser, phone).await;

    for (order, answer) in [(first.id, "同意"), (second.id, "拒绝")] {
        browser
            .goto(&server.url(&format!("/orders/{order}/step/5")))
            .await;
        for kind in ["company_seal", "legal_rep_seal", "legal_rep_signature"] {
            browser.choose_file(&format!("#{kind}"), &files[kind]).await;
        }
        browser
            .click("input[name=authorization][value=legal_rep_sms]")
            .await;
        // The license's legal representative is proposed.
        assert_eq!(browser.value_of("#legal_rep_name").await, "张三");
        browser
            .fill("#legal_rep_id_number", fixtures::APPLICANT_ID)
            .await;
        browser.fill("#legal_rep_phone", rep).await;
        browser.screenshot(&shot(&format!("{order}-step5"))).await;
        browser
            .click_and_wait_for_navigation("[data-testid=next]")
            .await;
        assert_eq!(
            browser.text_of("[data-testid=order-state]").await,
            "等待法定代表人短信授权",
            "{be}: {}",
            browser.content().await
        );
        assert!(browser
            .text_of("[data-testid=waiting-for]")
            .await
            .contains("139****9001"));

        // The outbox shows the request; a reply from another number
        // changes nothing.
        browser.goto(&server.url("/dev/outbox")).await;
        assert!(browser.content().await.contains("需要您作为法定代表人授权"));
        browser.fill("#from", "13900139999").await;
        browser.fill("#body", answer).await;
        browser
            .click_and_wait_for_navigation("form[action='/dev/outbox/reply'] button")
            .await;
        assert!(browser.content().await.contains("该号码无待处理的授权请求"));
        browser.goto(&server.url(&format!("/orders/{order}"))).await;
        assert_eq!(
            browser.text_of("[data-testid=order-state]").await,
            "等待法定代表人短信授权",
            "{be}: another number's reply moved the order"
        );

        // The legal representative answers.
        browser.goto(&server.url("/dev/outbox")).await;
        browser.fill("#from", rep).await;
        browser.fill("#body", answer).await;
        browser
            .click_and_wait_for_navigation("form[action='/dev/outbox/reply'] button")
            .await;
        browser.screenshot(&shot(&format!("{order}-reply"))).await;
        browser.goto(&server.url(&format!("/orders/{order}"))).await;
        if answer == "同意" {
            // Authorized: on to the counter's review of the materials.
            assert_eq!(
                browser.text_of("[data-testid=order-state]").await,
                "柜台审核中"
            );
        } else {
            // Refused: back at step 5 with the outcome, free to choose the
            // letter instead.
            assert_eq!(
                browser.current_path().await,
                format!("/orders/{order}/step/5")
            );
            assert!(browser
                .text_of("[data-testid=authorization-refused]")
                .await
                .contains("法定代表人回复拒绝"));
        }
        browser.screenshot(&shot(&format!("{order}-outcome"))).await;
    }
    browser.goto(&server.url("/messages")).await;
    let messages = browser.content().await;
    assert!(messages.contains("法定代表人已同意授权"), "{be}");
    assert!(messages.contains("法定代表人回复拒绝"), "{be}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_certificate_by_authorization_letter_with_counter_review() {
    let Some(app) = TestApp::sqlite().await.with_ocr() else {
        return;
    };
    let Some(mut browser) = Browser::launch().await else {
        return;
    };
    browser.set_label("letter");
    letter_route(&app, &browser).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_certificate_by_legal_representative_sms() {
    for app in TestApp::each().await {
        let Some(mut browser) = Browser::launch().await else {
            return;
        };
        browser.set_label("sms");
        sms_route(&app, &browser).await;
        browser.close().await;
    }
}

/// Selects `code` in the address select `id` (as a person picking from the
/// list: the change event runs the cascade), once the option is there.
async fn pick(browser: &Browser, id: &str, code: &str) {
    browser
        .wait_until(
            &format!("!!document.querySelector('#{id} option[value=\"{code}\"]')"),
            &format!("{code} in #{id}"),
        )
        .await;
    browser
        .eval(&format!(
            "(() => {{ const s = document.getElementById('{id}'); s.value = '{code}'; \
             s.dispatchEvent(new Event('change')); return s.value; }})()"
        ))
        .await;
}

/// Steps 6 and 7 in the browser: an approved order (the counter's review
/// done through the services) gets its key model, address and invoice —
/// a wrong mobile explained with nothing lost — and is paid at the demo
/// cashier, whose callback in the WeChat Pay v3 format goes through the
/// real route; the order shows 已支付 and its timeline; the same callback
/// again changes nothing.
async fn pay_route(app: &TestApp, browser: &Browser) {
    let be = app.backend();
    let server = app.serve().await;
    let phone = "13500135001";
    fixtures::key_models(app).await;
    let (_, order) = fixtures::approved_order(app, phone).await;
    let id = order.id;
    let shot = |name: &str| format!("{be}-pay-{name}.png");

    // The review message leads to the order, the order to step 6.
    log_in(&server, browser, phone).await;
    browser.goto(&server.url("/messages")).await;
    browser
        .click_and_wait_for_navigation("[data-testid=message-order-link]")
        .await;
    assert_eq!(browser.current_path().await, format!("/orders/{id}"));
    assert!(browser
        .text_of("[data-testid=next-step]")
        .await
        .contains("第六步"));
    browser.screenshot(&shot("00-approved")).await;
    browser
        .click_and_wait_for_navigation("[data-testid=go-checkout]")
        .await;
    assert_eq!(
        browser.text_of("[data-testid=step-title]").await,
        "第6步：选择介质与收货信息"
    );
    assert!(browser.exists("[data-testid=out-of-stock]").await, "{be}");
    assert_eq!(browser.text_of("[data-testid=total]").await, "380.00");

    // A wrong mobile: explained, nothing lost.
    browser.fill("#recipient", "王五").await;
    browser.fill("#phone", "1380013800").await;
    pick(browser, "province", "370000").await;
    pick(browser, "city", "370400").await;
    pick(browser, "division", "370402").await;
    browser.fill("#street", "光明路88号3号楼501室").await;
    browser
        .click("input[name=invoice_kind][value=ordinary]")
        .await;
    assert!(
        browser.is_visible("#email").await,
        "{be}: invoice fields hidden"
    );
    assert!(
        !browser.is_visible("#bank").await,
        "{be}: 专票 fields shown for 普票"
    );
    browser.fill("#email", "finance@example.com").await;
    browser.screenshot(&shot("01-step6")).await;
    browser
        .click_and_wait_for_navigation("[data-testid=confirm-checkout]")
        .await;
    assert!(browser
        .text_of("[data-testid=error]")
        .await
        .contains("收货人手机号应为11位"));
    assert_eq!(browser.value_of("#recipient").await, "王五", "{be}");
    assert_eq!(browser.value_of("#street").await, "光明路88号3号楼501室");
    assert_eq!(
        browser.value_of("#division").await,
        "370402",
        "{be}: district lost"
    );
    assert_eq!(browser.value_of("#email").await, "finance@example.com");
    assert_eq!(
        browser.value_of("#buyer_name").await,
        "枣庄市恒信建设工程有限公司",
        "{be}: invoice buyer not prefilled from step 3"
    );
    browser.screenshot(&shot("02-step6-error")).await;
    browser.fill("#phone", "13800138000").await;
    browser
        .click_and_wait_for_navigation("[data-testid=confirm-checkout]")
        .await;

    // Step 7: the amount, a QR code, the demo cashier.
    assert_eq!(browser.current_path().await, format!("/orders/{id}/pay"));
    assert_eq!(browser.text_of("[data-testid=total]").await, "380.00");
    browser
        .click_and_wait_for_navigation("[data-testid=pay-wechat]")
        .await;
    assert!(
        browser.is_visible("[data-testid=qr] svg").await,
        "{be}: no QR code"
    );
    browser.screenshot(&shot("03-qr")).await;
    let cashier = browser
        .attribute("[data-testid=open-cashier]", "href")
        .await
        .unwrap();
    let pay_page = browser.current_url().await;
    browser.goto(&cashier).await;
    assert_eq!(
        browser.text_of("[data-testid=cashier-amount]").await,
        "¥380.00"
    );
    assert!(
        browser.is_visible("[data-testid=cashier-qr] svg").await,
        "{be}: the cashier shows no QR code"
    );
    browser.screenshot(&shot("04-cashier")).await;
    browser
        .click_and_wait_for_navigation("[data-testid=cashier-pay]")
        .await;
    assert!(
        browser
            .text_of("[data-testid=notice]")
            .await
            .contains("已验签并处理"),
        "{be}"
    );
    browser.screenshot(&shot("05-cashier-paid")).await;

    // Back on step 7 the page notices the payment by itself.
    browser.goto(&pay_page).await;
    browser
        .wait_until(
            "location.pathname.endsWith('/orders/') === false && location.search === '?paid=1'",
            "the order page after payment",
        )
        .await;
    browser.wait_for("[data-testid=order-state]").await;
    assert_eq!(
        browser.text_of("[data-testid=order-state]").await,
        "已支付，等待制证"
    );
    let timeline = browser.texts_of("[data-testid=timeline-state]").await;
    for step in [
        "柜台审核中",
        "审核通过，请选择介质与收货地址",
        "待支付",
        "已支付，等待制证",
    ] {
        assert!(
            timeline.iter().any(|t| t == step),
            "{be}: timeline {timeline:?}"
        );
    }
    assert_eq!(browser.count("[data-testid=attempt-row]").await, 1);
    browser.screenshot(&shot("06-paid")).await;

    // The same callback again (WeChat Pay retries): nothing changes.
    let before = app.services.order_of(order.account_id, id).await.unwrap();
    let cb = certhall_store::payments::recent_callbacks(&app.db.store, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(cb.outcome, "applied");
    let headers: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&cb.headers).unwrap();
    let mut req = reqwest::Client::new()
        .post(server.url(certhall_web::paths::NOTIFY_WECHAT))
        .body(cb.body.clone());
    for (k, v) in &headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200, "{be}");
    let after = app.services.order_of(order.account_id, id).await.unwrap();
    assert_eq!(
        (after.state, after.version),
        (before.state, before.version),
        "{be}"
    );
    let cb = certhall_store::payments::recent_callbacks(&app.db.store, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(cb.outcome, "duplicate", "{be}");
    browser.goto(&server.url(&format!("/orders/{id}"))).await;
    assert_eq!(browser.count("[data-testid=attempt-row]").await, 1);
    assert_eq!(
        browser.text_of("[data-testid=order-state]").await,
        "已支付，等待制证"
    );
    browser.goto(&server.url("/orders?state=paid")).await;
    assert!(browser.content().await.contains("380.00 元"));
    browser.screenshot(&shot("07-orders")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_certificate_steps_six_and_seven_paid_at_the_demo_cashier() {
    for app in TestApp::each().await {
        let Some(mut browser) = Browser::launch().await else {
            return;
        };
        browser.set_label(&format!("{}-pay", app.backend()));
        pay_route(&app, &browser).await;
        browser.close().await;
    }
}

/// 到期提醒 and 注销 in the browser: a certificate 60 days before its end
/// shows on the home page with 立即更新 and its reminder in the messages;
/// the applicant revokes it with a reason and the SMS code.
async fn reminder_and_revocation(app: &TestApp, browser: &Browser) {
    use certhall_ca::Family;
    use certhall_domain::audit::Actor;
    use certhall_service::ca::{IssueInput, KeyBackend};

    let be = app.backend();
    let server = app.serve().await;
    let s = &app.services;
    let phone = "13600000961";
    s.ca_seed_profiles().await.unwrap();
    s.ca_init(Family::P256, &KeyBackend::File, Actor::System)
        .await
        .unwrap();
    let me = s
        .ensure_account(&certhall_domain::Phone::parse(phone).unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let csr = fixtures::openssl_p256_csr(dir.path());
    let cert = s
        .ca_issue(
            &IssueInput {
                family: Family::P256,
                profile: "enterprise",
                csr: &csr,
                subject: "C=CN,O=枣庄壬建设有限公司,USCC=91350100M000100Y43,CN=枣庄壬建设有限公司",
                account: Some(me),
                order_id: None,
                predecessor: None,
                ends_by: None,
            },
            Actor::System,
        )
        .await
        .unwrap();
    app.clock.set(
        cert.not_after
            .minus(std::time::Duration::from_secs(60 * 86_400)),
    );
    assert_eq!(s.send_due_reminders().await.unwrap().delivered, 1, "{be}");

    log_in(&server, browser, phone).await;
    browser
        .wait_for_text("[data-testid=expiring-certificate]", "立即更新")
        .await;
    browser
        .wait_for_text("[data-testid=expiring-certificate]", "60天后到期")
        .await;
    // Sent late (the clock jumped past the 90-day moment): it says 60.
    assert!(
        browser.content().await.contains("证书将在60天后到期"),
        "{be}"
    );
    browser.screenshot(&format!("{be}-expiring-home.png")).await;

    browser
        .goto(&server.url(&format!("/certificates/{}", cert.serial)))
        .await;
    browser
        .click_and_wait_for_navigation("[data-testid=revoke]")
        .await;
    browser.click("[data-testid=reason-no_longer_needed]").await;
    browser.fill("#comment", "项目结束，不再使用").await;
    // Right after the login code: the resend cooldown is per purpose.
    browser
        .click_and_wait_for_navigation("[data-testid=send-code]")
        .await;
    browser
        .wait_for_text("[data-testid=notice]", "验证码已发送至 136****0961")
        .await;
    assert_eq!(browser.value_of("#comment").await, "项目结束，不再使用");
    let code = code_from_outbox(&server, phone).await;
    browser.fill("#code", &code).await;
    browser.click("[data-testid=understood]").await;
    browser.screenshot(&format!("{be}-revoke-form.png")).await;
    browser
        .click_and_wait_for_navigation("[data-testid=confirm-revoke]")
        .await;
    browser
        .wait_for_text("[data-testid=notice]", "证书已注销")
        .await;
    assert_eq!(
        browser.text_of("[data-testid=certificate-status]").await,
        "已注销",
        "{be}"
    );
    browser.screenshot(&format!("{be}-revoked.png")).await;
    let rev = s
        .ca_certificate(&cert.serial)
        .await
        .unwrap()
        .revocation
        .unwrap();
    assert_eq!(rev.reason, "cessationOfOperation", "{be}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_certificate_is_reminded_and_revoked_in_the_browser() {
    for app in TestApp::each().await {
        let Some(mut browser) = Browser::launch().await else {
            return;
        };
        browser.set_label(&format!("{}-lifecycle", app.backend()));
        reminder_and_revocation(&app, &browser).await;
        browser.close().await;
    }
}

/// Step 3 with a license the reader cannot vouch for: its printed code
/// fails the GB 32100 check and its 成立日期 is illegible (printed empty).
/// While it is read the page says so; then those two fields are marked
/// 请核对, the code is left empty, and the rest is filled unmarked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doubtful_fields_of_a_license_reading_are_marked_for_checking() {
    let Some(app) = TestApp::sqlite().await.with_ocr() else {
        return;
    };
    let Some(mut browser) = Browser::launch().await else {
        return;
    };
    browser.set_label("unsure");
    let server = app.serve().await;
    let phone = "13700137011";
    let s = &app.services;
    let m = certhall_service::RequestMeta::default();
    let me = s
        .ensure_account(&certhall_domain::Phone::parse(phone).unwrap())
        .await
        .unwrap();
    s.ca_seed_profiles().await.unwrap();
    s.ensure_demo_applications().await.unwrap();
    let order = s
        .start_order(me, certhall_domain::order::OrderKind::New, &m)
        .await
        .unwrap();
    s.wizard_identity(
        me,
        &certhall_domain::Phone::parse(phone).unwrap(),
        order.id,
        "李四",
        fixtures::APPLICANT_ID,
        &m,
    )
    .await
    .unwrap();
    s.wizard_application(me, order.id, "zzggzy", &m)
        .await
        .unwrap();

    let mut printed = fixtures::enterprise();
    let good = fixtures::valid_uscc();
    let last = good.chars().last().unwrap();
    let wrong = if last == '0' { '1' } else { '0' };
    printed.uscc = format!("{}{wrong}", &good[..17]);
    printed.established = String::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("营业执照.jpg");
    std::fs::write(&path, fixtures::license_jpeg_for(&printed)).unwrap();

    log_in(&server, &browser, phone).await;
    browser
        .goto(&server.url(&format!("/orders/{}/step/3", order.id)))
        .await;
    browser.choose_file("#license", &path).await;
    read_license_showing_progress(&browser).await;
    browser.screenshot("unsure-step3.png").await;
    assert!(browser
        .text_of("[data-testid=notice]")
        .await
        .contains("未通过校验"));
    assert!(browser
        .text_of("[data-testid=unsure-note]")
        .await
        .contains("请核对"));
    for field in ["uscc", "established"] {
        assert_eq!(
            browser
                .text_of(&format!("[data-testid=unsure-{field}]"))
                .await,
            "请核对",
            "{field} marked"
        );
        assert_eq!(
            browser
                .eval(&format!(
                    "document.getElementById('ent_{field}').classList.contains('unsure')"
                ))
                .await,
            Value::Bool(true),
            "{field} highlighted"
        );
    }
    assert_eq!(browser.value_of("#ent_uscc").await, "", "never filled");
    // What was read surely is filled, unmarked.
    assert_eq!(browser.value_of("#ent_name").await, printed.name);
    assert!(!browser.exists("[data-testid=unsure-name]").await);
    browser.close().await;
}
