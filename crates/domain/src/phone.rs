//! Mainland China mobile numbers (手机号).
//!
//! Eleven digits starting with `1[3-9]`, the numbering plan of MIIT's mobile
//! blocks. Spaces, dashes and a leading `+86` / `86` are tolerated on input
//! because people paste numbers in those forms; the stored form is always
//! the bare eleven digits.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::refusal::Refusal;

/// A validated mainland mobile number, eleven ASCII digits.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    /// Parses user input into a phone number, or refuses with
    /// [`Refusal::InvalidPhone`].
    pub fn parse(input: &str) -> Result<Self, Refusal> {
        let mut digits: String = input
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '\u{3000}'))
            .collect();
        if let Some(rest) = digits.strip_prefix("+86") {
            digits = rest.to_owned();
        } else if digits.len() == 13 && digits.starts_with("86") {
            digits = digits[2..].to_owned();
        }
        let bytes = digits.as_bytes();
        let ok = bytes.len() == 11
            && bytes.iter().all(u8::is_ascii_digit)
            && bytes[0] == b'1'
            && (b'3'..=b'9').contains(&bytes[1]);
        if ok {
            Ok(Self(digits))
        } else {
            Err(Refusal::InvalidPhone)
        }
    }

    /// The eleven digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `138****5678`, for pages and logs that must not show the whole number.
    pub fn masked(&self) -> String {
        format!("{}****{}", &self.0[..3], &self.0[7..])
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalizes() {
        let cases = [
            ("13800138000", "13800138000"),
            ("199 0000 1111", "19900001111"),
            ("+8615012345678", "15012345678"),
            ("8615012345678", "15012345678"),
            ("170-1234-5678", "17012345678"),
        ];
        for (input, want) in cases {
            assert_eq!(
                Phone::parse(input).map(|p| p.0),
                Ok(want.to_owned()),
                "{input}"
            );
        }
    }

    #[test]
    fn refuses_what_is_not_a_mainland_mobile() {
        for input in [
            "",
            "1380013800",
            "138001380000",
            "12800138000",
            "10800138000",
            "23800138000",
            "1380013800a",
            "１３８００１３８０００",
            "+85291234567",
        ] {
            assert_eq!(Phone::parse(input), Err(Refusal::InvalidPhone), "{input}");
        }
    }

    #[test]
    fn masks_the_middle() {
        let p = Phone::parse("13812345678").unwrap();
        assert_eq!(p.masked(), "138****5678");
        assert_eq!(format!("{p:?}"), "Phone(138****5678)");
    }
}
