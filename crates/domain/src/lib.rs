//! CertHall's domain: the rules of the service hall, free of HTTP and SQL.
//!
//! Everything here is pure: values come in, decisions come out. Time is a
//! parameter ([`clock::Clock`]); randomness is passed in as an RNG; storage
//! and transport live in other crates (`certhall-store`, `certhall-web`).
//!
//! - [`phone`]: mainland mobile numbers.
//! - [`otp`]: one-time login codes — generation, hashing, send and verify policy.
//! - [`session`]: session lifetime policy and the CSRF token derivation.
//! - [`message`]: in-app messages (消息提醒) and their kinds.
//! - [`audit`]: the tamper-evident, hash-chained audit log.
//! - [`identity`]: resident ID numbers (GB 11643) and unified social credit
//!   codes (GB 32100).
//! - [`order`], [`wizard`], [`steps`], [`materials`]: the application
//!   (订单) state machine, the wizard's steps (as typed and as stored) and
//!   step 5's materials and authorization.
//! - [`checkout`], [`payment`], [`money`]: step 6 (key model, address,
//!   invoice, amount) and step 7 (payment attempts, refunds), in fen.
//! - [`divisions`]: the bundled GB/T 2260 division table (province / city /
//!   district) for delivery addresses.
//! - [`lifecycle`]: an issued certificate's status, its renewal window and
//!   its expiry reminders (到期提醒).
//! - [`refusal`]: why a request is refused, with a stable code and a Chinese message.

pub mod account;
pub mod application;
pub mod audit;
pub mod cert_login;
pub mod change;
pub mod checkout;
pub mod clock;
pub mod divisions;
pub mod identity;
pub mod lifecycle;
pub mod materials;
pub mod message;
pub mod money;
pub mod operator;
pub mod order;
pub mod otp;
pub mod payment;
pub mod phone;
pub mod production;
pub mod refusal;
pub mod renewal;
pub mod secret;
pub mod session;
pub mod steps;
pub mod wizard;

pub use account::AccountId;
pub use clock::{Clock, Timestamp};
pub use operator::OperatorId;
pub use order::OrderId;
pub use phone::Phone;
pub use refusal::{Refusal, RefusalKind};
