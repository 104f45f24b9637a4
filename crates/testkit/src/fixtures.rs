//! Test material: images (by content, of any size), a rendered business
//! license, and an order brought to step 5 through the real wizard.

use std::io::Cursor;

use certhall_domain::order::OrderKind;
use certhall_domain::wizard::{EnterpriseInput, Handling};
use certhall_domain::{AccountId, Phone};
use certhall_ocr::LicenseFields;
use certhall_service::RequestMeta;
use certhall_store::orders::OrderRow;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use rand::SeedableRng;

use crate::TestApp;

/// A PNG of `w` × `h` with a pattern (so it is not trivially compressible
/// to nothing, and previews show something).
pub fn png(w: u32, h: u32) -> Vec<u8> {
    encode(&pattern(w, h), ImageFormat::Png)
}

/// A JPEG of `w` × `h`.
pub fn jpeg(w: u32, h: u32) -> Vec<u8> {
    encode(&pattern(w, h), ImageFormat::Jpeg)
}

/// A red seal-like ring on white.
fn pattern(w: u32, h: u32) -> DynamicImage {
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let r = cx.min(cy) * 0.8;
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
        if (d - r).abs() < r * 0.06 || ((x + y) % 37 == 0 && d < r) {
            Rgb([200, 20, 30])
        } else {
            Rgb([255, 255, 255])
        }
    }))
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode test image");
    out.into_inner()
}

/// A business license rendered like a photo (rotation, noise, JPEG), as
/// JPEG bytes, with the fields printed on it. Same seed, same image.
pub fn license_jpeg(seed: u64) -> (Vec<u8>, LicenseFields) {
    let renderer = certhall_ocr::synth::Renderer::load(certhall_ocr::synth::DEFAULT_FONT)
        .expect("CJK font (fonts-wqy-zenhei)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (img, fields) = renderer
        .random_license(&mut rng, &certhall_ocr::synth::Degrade::default())
        .expect("render license");
    (encode(&img, ImageFormat::Jpeg), fields)
}

/// The business license of `e` (the OCR crate's renderer, scanned
/// clean), as JPEG bytes: what an enterprise uploads after its data
/// changed.
pub fn license_jpeg_for(e: &EnterpriseInput) -> Vec<u8> {
    let renderer = certhall_ocr::synth::Renderer::load(certhall_ocr::synth::DEFAULT_FONT)
        .expect("CJK font (fonts-wqy-zenhei)");
    // Printed as 2015年06月30日.
    let mut date = e.established.splitn(3, '-');
    let established = match (date.next(), date.next(), date.next()) {
        (Some(y), Some(m), Some(d)) => format!("{y}年{m}月{d}日"),
        _ => e.established.clone(),
    };
    let fields = LicenseFields {
        name: e.name.clone(),
        uscc: e.uscc.clone(),
        kind: e.kind.clone(),
        legal_representative: e.legal_representative.clone(),
        address: e.address.clone(),
        registered_capital: e.registered_capital.clone(),
        established,
    };
    let term = format!("{}至长期", fields.established);
    let img = renderer.render(
        &fields,
        &["建设工程施工；市政公用工程施工".to_owned()],
        &term,
    );
    encode(&DynamicImage::ImageRgb8(img), ImageFormat::Jpeg)
}

/// The 注册地 a person would type for `address` (province and city).
pub fn registered_place(address: &str) -> String {
    match address.find('市') {
        Some(i) => address[..i + '市'.len_utf8()].to_owned(),
        None => address.chars().take(6).collect(),
    }
}

/// The enterprise of the fixtures (legal representative 张三).
pub fn enterprise() -> EnterpriseInput {
    EnterpriseInput {
        name: "枣庄市恒信建设工程有限公司".into(),
        uscc: valid_uscc(),
        kind: "有限责任公司(自然人投资或控股)".into(),
        legal_representative: "张三".into(),
        address: "山东省枣庄市市中区光明路88号".into(),
        registered_capital: "伍佰万元整".into(),
        established: "2015-06-30".into(),
        registered_place: "山东省枣庄市".into(),
        nature: "私营企业".into(),
    }
}

/// A valid resident ID (GB 11643 check digit).
pub const APPLICANT_ID: &str = "11010519491231002X";

/// Logs `phone`'s account in (creating it) and brings a new order through
/// steps 1–4 with the real wizard (license image uploaded, online
/// handling): it waits at step 5.
pub async fn order_at_step_five(app: &TestApp, phone: &str) -> (AccountId, OrderRow) {
    order_at_step_five_for(app, phone, "zzggzy").await
}

/// The same for the application `app_code` (`zzggzy` SM2, `sdzfcg` P-256,
/// `sdggzy` RSA-2048 in the demo catalogue).
pub async fn order_at_step_five_for(
    app: &TestApp,
    phone: &str,
    app_code: &str,
) -> (AccountId, OrderRow) {
    let s = &app.services;
    let m = RequestMeta::default();
    let phone = Phone::parse(phone).expect("phone");
    let me = s.ensure_account(&phone).await.expect("account");
    s.ca_seed_profiles().await.expect("profiles");
    s.ensure_demo_applications().await.expect("applications");
    let order = s.start_order(me, OrderKind::New, &m).await.expect("order");
    s.wizard_identity(me, &phone, order.id, "李四", APPLICANT_ID, &m)
        .await
        .expect("step 1");
    s.wizard_application(me, order.id, app_code, &m)
        .await
        .expect("step 2");
    s.upload_material(
        me,
        order.id,
        certhall_domain::materials::MaterialKind::License,
        "license.png",
        png(900, 640),
        &m,
    )
    .await
    .expect("license image");
    s.wizard_enterprise(me, order.id, &enterprise(), &m)
        .await
        .expect("step 3");
    let order = s
        .wizard_handling(me, order.id, Handling::Online, &m)
        .await
        .expect("step 4");
    (me, order)
}

/// A USCC with a correct check character.
pub fn valid_uscc() -> String {
    let first17 = "91370400MA3C8XFH2";
    let c = certhall_domain::identity::uscc_check_char(first17).expect("check char");
    format!("{first17}{c}")
}

/// The fixtures' operators' password.
pub const OPERATOR_PASSWORD: &str = "Fixture-counter-2026";

/// The fixtures' operator, logged in through the real two-step login.
pub async fn operator(app: &TestApp) -> certhall_service::counter::OperatorInfo {
    operator_named(app, "13700000099").await
}

/// An operator whose phone is `phone` (username `op<phone>`), added on
/// first use and logged in through the real two-step login. A distinct
/// phone per caller keeps clear of the login-code cooldown.
pub async fn operator_named(app: &TestApp, phone: &str) -> certhall_service::counter::OperatorInfo {
    let s = &app.services;
    let m = RequestMeta::default();
    let username = format!("op{phone}");
    match s
        .add_operator(
            &username,
            phone,
            "operator",
            OPERATOR_PASSWORD,
            certhall_domain::audit::Actor::Cli("fixtures".into()),
        )
        .await
    {
        Ok(_) => {}
        Err(e) if e.refusal().is_some_and(|r| r.code() == "operator_exists") => {}
        Err(e) => panic!("add operator: {e}"),
    }
    let sent = s
        .counter_password(&username, OPERATOR_PASSWORD, &m)
        .await
        .expect("operator password");
    let code = app.latest_code(phone).await.expect("operator code");
    let token = s
        .counter_code(&sent.pending, &code, &m)
        .await
        .expect("operator code step");
    s.authenticate_operator(&token)
        .await
        .expect("operator session")
}

/// An order through steps 1–5 (authorization letter) and approved by the
/// counter through the real review: it waits at step 6.
pub async fn approved_order(app: &TestApp, phone: &str) -> (AccountId, OrderRow) {
    approved_order_for(app, phone, "zzggzy").await
}

/// The same for the application `app_code`.
pub async fn approved_order_for(
    app: &TestApp,
    phone: &str,
    app_code: &str,
) -> (AccountId, OrderRow) {
    let (me, order) = order_at_step_five_for(app, phone, app_code).await;
    let order = letter_and_approve(app, phone, me, order.id).await;
    (me, order)
}

/// Step 5 of an order at step 5 (seals, signature and an authorization
/// letter), then the counter's approval (by an operator whose phone is
/// 137 and the applicant's last eight digits).
pub async fn letter_and_approve(
    app: &TestApp,
    phone: &str,
    me: AccountId,
    order: certhall_domain::OrderId,
) -> OrderRow {
    let s = &app.services;
    let m = RequestMeta::default();
    for (kind, w, h) in [
        (
            certhall_domain::materials::MaterialKind::CompanySeal,
            480,
            480,
        ),
        (
            certhall_domain::materials::MaterialKind::LegalRepSeal,
            400,
            400,
        ),
        (
            certhall_domain::materials::MaterialKind::LegalRepSignature,
            720,
            360,
        ),
        (
            certhall_domain::materials::MaterialKind::AuthorizationLetter,
            900,
            1270,
        ),
    ] {
        s.upload_material(me, order, kind, "m.png", png(w, h), &m)
            .await
            .expect("material");
    }
    let order = s
        .submit_materials(
            me,
            order,
            &certhall_service::materials::MaterialsSubmission {
                authorization: "letter".into(),
                legal_rep_name: String::new(),
                legal_rep_id_number: String::new(),
                legal_rep_phone: String::new(),
            },
            &m,
        )
        .await
        .expect("step 5");
    // The operator's phone: 137 and the applicant's last eight digits.
    let op = operator_named(app, &format!("137{}", &phone[3..])).await;
    s.review_decide(
        &op,
        order.id,
        order.version,
        &certhall_service::counter::ReviewDecision::Approve,
        &m,
    )
    .await
    .expect("approve")
}

/// The key models and stock of demo mode.
pub async fn key_models(app: &TestApp) {
    app.services
        .ensure_demo_key_models()
        .await
        .expect("demo key models");
}

/// A valid step 6: the standard key, an address in 枣庄市市中区, no
/// invoice.
pub fn checkout_input() -> certhall_domain::checkout::CheckoutInput {
    certhall_domain::checkout::CheckoutInput {
        key_model: "ukey-standard".into(),
        address: certhall_domain::checkout::AddressInput {
            recipient: "李四".into(),
            phone: "13800138000".into(),
            division: "370402".into(),
            street: "光明路88号3号楼501室".into(),
        },
        invoice: certhall_domain::checkout::InvoiceInput {
            kind: "none".into(),
            ..Default::default()
        },
    }
}

/// An approved order of `app_code` with step 6 confirmed and paid at the
/// demo cashier (a signed WeChat v3 callback through the real route: the
/// app must be served). It waits for production.
pub async fn paid_order(app: &TestApp, phone: &str, app_code: &str) -> (AccountId, OrderRow) {
    let s = &app.services;
    let m = RequestMeta::default();
    key_models(app).await;
    s.ca_ensure_demo().await.expect("demo CA");
    let (me, order) = approved_order_for(app, phone, app_code).await;
    s.save_checkout(me, order.id, &checkout_input(), true, &m)
        .await
        .expect("step 6");
    let attempt = s
        .start_payment(me, order.id, certhall_domain::payment::Channel::Wechat, &m)
        .await
        .expect("payment");
    s.demo_cashier_pay(&attempt.out_trade_no, true)
        .await
        .expect("demo cashier");
    let order = s.order_of(me, order.id).await.expect("order");
    assert_eq!(
        order.state,
        certhall_domain::order::OrderState::Paid,
        "the callback did not arrive: is the app served?"
    );
    (me, order)
}

/// A producer (the 制证 permission) whose phone is `phone`, logged in.
pub async fn producer(app: &TestApp, phone: &str) -> certhall_service::counter::OperatorInfo {
    let op = operator_named(app, phone).await;
    app.services
        .set_producer(
            &op.username,
            true,
            certhall_domain::audit::Actor::Cli("fixtures".into()),
        )
        .await
        .expect("producer permission");
    certhall_service::counter::OperatorInfo {
        producer: true,
        ..op
    }
}

/// Runs `openssl args` in `dir` (the independent checker of the CA tests);
/// panics with its output when it fails. Returns stdout then stderr.
pub fn openssl(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl {args:?}: {text}");
    text
}

/// A P-256 key (`k.pem`) and a request for it (`r.csr`, subject `/CN=x`,
/// which the CA ignores) made by OpenSSL in `dir`; the request's bytes.
pub fn openssl_p256_csr(dir: &std::path::Path) -> Vec<u8> {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-out",
            "k.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req", "-new", "-key", "k.pem", "-out", "r.csr", "-subj", "/CN=x",
        ],
    );
    std::fs::read(dir.join("r.csr")).expect("r.csr")
}
