//! Accounts: one per phone number, created at the first successful login.

use serde::{Deserialize, Serialize};

use crate::{Phone, Timestamp};

/// The id of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub i64);

/// A person who logs in to the service hall (经办人).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its id.
    pub id: AccountId,
    /// The phone the person logs in with; unique.
    pub phone: Phone,
    /// When the account was created.
    pub created_at: Timestamp,
}
