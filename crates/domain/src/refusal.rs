//! Why CertHall says no.
//!
//! A [`Refusal`] is an expected outcome of a user's request — bad input, a
//! limit reached, a wrong code — as opposed to a fault. Each has a stable
//! machine code (for the JSON API and for tests), a clear Simplified Chinese
//! message for the person in front of the screen, and a [`RefusalKind`] that
//! the web edge maps to an HTTP status.

use std::fmt;

/// The family a refusal belongs to; the web layer maps it to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The input is malformed (400).
    Invalid,
    /// Not logged in, or the credentials are wrong (401).
    Unauthenticated,
    /// Logged in but not allowed (403).
    Forbidden,
    /// No such thing, or not yours (404).
    NotFound,
    /// The thing changed under you or was already used (409).
    Conflict,
    /// Too many requests (429).
    RateLimited,
}

/// An expected refusal, with everything needed to explain it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The phone number is not a mainland mobile number.
    #[error("invalid phone")]
    InvalidPhone,
    /// The code is not six digits.
    #[error("invalid code format")]
    InvalidCodeFormat,
    /// A code was sent to this phone less than the cooldown ago.
    #[error("resend too soon ({wait_secs}s left)")]
    ResendTooSoon {
        /// Seconds until a new code may be sent.
        wait_secs: u64,
    },
    /// Too many codes sent to this phone in the last hour.
    #[error("phone send limit reached")]
    PhoneSendLimit,
    /// Too many codes requested from this IP address in the last hour.
    #[error("ip send limit reached")]
    IpSendLimit,
    /// No code is outstanding for this phone.
    #[error("no code outstanding")]
    CodeNotRequested,
    /// The code does not match.
    #[error("wrong code ({attempts_left} tries left)")]
    CodeWrong {
        /// Tries left on this code.
        attempts_left: u32,
    },
    /// The code is older than its validity.
    #[error("code expired")]
    CodeExpired,
    /// The code was already used to log in.
    #[error("code already used")]
    CodeUsed,
    /// The code was tried wrongly too many times and is void.
    #[error("code void after too many tries")]
    CodeExhausted,
    /// Not logged in, or the session ended.
    #[error("not logged in")]
    NotLoggedIn,
    /// The session expired through inactivity.
    #[error("session expired")]
    SessionExpired,
    /// The bearer token is malformed or unknown.
    #[error("bad token")]
    BadToken,
    /// The form's CSRF token is missing or wrong.
    #[error("csrf token mismatch")]
    CsrfMismatch,
    /// A state-changing request came from a page of another site (its
    /// `Origin` is not CertHall's).
    #[error("foreign origin")]
    ForeignOrigin,
    /// The message does not exist or is not the caller's.
    #[error("message not found")]
    MessageNotFound,
    /// A required field is empty.
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// A field's value is not acceptable (the text says which and why).
    #[error("invalid field: {0}")]
    InvalidField(String),
    /// A generic "not found".
    #[error("not found")]
    NotFound,
    /// No certificate has this serial.
    #[error("certificate not found")]
    CertificateNotFound,
    /// The certificate is already revoked.
    #[error("certificate already revoked")]
    AlreadyRevoked,
    /// The CA hierarchy of this family does not exist yet.
    #[error("ca {0} not initialized")]
    CaNotInitialized(String),
    /// The CA hierarchy of this family exists already.
    #[error("ca {0} already initialized")]
    CaAlreadyInitialized(String),
    /// No profile of this name.
    #[error("profile {0} not found")]
    ProfileNotFound(String),
    /// A profile of this name exists.
    #[error("profile {0} exists")]
    ProfileExists(String),
    /// The CA refused the request (bad CSR, key or subject).
    #[error("ca refused: {0}")]
    CaRequestRefused(String),
    /// The login challenge is unknown, malformed, or was issued to another
    /// browser.
    #[error("certificate login: unknown challenge")]
    CertChallengeInvalid,
    /// The login challenge is older than its validity.
    #[error("certificate login: challenge expired")]
    CertChallengeExpired,
    /// The login challenge was answered before (a replay).
    #[error("certificate login: challenge already used")]
    CertChallengeUsed,
    /// Too many challenges asked for from this IP address.
    #[error("certificate login: challenge limit reached")]
    CertChallengeLimit,
    /// The certificate was not issued by CertHall (or is malformed).
    #[error("certificate login: unknown certificate")]
    CertUnknown,
    /// The certificate is not valid yet.
    #[error("certificate login: not yet valid")]
    CertNotYetValid,
    /// The certificate has expired (on the date given, CST).
    #[error("certificate login: expired on {0}")]
    CertExpired(String),
    /// The certificate is revoked.
    #[error("certificate login: revoked")]
    CertRevoked,
    /// The certificate belongs to no account.
    #[error("certificate login: not bound to an account")]
    CertNotBound,
    /// The certificate's key usage does not include digital signatures.
    #[error("certificate login: not a signing certificate")]
    CertNotForLogin,
    /// The signature over the challenge does not verify (or signs something
    /// else: another origin, another challenge, another purpose).
    #[error("certificate login: bad signature")]
    CertBadSignature,
    /// The key refused the PIN (reported by the page).
    #[error("key: wrong PIN ({retries_left:?} left)")]
    KeyWrongPin {
        /// Tries left before the key locks, when the key says.
        retries_left: Option<u32>,
    },
    /// The key's PIN is locked (reported by the page).
    #[error("key: PIN locked")]
    KeyPinLocked,
    /// The resident ID number is not eighteen characters of the right kinds
    /// (17 digits, then a digit or X; the first digit not 0).
    #[error("invalid resident id format")]
    InvalidResidentId,
    /// The resident ID's birth date (characters 7–14) is not a real date,
    /// is in the future, or is before 1900.
    #[error("invalid resident id birth date")]
    ResidentIdBirthDate,
    /// The resident ID's check character does not match (GB 11643).
    #[error("resident id check character mismatch")]
    ResidentIdCheckDigit,
    /// The unified social credit code is not eighteen characters of its
    /// alphabet.
    #[error("invalid uscc format")]
    InvalidUscc,
    /// The unified social credit code's check character does not match
    /// (GB 32100).
    #[error("uscc check character mismatch")]
    UsccCheckDigit,
    /// An uploaded image was refused (not really PNG/JPEG, too large, too
    /// small, damaged); `code` and `message` come from the upload check.
    #[error("upload refused: {code}")]
    UploadRefused {
        /// Which material, as shown (公章, 营业执照, …).
        material: &'static str,
        /// The upload check's stable code (`upload_not_image`, …).
        code: &'static str,
        /// The upload check's Chinese message.
        message: String,
    },
    /// A required image was not uploaded; the name as shown.
    #[error("material {0} missing")]
    MaterialMissing(&'static str),
    /// The image uploaded as the business license shows none of what a
    /// license carries (名称, 统一社会信用代码): a seal, a photo of
    /// something else.
    #[error("not a business license")]
    NotALicense,
    /// Too many authorization SMS for this order or to this phone in 24
    /// hours (each reaches a third party's phone).
    #[error("authorization sms limit")]
    AuthorizationSmsLimit,
    /// The legal representative typed at step 5 is not the license's
    /// (the license's name is carried).
    #[error("legal representative differs from the license")]
    LegalRepMismatch(String),
    /// A wizard step submitted before the steps it needs.
    #[error("order: step {0} out of order")]
    OrderStepOutOfOrder(u8),
    /// The order is not in a state that allows this (it moved on, or was
    /// decided by someone else); the text is the state as shown.
    #[error("order: not allowed in state {0}")]
    OrderStateConflict(String),
    /// An application (relying platform) entry is not valid.
    #[error("invalid application: {0}")]
    InvalidApplication(String),
    /// No application with this code.
    #[error("application {0} not found")]
    ApplicationNotFound(String),
    /// An application with this code exists.
    #[error("application {0} exists")]
    ApplicationExists(String),
    /// An operator entry (username, role, password) is not valid.
    #[error("invalid operator: {0}")]
    InvalidOperator(String),
    /// An operator with this username exists.
    #[error("operator {0} exists")]
    OperatorExists(String),
    /// Another operator has this phone (the login code goes to it).
    #[error("operator phone taken by {0}")]
    OperatorPhoneTaken(String),
    /// Counter login: unknown username or wrong password (not told apart).
    #[error("counter login: bad credentials")]
    CounterBadCredentials,
    /// Counter login: the password step is missing or timed out.
    #[error("counter login: password step missing")]
    CounterLoginRestart,
    /// The operator is locked after repeated failures.
    #[error("operator locked ({minutes} min left)")]
    OperatorLocked {
        /// Minutes until the lock ends (rounded up).
        minutes: u64,
    },
    /// Counter login: too many password tries from one address.
    #[error("counter login: too many tries from this address ({minutes} min left)")]
    CounterTooManyTries {
        /// Minutes until tries are counted again (rounded up).
        minutes: u64,
    },
    /// An operator may not review an order of their own account.
    #[error("own order review")]
    OwnOrderReview,
    /// Another operator decided the order first; the text is its state.
    #[error("review already decided ({0})")]
    ReviewAlreadyDecided(String),
    /// A key model entry is not valid.
    #[error("invalid key model: {0}")]
    InvalidKeyModel(String),
    /// No key model with this code.
    #[error("key model {0} not found")]
    KeyModelNotFound(String),
    /// A key model with this code exists.
    #[error("key model {0} exists")]
    KeyModelExists(String),
    /// The chosen key model is not offered for the order's application (or
    /// no longer offered at all).
    #[error("key model {0} not offered")]
    KeyModelNotOffered(String),
    /// Every unit of the chosen key model is taken (its shown name).
    #[error("key model {0} out of stock")]
    KeyModelOutOfStock(String),
    /// The address's division code is not a county-level division.
    #[error("unknown division")]
    UnknownDivision,
    /// A 纳税人识别号 is malformed or fails its check character (why).
    #[error("invalid tax id: {0}")]
    InvalidTaxId(String),
    /// No such address in the account's address book.
    #[error("address not found")]
    AddressNotFound,
    /// The address book holds its maximum.
    #[error("address book full")]
    AddressBookFull,
    /// Step 6 asked for before the counter approved (the state as shown).
    #[error("checkout not open ({0})")]
    CheckoutNotOpen(String),
    /// The order is paid already.
    #[error("order already paid")]
    OrderAlreadyPaid,
    /// The order is not waiting for payment (the state as shown).
    #[error("payment not due ({0})")]
    PaymentNotDue(String),
    /// A payment's QR code is being made, or the previous payment is being
    /// settled, this very moment: try again in a few seconds.
    #[error("payment busy")]
    PaymentBusy,
    /// The payment channel is not configured here (its shown name).
    #[error("payment channel {0} unavailable")]
    PaymentChannelUnavailable(String),
    /// The operator lacks the `producer` permission (制证).
    #[error("not a producer")]
    NotProducer,
    /// Only an administrator may do this (批量注销).
    #[error("not an administrator")]
    NotAdmin,
    /// A relying-platform call without a valid platform token.
    #[error("platform unauthorized")]
    PlatformUnauthorized,
    /// Too many wrong platform tokens from this address in the last hour.
    #[error("platform auth limit")]
    PlatformAuthLimit,
    /// A certificate cannot be activated for the platform; the stable
    /// reason code (`activation_revoked`, `activation_other_application`, …).
    #[error("activation refused: {0}")]
    ActivationRefused(&'static str),
    /// Another production attempt of the order is open (who started it).
    #[error("production busy ({0})")]
    ProductionBusy(String),
    /// The production attempt is over (its state as shown).
    #[error("production attempt closed ({0})")]
    ProductionAttemptClosed(&'static str),
    /// The token holds another order's key (that order).
    #[error("token in use by order {0}")]
    TokenInUse(i64),
    /// The token is initialised but not by this order's production.
    #[error("token not blank")]
    TokenNotBlank,
    /// The certificate read back from the key is not the one issued.
    #[error("read-back mismatch")]
    ReadBackMismatch,
    /// The key's algorithm is not the one the application uses (wanted).
    #[error("wrong key algorithm (want {0})")]
    WrongKeyAlgorithm(&'static str),
    /// The courier refused or failed (its message).
    #[error("courier failed: {0}")]
    CourierFailed(String),
    /// A route push failed verification.
    #[error("courier push refused")]
    CourierPushRefused,
    /// The courier could not say whether it took the order (a time-out):
    /// shipping again asks with the same courier order number.
    #[error("courier outcome unknown: {0}")]
    CourierUnsure(String),
    /// The shipment cannot be cancelled (why).
    #[error("shipment not cancellable: {0}")]
    ShipmentNotCancellable(String),
    /// No unit of the key model is on hand (the producer's view; its name).
    #[error("stock empty ({0})")]
    StockEmpty(String),
    /// The certificate is not the logged-in account's (it may be on the
    /// key the applicant plugged in all the same).
    #[error("not the account's certificate")]
    NotOwnCertificate,
    /// Renewal cannot start now (the renewal window's message: why and
    /// what to do instead).
    #[error("renewal not open: {0}")]
    RenewalNotOpen(String),
    /// Another renewal of the certificate is under way.
    #[error("renewal busy")]
    RenewalBusy,
    /// Renewal carries a price and the certificate's renewal order is not
    /// paid yet (the amount, in yuan, as shown).
    #[error("renewal unpaid: {0}")]
    RenewalUnpaid(String),
    /// The key did not prove it holds the certificate being renewed (the
    /// message says what to do).
    #[error("renewal proof failed: {0}")]
    RenewalProofFailed(&'static str),
    /// Another PIN unlock of the token is under way.
    #[error("pin unlock busy")]
    PinUnlockBusy,
    /// The renewal is over (its state as shown).
    #[error("renewal closed ({0})")]
    RenewalClosed(&'static str),
    /// The token presented is not the one the certificate's key is on.
    #[error("wrong token")]
    WrongToken,
    /// The token was not made by CertHall for this account, so CertHall
    /// has no SO PIN to release for it.
    #[error("token not the account's")]
    TokenNotOurs,
    /// The PIN unlock is over or was never started (its state as shown).
    #[error("pin unlock closed ({0})")]
    PinUnlockClosed(&'static str),
}

impl Refusal {
    /// The stable machine code, e.g. `sms_code_wrong`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidPhone => "invalid_phone",
            Self::InvalidCodeFormat => "invalid_code_format",
            Self::ResendTooSoon { .. } => "sms_resend_too_soon",
            Self::PhoneSendLimit => "sms_phone_limit",
            Self::IpSendLimit => "sms_ip_limit",
            Self::CodeNotRequested => "sms_code_not_requested",
            Self::CodeWrong { .. } => "sms_code_wrong",
            Self::CodeExpired => "sms_code_expired",
            Self::CodeUsed => "sms_code_used",
            Self::CodeExhausted => "sms_code_exhausted",
            Self::NotLoggedIn => "not_logged_in",
            Self::SessionExpired => "session_expired",
            Self::BadToken => "bad_token",
            Self::CsrfMismatch => "csrf_mismatch",
            Self::ForeignOrigin => "foreign_origin",
            Self::MessageNotFound => "message_not_found",
            Self::MissingField(_) => "missing_field",
            Self::InvalidField(_) => "invalid_field",
            Self::NotFound => "not_found",
            Self::CertificateNotFound => "certificate_not_found",
            Self::AlreadyRevoked => "certificate_already_revoked",
            Self::CaNotInitialized(_) => "ca_not_initialized",
            Self::CaAlreadyInitialized(_) => "ca_already_initialized",
            Self::ProfileNotFound(_) => "profile_not_found",
            Self::ProfileExists(_) => "profile_exists",
            Self::CaRequestRefused(_) => "ca_request_refused",
            Self::CertChallengeInvalid => "cert_challenge_invalid",
            Self::CertChallengeExpired => "cert_challenge_expired",
            Self::CertChallengeUsed => "cert_challenge_used",
            Self::CertChallengeLimit => "cert_challenge_limit",
            Self::CertUnknown => "cert_unknown",
            Self::CertNotYetValid => "cert_not_yet_valid",
            Self::CertExpired(_) => "cert_expired",
            Self::CertRevoked => "cert_revoked",
            Self::CertNotBound => "cert_not_bound",
            Self::CertNotForLogin => "cert_not_for_login",
            Self::CertBadSignature => "cert_bad_signature",
            Self::KeyWrongPin { .. } => "key_wrong_pin",
            Self::KeyPinLocked => "key_pin_locked",
            Self::InvalidResidentId => "invalid_resident_id",
            Self::ResidentIdBirthDate => "resident_id_birth_date",
            Self::ResidentIdCheckDigit => "resident_id_check_digit",
            Self::InvalidUscc => "invalid_uscc",
            Self::UsccCheckDigit => "uscc_check_digit",
            Self::OrderStepOutOfOrder(_) => "order_step_out_of_order",
            Self::UploadRefused { code, .. } => code,
            Self::MaterialMissing(_) => "material_missing",
            Self::NotALicense => "not_a_license",
            Self::AuthorizationSmsLimit => "authorization_sms_limit",
            Self::LegalRepMismatch(_) => "legal_rep_mismatch",
            Self::OrderStateConflict(_) => "order_state_conflict",
            Self::InvalidApplication(_) => "invalid_application",
            Self::ApplicationNotFound(_) => "application_not_found",
            Self::ApplicationExists(_) => "application_exists",
            Self::InvalidOperator(_) => "invalid_operator",
            Self::OperatorExists(_) => "operator_exists",
            Self::CounterBadCredentials => "counter_bad_credentials",
            Self::CounterLoginRestart => "counter_login_restart",
            Self::OperatorLocked { .. } => "operator_locked",
            Self::CounterTooManyTries { .. } => "counter_too_many_tries",
            Self::OperatorPhoneTaken(_) => "operator_phone_taken",
            Self::OwnOrderReview => "own_order_review",
            Self::ReviewAlreadyDecided(_) => "review_already_decided",
            Self::InvalidKeyModel(_) => "invalid_key_model",
            Self::KeyModelNotFound(_) => "key_model_not_found",
            Self::KeyModelExists(_) => "key_model_exists",
            Self::KeyModelNotOffered(_) => "key_model_not_offered",
            Self::KeyModelOutOfStock(_) => "key_model_out_of_stock",
            Self::UnknownDivision => "unknown_division",
            Self::InvalidTaxId(_) => "invalid_tax_id",
            Self::AddressNotFound => "address_not_found",
            Self::AddressBookFull => "address_book_full",
            Self::CheckoutNotOpen(_) => "checkout_not_open",
            Self::OrderAlreadyPaid => "order_already_paid",
            Self::PaymentNotDue(_) => "payment_not_due",
            Self::NotProducer => "not_producer",
            Self::NotAdmin => "not_admin",
            Self::PlatformUnauthorized => "platform_unauthorized",
            Self::PlatformAuthLimit => "platform_auth_limit",
            Self::ActivationRefused(code) => code,
            Self::ProductionBusy(_) => "production_busy",
            Self::ProductionAttemptClosed(_) => "production_attempt_closed",
            Self::TokenInUse(_) => "token_in_use",
            Self::TokenNotBlank => "token_not_blank",
            Self::ReadBackMismatch => "read_back_mismatch",
            Self::WrongKeyAlgorithm(_) => "wrong_key_algorithm",
            Self::CourierFailed(_) => "courier_failed",
            Self::CourierPushRefused => "courier_push_refused",
            Self::CourierUnsure(_) => "courier_unsure",
            Self::ShipmentNotCancellable(_) => "shipment_not_cancellable",
            Self::StockEmpty(_) => "stock_empty",
            Self::PaymentBusy => "payment_busy",
            Self::PaymentChannelUnavailable(_) => "payment_channel_unavailable",
            Self::NotOwnCertificate => "not_own_certificate",
            Self::RenewalNotOpen(_) => "renewal_not_open",
            Self::RenewalBusy => "renewal_busy",
            Self::RenewalUnpaid(_) => "renewal_unpaid",
            Self::RenewalProofFailed(_) => "renewal_proof_failed",
            Self::PinUnlockBusy => "pin_unlock_busy",
            Self::RenewalClosed(_) => "renewal_closed",
            Self::WrongToken => "wrong_token",
            Self::TokenNotOurs => "token_not_ours",
            Self::PinUnlockClosed(_) => "pin_unlock_closed",
        }
    }

    /// The family of this refusal.
    pub fn kind(&self) -> RefusalKind {
        match self {
            Self::InvalidPhone
            | Self::InvalidCodeFormat
            | Self::MissingField(_)
            | Self::InvalidApplication(_)
            | Self::InvalidOperator(_)
            | Self::InvalidField(_)
            | Self::CaRequestRefused(_)
            | Self::InvalidResidentId
            | Self::ResidentIdBirthDate
            | Self::ResidentIdCheckDigit
            | Self::InvalidUscc
            | Self::UploadRefused { .. }
            | Self::MaterialMissing(_)
            | Self::NotALicense
            | Self::LegalRepMismatch(_)
            | Self::InvalidKeyModel(_)
            | Self::KeyModelNotOffered(_)
            | Self::UnknownDivision
            | Self::InvalidTaxId(_)
            | Self::PaymentChannelUnavailable(_)
            | Self::UsccCheckDigit => RefusalKind::Invalid,
            Self::CodeNotRequested
            | Self::CodeWrong { .. }
            | Self::CodeExpired
            | Self::CodeExhausted
            | Self::NotLoggedIn
            | Self::SessionExpired
            | Self::BadToken
            | Self::CertChallengeInvalid
            | Self::CertChallengeExpired
            | Self::CertUnknown
            | Self::CertNotYetValid
            | Self::CertExpired(_)
            | Self::CertRevoked
            | Self::CertNotBound
            | Self::CertNotForLogin
            | Self::CertBadSignature
            | Self::KeyWrongPin { .. }
            | Self::KeyPinLocked
            | Self::CounterBadCredentials
            | Self::CounterLoginRestart => RefusalKind::Unauthenticated,
            Self::CsrfMismatch
            | Self::ForeignOrigin
            | Self::OperatorLocked { .. }
            | Self::OwnOrderReview => RefusalKind::Forbidden,
            Self::MessageNotFound
            | Self::NotFound
            | Self::CertificateNotFound
            | Self::CaNotInitialized(_)
            | Self::ProfileNotFound(_)
            | Self::KeyModelNotFound(_)
            | Self::AddressNotFound
            | Self::ApplicationNotFound(_) => RefusalKind::NotFound,
            Self::CodeUsed
            | Self::OrderStepOutOfOrder(_)
            | Self::OrderStateConflict(_)
            | Self::ApplicationExists(_)
            | Self::OperatorExists(_)
            | Self::OperatorPhoneTaken(_)
            | Self::ReviewAlreadyDecided(_)
            | Self::CertChallengeUsed
            | Self::AlreadyRevoked
            | Self::CaAlreadyInitialized(_)
            | Self::KeyModelExists(_)
            | Self::KeyModelOutOfStock(_)
            | Self::AddressBookFull
            | Self::CheckoutNotOpen(_)
            | Self::OrderAlreadyPaid
            | Self::PaymentNotDue(_)
            | Self::PaymentBusy
            | Self::ProductionBusy(_)
            | Self::ProductionAttemptClosed(_)
            | Self::TokenInUse(_)
            | Self::TokenNotBlank
            | Self::CourierFailed(_)
            | Self::CourierUnsure(_)
            | Self::ShipmentNotCancellable(_)
            | Self::StockEmpty(_)
            | Self::ProfileExists(_) => RefusalKind::Conflict,
            Self::NotProducer | Self::NotAdmin => RefusalKind::Forbidden,
            Self::NotOwnCertificate | Self::TokenNotOurs => RefusalKind::Forbidden,
            Self::RenewalNotOpen(_)
            | Self::RenewalBusy
            | Self::RenewalUnpaid(_)
            | Self::RenewalClosed(_)
            | Self::PinUnlockBusy
            | Self::PinUnlockClosed(_) => RefusalKind::Conflict,
            Self::WrongToken | Self::RenewalProofFailed(_) => RefusalKind::Invalid,
            Self::PlatformUnauthorized => RefusalKind::Unauthenticated,
            Self::ActivationRefused(_) => RefusalKind::Invalid,
            Self::ReadBackMismatch | Self::WrongKeyAlgorithm(_) | Self::CourierPushRefused => {
                RefusalKind::Invalid
            }
            Self::ResendTooSoon { .. }
            | Self::PhoneSendLimit
            | Self::IpSendLimit
            | Self::AuthorizationSmsLimit
            | Self::CertChallengeLimit
            | Self::PlatformAuthLimit
            | Self::CounterTooManyTries { .. } => RefusalKind::RateLimited,
        }
    }

    /// The message shown to the user, in Simplified Chinese.
    pub fn message_zh(&self) -> String {
        match self {
            Self::InvalidPhone => "请输入正确的11位中国大陆手机号码。".into(),
            Self::InvalidCodeFormat => "验证码为6位数字，请检查后重新输入。".into(),
            Self::ResendTooSoon { wait_secs } => {
                format!("验证码已发送，请{wait_secs}秒后再重新获取。")
            }
            Self::PhoneSendLimit => "该手机号在一小时内获取验证码次数过多，请稍后再试。".into(),
            Self::IpSendLimit => "您的网络在一小时内获取验证码次数过多，请稍后再试。".into(),
            Self::CodeNotRequested => "请先获取短信验证码。".into(),
            Self::CodeWrong { attempts_left } => {
                format!("验证码不正确，还可尝试{attempts_left}次。")
            }
            Self::CodeExpired => "验证码已过期，请重新获取。".into(),
            Self::CodeUsed => "该验证码已使用过，请重新获取。".into(),
            Self::CodeExhausted => "验证码错误次数过多，已失效，请重新获取。".into(),
            Self::NotLoggedIn => "请先登录。".into(),
            Self::SessionExpired => "登录已超时，请重新登录。".into(),
            Self::BadToken => "访问令牌无效或已失效，请重新登录。".into(),
            Self::CsrfMismatch => "页面已过期或来源不明，请刷新页面后重试。".into(),
            Self::ForeignOrigin => {
                "该请求来自其他网站，已被拒绝。请直接在本营业厅页面上操作。".into()
            }
            Self::MessageNotFound => "找不到这条消息。".into(),
            Self::MissingField(name) => format!("请填写{name}。"),
            Self::InvalidField(why) => format!("{}。", why.trim_end_matches('。')),
            Self::NotFound => "您访问的页面不存在。".into(),
            Self::CertificateNotFound => "找不到该证书，请核对证书序列号。".into(),
            Self::AlreadyRevoked => "该证书已经注销，无需重复操作。".into(),
            Self::CaNotInitialized(f) => format!("{f} 证书体系尚未建立。"),
            Self::CaAlreadyInitialized(f) => format!("{f} 证书体系已经建立，不能重复初始化。"),
            Self::ProfileNotFound(p) => format!("证书模板 {p} 不存在。"),
            Self::ProfileExists(p) => format!("证书模板 {p} 已存在。"),
            Self::CaRequestRefused(why) => format!("证书申请未通过校验：{why}"),
            Self::CertChallengeInvalid => "登录请求无效，请刷新页面后重新登录。".into(),
            Self::CertChallengeExpired => "登录请求已超过2分钟，请重新点击登录。".into(),
            Self::CertChallengeUsed => {
                "该登录请求已经使用过，不能重复提交。请重新选择证书登录。".into()
            }
            Self::CertChallengeLimit => "登录尝试过于频繁，请稍后再试。".into(),
            Self::CertUnknown => "该证书不是本系统签发的数字证书，无法用于登录。".into(),
            Self::CertNotYetValid => "该证书尚未生效，请稍后再试。".into(),
            Self::CertExpired(date) => {
                format!("该证书已于 {date} 过期，不能用于登录。请使用手机号登录后办理证书更新。")
            }
            Self::CertRevoked => "该证书已注销（吊销），不能用于登录。".into(),
            Self::CertNotBound => "该证书尚未关联网上营业厅账户，请先使用手机号登录。".into(),
            Self::CertNotForLogin => {
                "该证书的用途不包含数字签名，不能用于登录。请选择签名证书。".into()
            }
            Self::CertBadSignature => {
                "证书签名校验失败，请重新登录；如多次失败，请联系客服。".into()
            }
            Self::KeyWrongPin {
                retries_left: Some(n),
            } => format!("UKey PIN 码错误，还可尝试 {n} 次。"),
            Self::KeyWrongPin { retries_left: None } => "UKey PIN 码错误。".into(),
            Self::UploadRefused {
                material, message, ..
            } => format!("{material}：{message}"),
            Self::MaterialMissing(name) => format!("请上传{name}。"),
            Self::NotALicense => "未识别到营业执照，请上传清晰的营业执照照片。".into(),
            Self::AuthorizationSmsLimit => {
                "已多次发送授权短信，请24小时后再试，或改为上传授权委托书。".into()
            }
            Self::LegalRepMismatch(on_license) => format!(
                "法定代表人姓名须与营业执照一致（营业执照上的法定代表人为：{on_license}）。"
            ),
            Self::OrderStepOutOfOrder(n) => {
                format!("请按顺序办理：请先完成第{n}步之前的步骤。")
            }
            Self::OrderStateConflict(state) => {
                format!("订单当前状态为“{state}”，不能进行此操作。请刷新页面查看最新进度。")
            }
            Self::InvalidApplication(why) => format!("应用信息不正确：{why}。"),
            Self::ApplicationNotFound(code) => format!("应用 {code} 不存在。"),
            Self::ApplicationExists(code) => format!("应用 {code} 已存在。"),
            Self::InvalidOperator(why) => format!("柜台人员信息不正确：{why}。"),
            Self::OperatorExists(name) => format!("用户名 {name} 已存在。"),
            Self::OperatorPhoneTaken(name) => format!(
                "该手机号已是柜台人员 {name} 的登录手机号。每位柜台人员须使用本人的手机号接收登录验证码。"
            ),
            Self::CounterBadCredentials => {
                "用户名或密码不正确。连续错误5次将锁定30分钟。".into()
            }
            Self::CounterLoginRestart => "登录已超时，请重新输入用户名和密码。".into(),
            Self::OperatorLocked { minutes } => format!(
                "该柜台账户因连续登录失败已被锁定，请{minutes}分钟后再试，或联系管理员。"
            ),
            Self::CounterTooManyTries { minutes } => format!(
                "此网络的柜台登录尝试过于频繁，请{minutes}分钟后再试。"
            ),
            Self::OwnOrderReview => {
                "不能审核本人账户提交的订单（申请账户手机号与您的手机号相同），请交由其他柜台人员处理。"
                    .into()
            }
            Self::ReviewAlreadyDecided(state) => format!(
                "该订单已被其他柜台人员处理（当前状态：{state}），请返回审核队列。"
            ),
            Self::KeyPinLocked => "UKey PIN 码错误次数过多，已被锁定。请用手机验证码登录后，在“我的证书”中办理“PIN 解锁”。".into(),
            Self::InvalidResidentId => {
                "身份证号码格式不正确：应为18位，前17位是数字，最后一位是数字或字母X。请核对后重新输入。"
                    .into()
            }
            Self::ResidentIdBirthDate => {
                "身份证号码第7至14位的出生日期无效（应为1900年1月1日至今天之间的真实日期），请核对后重新输入。"
                    .into()
            }
            Self::ResidentIdCheckDigit => {
                "身份证号码校验位不正确，请对照身份证逐位核对，特别是最后一位。".into()
            }
            Self::InvalidUscc => {
                "统一社会信用代码格式不正确：应为18位数字或大写字母，且不含字母I、O、S、V、Z（请注意数字0与字母O、数字1与字母I的区别）。请对照营业执照核对。"
                    .into()
            }
            Self::UsccCheckDigit => {
                "统一社会信用代码校验位不正确，请对照营业执照逐位核对，特别是最后一位。".into()
            }
            Self::InvalidKeyModel(why) => format!("介质信息不正确：{why}。"),
            Self::KeyModelNotFound(code) => format!("介质型号 {code} 不存在。"),
            Self::KeyModelExists(code) => format!("介质型号 {code} 已存在。"),
            Self::KeyModelNotOffered(_) => {
                "所选 UKey 介质不适用于本订单的应用或已停止供应，请重新选择。".into()
            }
            Self::KeyModelOutOfStock(name) => {
                format!("“{name}”暂时缺货，请选择其他介质，或稍后再试。您填写的信息已保留。")
            }
            Self::UnknownDivision => "请选择所在地区的省、市和区县。".into(),
            Self::InvalidTaxId(why) => format!("{why}。"),
            Self::AddressNotFound => "找不到该收货地址，可能已被删除。".into(),
            Self::AddressBookFull => {
                "地址簿最多保存20个地址，请先删除不再使用的地址。".into()
            }
            Self::CheckoutNotOpen(state) => format!(
                "订单当前状态为“{state}”：柜台审核通过后才能选择介质与收货地址。"
            ),
            Self::OrderAlreadyPaid => "该订单已支付成功，无需重复支付。".into(),
            Self::PaymentNotDue(state) => format!(
                "订单当前状态为“{state}”，无需支付。请刷新页面查看最新进度。"
            ),
            Self::PaymentBusy => {
                "支付二维码正在生成或上一笔支付正在处理，请稍候几秒后刷新页面再试。".into()
            }
            Self::PaymentChannelUnavailable(name) => {
                format!("暂不支持{name}，请选择其他支付方式。")
            }
            Self::NotProducer => "您没有制证权限，请联系管理员开通。".into(),
            Self::NotAdmin => "该操作仅限管理员办理，请联系管理员。".into(),
            Self::PlatformUnauthorized => "平台凭据无效，请核对接入令牌。".into(),
            Self::PlatformAuthLimit => "来自该地址的错误平台凭据过多，请核对接入令牌后一小时再试。".into(),
            Self::ActivationRefused(code) => match *code {
                "activation_challenge_invalid" => "激活请求无效，请刷新页面后重新激活。",
                "activation_challenge_expired" => "激活请求已超过2分钟，请重新点击激活。",
                "activation_challenge_used" => "该激活请求已使用过，请重新点击激活。",
                "activation_cert_unknown" => "该证书不是本CA签发的数字证书，无法激活。",
                "activation_bad_signature" => "签名验证失败，请插入该证书所在的UKey后重新激活。",
                "activation_revoked" => "该证书已注销，无法激活。",
                "activation_not_for_signing" => "该证书不能用于签名，无法激活。",
                "activation_not_yet_valid" => "该证书尚未生效，请稍后再激活。",
                "activation_expired" => "该证书已过期，无法激活，请先办理证书更新。",
                "activation_not_bound" => "该证书未关联网上营业厅账户，无法激活。",
                "activation_other_application" => {
                    "该证书不是为本平台办理的，请使用为本平台办理的数字证书。"
                }
                _ => "该证书无法激活。",
            }
            .into(),
            Self::ProductionBusy(who) => {
                format!("该订单正在由 {who} 制证，请勿重复操作；如对方已中断，15 分钟后可重新制证。")
            }
            Self::ProductionAttemptClosed(state) => {
                format!("本次制证已结束（{state}），请重新开始制证。")
            }
            Self::TokenInUse(order) => {
                format!("这把 UKey 已用于订单 {order}，请换一把空白 UKey。")
            }
            Self::TokenNotBlank => {
                "这把 UKey 已初始化，且不是本订单制证时初始化的，请换一把空白 UKey。".into()
            }
            Self::ReadBackMismatch => {
                "从 UKey 读回的证书与签发的证书不一致，本次制证已作废（证书已注销），请重新制证。"
                    .into()
            }
            Self::WrongKeyAlgorithm(want) => {
                format!("UKey 生成的密钥类型与该应用要求的 {want} 不一致，未签发证书。")
            }
            Self::CourierFailed(msg) => {
                format!("顺丰下单失败：{msg}。订单仍为“已制证”，请稍后重试。")
            }
            Self::CourierPushRefused => "路由推送校验失败。".into(),
            Self::CourierUnsure(msg) => format!(
                "{msg}，尚不确定顺丰是否已接单。请稍后再点“顺丰下单发货”：系统会用同一订单号向顺丰查询并确认，不会重复下单。"
            ),
            Self::ShipmentNotCancellable(why) => format!("不能取消顺丰订单：{why}。"),
            Self::StockEmpty(name) => format!(
                "介质“{name}”已无库存，请先入库（certhall key-model stock）后点击“重新确认”。"
            ),
            Self::NotOwnCertificate => "该证书不属于当前登录的账号，不能在此办理。请使用办理该证书时的手机号登录。".into(),
            Self::RenewalNotOpen(why) => why.clone(),
            Self::RenewalBusy => "该证书正在更新中，请勿重复操作；如上次更新已中断，请 30 分钟后重试。".into(),
            Self::RenewalUnpaid(yuan) => format!(
                "证书更新费用 {yuan} 元尚未支付：请先在“证书更新”页面点击“支付更新费用”，支付完成后再更新。"
            ),
            Self::RenewalProofFailed(m) => (*m).into(),
            Self::PinUnlockBusy => "这把 UKey 正在解锁中，请勿在多个页面同时操作；如上次解锁已中断，请 10 分钟后重试。".into(),
            Self::RenewalClosed(state) => format!("本次证书更新已结束（{state}），请重新开始更新。"),
            Self::WrongToken => "插入的 UKey 不是该证书所在的 UKey，请插入存放该证书的 UKey 后重试。".into(),
            Self::TokenNotOurs => "这把 UKey 不是本系统为当前账号制作的，无法在线解锁。请携带 UKey 到柜台办理。".into(),
            Self::PinUnlockClosed(state) => format!("本次 PIN 解锁已结束（{state}），请重新开始解锁。"),
        }
    }
}

impl fmt::Display for RefusalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_messages_chinese() {
        let all = [
            Refusal::InvalidPhone,
            Refusal::InvalidCodeFormat,
            Refusal::ResendTooSoon { wait_secs: 5 },
            Refusal::PhoneSendLimit,
            Refusal::IpSendLimit,
            Refusal::CodeNotRequested,
            Refusal::CodeWrong { attempts_left: 2 },
            Refusal::CodeExpired,
            Refusal::CodeUsed,
            Refusal::CodeExhausted,
            Refusal::NotLoggedIn,
            Refusal::SessionExpired,
            Refusal::BadToken,
            Refusal::CsrfMismatch,
            Refusal::MessageNotFound,
            Refusal::MissingField("手机号"),
            Refusal::InvalidField("姓名应为 2–30 个汉字或字母".into()),
            Refusal::NotFound,
            Refusal::CertificateNotFound,
            Refusal::AlreadyRevoked,
            Refusal::CaNotInitialized("sm2".into()),
            Refusal::CaAlreadyInitialized("sm2".into()),
            Refusal::ProfileNotFound("x".into()),
            Refusal::ProfileExists("x".into()),
            Refusal::CaRequestRefused("x".into()),
            Refusal::CertChallengeInvalid,
            Refusal::CertChallengeExpired,
            Refusal::CertChallengeUsed,
            Refusal::CertChallengeLimit,
            Refusal::CertUnknown,
            Refusal::CertNotYetValid,
            Refusal::CertExpired("2026-01-01".into()),
            Refusal::CertRevoked,
            Refusal::CertNotBound,
            Refusal::CertNotForLogin,
            Refusal::CertBadSignature,
            Refusal::KeyWrongPin {
                retries_left: Some(3),
            },
            Refusal::KeyPinLocked,
            Refusal::InvalidResidentId,
            Refusal::ResidentIdBirthDate,
            Refusal::ResidentIdCheckDigit,
            Refusal::InvalidUscc,
            Refusal::UploadRefused {
                material: "公章",
                code: "upload_not_image",
                message: "文件内容不是 PNG 或 JPEG 图片".into(),
            },
            Refusal::MaterialMissing("法人章"),
            Refusal::AuthorizationSmsLimit,
            Refusal::LegalRepMismatch("张三".into()),
            Refusal::UsccCheckDigit,
            Refusal::OrderStepOutOfOrder(3),
            Refusal::OrderStateConflict("柜台审核中".into()),
            Refusal::InvalidApplication("x".into()),
            Refusal::ApplicationNotFound("x".into()),
            Refusal::ApplicationExists("x".into()),
            Refusal::InvalidOperator("x".into()),
            Refusal::OperatorExists("x".into()),
            Refusal::CounterBadCredentials,
            Refusal::CounterLoginRestart,
            Refusal::OperatorLocked { minutes: 3 },
            Refusal::CounterTooManyTries { minutes: 9 },
            Refusal::ForeignOrigin,
            Refusal::OperatorPhoneTaken("wang".into()),
            Refusal::OwnOrderReview,
            Refusal::ReviewAlreadyDecided("审核通过".into()),
            Refusal::InvalidKeyModel("x".into()),
            Refusal::KeyModelNotFound("x".into()),
            Refusal::KeyModelExists("x".into()),
            Refusal::KeyModelNotOffered("x".into()),
            Refusal::KeyModelOutOfStock("标准 UKey".into()),
            Refusal::UnknownDivision,
            Refusal::InvalidTaxId("纳税人识别号校验位不正确".into()),
            Refusal::AddressNotFound,
            Refusal::AddressBookFull,
            Refusal::CheckoutNotOpen("柜台审核中".into()),
            Refusal::OrderAlreadyPaid,
            Refusal::PaymentNotDue("已取消".into()),
            Refusal::PaymentBusy,
            Refusal::PaymentChannelUnavailable("支付宝".into()),
            Refusal::NotProducer,
            Refusal::NotAdmin,
            Refusal::PlatformUnauthorized,
            Refusal::PlatformAuthLimit,
            Refusal::ActivationRefused("activation_revoked"),
            Refusal::ProductionBusy("张三".into()),
            Refusal::ProductionAttemptClosed("制证失败"),
            Refusal::TokenInUse(7),
            Refusal::TokenNotBlank,
            Refusal::ReadBackMismatch,
            Refusal::WrongKeyAlgorithm("SM2（国密）"),
            Refusal::CourierFailed("x".into()),
            Refusal::CourierPushRefused,
            Refusal::CourierUnsure("无法连接顺丰".into()),
            Refusal::ShipmentNotCancellable("快件已揽收".into()),
            Refusal::StockEmpty("标准 UKey".into()),
            Refusal::NotOwnCertificate,
            Refusal::RenewalNotOpen("该证书已注销，无法更新。".into()),
            Refusal::RenewalBusy,
            Refusal::RenewalUnpaid("100.00".into()),
            Refusal::NotALicense,
            Refusal::RenewalProofFailed("UKey 签名校验未通过。"),
            Refusal::PinUnlockBusy,
            Refusal::RenewalClosed("已完成"),
            Refusal::WrongToken,
            Refusal::TokenNotOurs,
            Refusal::PinUnlockClosed("已完成"),
        ];
        let mut codes: Vec<_> = all.iter().map(Refusal::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        for r in &all {
            let msg = r.message_zh();
            assert!(
                msg.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{msg}"
            );
        }
    }
}
