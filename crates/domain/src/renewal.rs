//! The applicant's own work on a key they hold (issue 12): 证书更新
//! (renewal onto the same UKey) and PIN 解锁 (PIN unlock).
//!
//! A **renewal** writes a new certificate onto the token the old one is on.
//! The applicant's page drives the agent; CertHall decides and records:
//!
//! ```text
//!   Started ──CSR accepted, new certificate issued──► Issued ──read back, equal──► Completed
//!      │                                                │       (old one revoked: superseded)
//!      └───────────── failure reported / stale ─────────┴──► Failed / Abandoned
//!                                                          (the new certificate is revoked:
//!                                                           cessationOfOperation; the old
//!                                                           one stays valid)
//! ```
//!
//! A **PIN unlock** releases the token's SO PIN to the agent, sealed to a
//! one-time key the agent made, together with a fresh SO PIN; the agent
//! unblocks the user PIN and rotates the SO PIN; CertHall then keeps the
//! new one:
//!
//! ```text
//!   Released ──agent reports unblocked and rotated──► Completed
//!      └──────── failure reported / stale ──────────► Failed / Abandoned
//! ```
//!
//! Until a release completes CertHall keeps both SO PINs (the token has
//! one or the other), and the next release offers both.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Refusal;

/// A renewal's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalState {
    /// Opened: the SMS code was right, the window open, the token the
    /// certificate's.
    Started,
    /// The new certificate is issued; the page is writing it.
    Issued,
    /// Read back and equal: the new certificate is in use.
    Completed,
    /// The page reported a failure.
    Failed,
    /// Left open too long ([`RENEWAL_STALE`]).
    Abandoned,
}

/// What happens to a renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalEvent {
    /// The new certificate was issued from the token's request.
    Issue,
    /// The certificate read back from the token is the one issued.
    Complete,
    /// The page reported a failure.
    Fail,
    /// A newer renewal found this one stale.
    Abandon,
}

impl RenewalState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Issued => "issued",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Abandoned => "abandoned",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Started,
            Self::Issued,
            Self::Completed,
            Self::Failed,
            Self::Abandoned,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// Shown name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Started => "更新中",
            Self::Issued => "新证书写入中",
            Self::Completed => "已完成",
            Self::Failed => "更新失败",
            Self::Abandoned => "已中断",
        }
    }

    /// Still under way.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Started | Self::Issued)
    }
}

impl fmt::Display for RenewalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The renewal's state after `event`.
pub fn renewal_transition(
    state: RenewalState,
    event: RenewalEvent,
) -> Result<RenewalState, Refusal> {
    use RenewalEvent as E;
    use RenewalState as S;
    match (state, event) {
        (S::Started, E::Issue) => Ok(S::Issued),
        (S::Issued, E::Complete) => Ok(S::Completed),
        (S::Started | S::Issued, E::Fail) => Ok(S::Failed),
        (S::Started | S::Issued, E::Abandon) => Ok(S::Abandoned),
        _ => Err(Refusal::RenewalClosed(state.label_zh())),
    }
}

/// An open renewal older than this no longer blocks a new one: the next
/// renewal of the certificate abandons it (revoking its certificate).
pub const RENEWAL_STALE: Duration = Duration::from_secs(30 * 60);

/// A PIN unlock's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlockState {
    /// The SO PINs were released to the agent.
    Released,
    /// The agent unblocked the user PIN and set the new SO PIN.
    Completed,
    /// The page reported a failure.
    Failed,
    /// Left open too long ([`UNLOCK_STALE`]).
    Abandoned,
}

/// What happens to a PIN unlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlockEvent {
    /// The page reports the user PIN unblocked and the SO PIN rotated.
    Complete,
    /// The page reports a failure.
    Fail,
    /// A newer unlock of the token found this one stale.
    Abandon,
}

impl UnlockState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Released => "released",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Abandoned => "abandoned",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Released,
            Self::Completed,
            Self::Failed,
            Self::Abandoned,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// Shown name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Released => "解锁中",
            Self::Completed => "已解锁",
            Self::Failed => "解锁失败",
            Self::Abandoned => "已中断",
        }
    }
}

/// The unlock's state after `event`.
pub fn unlock_transition(state: UnlockState, event: UnlockEvent) -> Result<UnlockState, Refusal> {
    use UnlockEvent as E;
    use UnlockState as S;
    match (state, event) {
        (S::Released, E::Complete) => Ok(S::Completed),
        (S::Released, E::Fail) => Ok(S::Failed),
        (S::Released, E::Abandon) => Ok(S::Abandoned),
        _ => Err(Refusal::PinUnlockClosed(state.label_zh())),
    }
}

/// A released unlock older than this is abandoned by the next one.
pub const UNLOCK_STALE: Duration = Duration::from_secs(10 * 60);

/// What CertHall seals to the agent's one-time key for a PIN unlock (JSON
/// inside the sealed box, whose context is the token's serial).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoPinRelease {
    /// The token's serial (checked by the agent against the token).
    pub token: String,
    /// The SO PINs the token may have now, most likely first (two while an
    /// earlier rotation was not confirmed).
    pub so_pins: Vec<String>,
    /// The SO PIN to set.
    pub new_so_pin: String,
}

impl Drop for SoPinRelease {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.so_pins.zeroize();
        self.new_so_pin.zeroize();
    }
}

impl fmt::Debug for SoPinRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoPinRelease")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_machine() {
        use RenewalEvent as E;
        use RenewalState as S;
        assert_eq!(renewal_transition(S::Started, E::Issue), Ok(S::Issued));
        assert_eq!(renewal_transition(S::Issued, E::Complete), Ok(S::Completed));
        assert_eq!(renewal_transition(S::Started, E::Fail), Ok(S::Failed));
        assert_eq!(renewal_transition(S::Issued, E::Abandon), Ok(S::Abandoned));
        // Not from Started straight to Completed, nothing after the end.
        assert!(renewal_transition(S::Started, E::Complete).is_err());
        for end in [S::Completed, S::Failed, S::Abandoned] {
            for e in [E::Issue, E::Complete, E::Fail, E::Abandon] {
                assert_eq!(
                    renewal_transition(end, e),
                    Err(Refusal::RenewalClosed(end.label_zh()))
                );
            }
            assert!(!end.is_open());
            assert_eq!(RenewalState::parse(end.as_str()), Some(end));
        }
    }

    #[test]
    fn unlock_machine() {
        use UnlockEvent as E;
        use UnlockState as S;
        assert_eq!(
            unlock_transition(S::Released, E::Complete),
            Ok(S::Completed)
        );
        assert_eq!(unlock_transition(S::Released, E::Fail), Ok(S::Failed));
        assert!(unlock_transition(S::Completed, E::Complete).is_err());
        assert!(unlock_transition(S::Failed, E::Complete).is_err());
        assert_eq!(UnlockState::parse("abandoned"), Some(S::Abandoned));
    }

    #[test]
    fn the_release_never_prints_its_pins() {
        let r = SoPinRelease {
            token: "abc".into(),
            so_pins: vec!["11112222".into()],
            new_so_pin: "33334444".into(),
        };
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("1111") && !shown.contains("3333"),
            "{shown}"
        );
    }
}
