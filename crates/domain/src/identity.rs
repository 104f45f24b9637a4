//! Identity numbers: the resident ID (居民身份证号码) and the unified social
//! credit code (统一社会信用代码).
//!
//! - [`ResidentId`] follows GB 11643-1999 (公民身份号码): six digits of
//!   address code, eight of birth date (`YYYYMMDD`), three of sequence (odd
//!   for men, even for women) and a check character computed by ISO 7064
//!   MOD 11-2 — weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2, the sum mod 11
//!   giving `1 0 X 9 8 7 6 5 4 3 2`.
//! - [`Uscc`] follows GB 32100-2015 (法人和其他组织统一社会信用代码编码规则):
//!   eighteen characters from `0-9 A-H J-N P-R T U W-Y` (no I, O, S, V, Z,
//!   which read like 1, 0, 5, U, 2), valued 0–30, weights 3^(i−1) mod 31,
//!   check character C18 = 31 − (Σ mod 31), where 31 becomes 0.
//!
//! Input comes from people typing (often with a Chinese input method in
//! full-width mode) and from OCR of a business license (often with stray
//! spaces), so parsing forgives full-width digits and letters, spaces and
//! dashes, and a lower-case letter; the stored form is always the canonical
//! eighteen ASCII characters. Parsing never reads the clock: the
//! resident ID's "birth date not in the future" check takes the current
//! instant as a parameter.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::{Date, Month};

use crate::clock::Timestamp;
use crate::refusal::Refusal;

/// GB 11643 weights of the first seventeen digits.
const RESIDENT_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// GB 11643 check characters, indexed by the weighted sum mod 11.
const RESIDENT_CHECK: [u8; 11] = *b"10X98765432";
/// The earliest birth date accepted: nobody born before it applies for a
/// certificate, and a date before it is almost always a typo (`1090…`).
const EARLIEST_BIRTH: (i32, Month, u8) = (1900, Month::January, 1);

/// GB 32100 alphabet; a character's value is its index.
const USCC_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// GB 32100 weights: 3^(i−1) mod 31.
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Upper-cased ASCII form of typed or recognized text: full-width digits and
/// letters become ASCII, spaces (ASCII and ideographic) and dashes vanish.
fn normalize(input: &str) -> String {
    input
        .chars()
        .filter(|c| !(c.is_whitespace() || matches!(c, '-' | '\u{3000}')))
        .map(|c| match c {
            // Full-width forms U+FF01..U+FF5E map to ASCII 0x21..0x7E.
            '\u{ff01}'..='\u{ff5e}' => char::from_u32(u32::from(c) - 0xfee0).unwrap_or(c),
            _ => c,
        })
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// The GB 11643 check character for the first seventeen digits, or `None`
/// when `first17` is not seventeen ASCII digits.
///
/// Public so that test kits can make valid numbers and pages can explain
/// a refusal.
pub fn resident_id_check_char(first17: &str) -> Option<char> {
    let digits = first17.as_bytes();
    if digits.len() != 17 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = digits
        .iter()
        .zip(RESIDENT_WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    RESIDENT_CHECK
        .get(usize::try_from(sum % 11).ok()?)
        .map(|&b| char::from(b))
}

/// The sex recorded in a resident ID (odd 17th digit: male).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sex {
    /// 男.
    Male,
    /// 女.
    Female,
}

/// A resident ID number (居民身份证号码) whose format, date of birth and
/// check character are valid. Eighteen ASCII characters: seventeen digits
/// and a digit or `X`.
///
/// `Debug` shows only the masked form, so the number does not leak into
/// logs; use [`ResidentId::as_str`] where the full number is meant.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ResidentId {
    number: String,
    birth_date: Date,
}

impl ResidentId {
    /// Parses a typed resident ID number, checking it against the current
    /// instant `now` (the birth date, read in China Standard Time, may not
    /// be later than today).
    ///
    /// Refuses with [`Refusal::InvalidResidentId`] when it is not eighteen
    /// characters of the right kinds, [`Refusal::ResidentIdBirthDate`] when
    /// characters 7–14 are not a real date between 1900-01-01 and today,
    /// and [`Refusal::ResidentIdCheckDigit`] when the last character does
    /// not match the others. The date is checked before the check character
    /// because a mistyped date usually breaks both, and "the birth date"
    /// points the user at the right digits.
    pub fn parse(input: &str, now: Timestamp) -> Result<Self, Refusal> {
        let number = normalize(input);
        let bytes = number.as_bytes();
        let well_formed = bytes.len() == 18
            && bytes[..17].iter().all(u8::is_ascii_digit)
            && (bytes[17].is_ascii_digit() || bytes[17] == b'X')
            && bytes[0] != b'0';
        if !well_formed {
            return Err(Refusal::InvalidResidentId);
        }
        let birth_date = birth_date(&number[6..14]).ok_or(Refusal::ResidentIdBirthDate)?;
        let earliest =
            Date::from_calendar_date(EARLIEST_BIRTH.0, EARLIEST_BIRTH.1, EARLIEST_BIRTH.2)
                .map_err(|_| Refusal::ResidentIdBirthDate)?;
        if birth_date < earliest || birth_date > now.to_cst().date() {
            return Err(Refusal::ResidentIdBirthDate);
        }
        if resident_id_check_char(&number[..17]) != Some(char::from(bytes[17])) {
            return Err(Refusal::ResidentIdCheckDigit);
        }
        Ok(Self { number, birth_date })
    }

    /// The eighteen characters, upper-case `X`.
    pub fn as_str(&self) -> &str {
        &self.number
    }

    /// The date of birth (characters 7–14).
    pub fn birth_date(&self) -> Date {
        self.birth_date
    }

    /// The sex (odd 17th digit: male, even: female).
    pub fn sex(&self) -> Sex {
        if self.number.as_bytes()[16] % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// The six-digit administrative division code of the place of first
    /// registration (GB/T 2260).
    pub fn region_code(&self) -> &str {
        &self.number[..6]
    }

    /// `110105********002X`: the region code and the last four characters,
    /// for pages and logs that must not show the whole number.
    pub fn masked(&self) -> String {
        format!("{}********{}", &self.number[..6], &self.number[14..])
    }
}

fn birth_date(yyyymmdd: &str) -> Option<Date> {
    let year: i32 = yyyymmdd.get(0..4)?.parse().ok()?;
    let month: u8 = yyyymmdd.get(4..6)?.parse().ok()?;
    let day: u8 = yyyymmdd.get(6..8)?.parse().ok()?;
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

impl fmt::Debug for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResidentId({})", self.masked())
    }
}

/// The GB 32100 check character for the first seventeen characters, or
/// `None` when `first17` is not seventeen characters of the code's
/// alphabet (upper case).
///
/// Public so that test kits can make valid codes.
pub fn uscc_check_char(first17: &str) -> Option<char> {
    let chars = first17.as_bytes();
    if chars.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (&c, w) in chars.iter().zip(USCC_WEIGHTS) {
        sum += uscc_value(c)? * w;
    }
    let check = (31 - sum % 31) % 31;
    USCC_ALPHABET
        .get(usize::try_from(check).ok()?)
        .map(|&b| char::from(b))
}

fn uscc_value(c: u8) -> Option<u32> {
    USCC_ALPHABET
        .iter()
        .position(|&a| a == c)
        .and_then(|i| u32::try_from(i).ok())
}

/// A unified social credit code (统一社会信用代码) whose characters and check
/// character are valid: eighteen upper-case ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Uscc(String);

impl Uscc {
    /// Parses a typed or recognized code.
    ///
    /// Refuses with [`Refusal::InvalidUscc`] when it is not eighteen
    /// characters of the code's alphabet, and [`Refusal::UsccCheckDigit`]
    /// when the last character does not match the others.
    pub fn parse(input: &str) -> Result<Self, Refusal> {
        let code = normalize(input);
        if code.len() != 18 || !code.bytes().all(|c| uscc_value(c).is_some()) {
            return Err(Refusal::InvalidUscc);
        }
        if uscc_check_char(&code[..17]) != code[17..].chars().next() {
            return Err(Refusal::UsccCheckDigit);
        }
        Ok(Self(code))
    }

    /// Whether `code` is a valid code exactly as written: canonical form,
    /// no normalization. For data that must already be canonical (a
    /// certificate subject).
    pub fn is_valid_canonical(code: &str) -> bool {
        Self::parse(code).is_ok_and(|u| u.0 == code)
    }

    /// The eighteen characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Uscc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Uscc {
    type Err = Refusal;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Uscc {
    type Error = Refusal;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Uscc> for String {
    fn from(u: Uscc) -> Self {
        u.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    /// 2026-03-01 10:00 in Beijing.
    fn now() -> Timestamp {
        at(datetime!(2026-03-01 10:00 +8))
    }

    fn at(t: time::OffsetDateTime) -> Timestamp {
        Timestamp::from_millis(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap())
    }

    /// A valid number for this birth date (region 370402, sequence 123).
    fn id_born(yyyymmdd: &str) -> String {
        let first17 = format!("370402{yyyymmdd}123");
        let check = resident_id_check_char(&first17).unwrap();
        format!("{first17}{check}")
    }

    #[test]
    fn resident_id_accepts_valid_numbers() {
        // (input, canonical form, birth date, sex)
        let cases = [
            // GB 11643-1999's own example (a woman born 1949-12-31).
            (
                "11010519491231002X",
                "11010519491231002X",
                date!(1949 - 12 - 31),
                Sex::Female,
            ),
            (
                "11010519491231002x",
                "11010519491231002X",
                date!(1949 - 12 - 31),
                Sex::Female,
            ),
            (
                "  11010519491231002X\t",
                "11010519491231002X",
                date!(1949 - 12 - 31),
                Sex::Female,
            ),
            (
                "110105 19491231 002X",
                "11010519491231002X",
                date!(1949 - 12 - 31),
                Sex::Female,
            ),
            // Full-width digits and Ｘ from a Chinese input method.
            (
                "１１０１０５１９４９１２３１００２Ｘ",
                "11010519491231002X",
                date!(1949 - 12 - 31),
                Sex::Female,
            ),
            (
                "370402200002291230",
                "370402200002291230",
                date!(2000 - 02 - 29),
                Sex::Male,
            ),
            (
                "370402190001011237",
                "370402190001011237",
                date!(1900 - 01 - 01),
                Sex::Male,
            ),
            // Born today (in Beijing) is not in the future.
            (
                "37040220260301123X",
                "37040220260301123X",
                date!(2026 - 03 - 01),
                Sex::Male,
            ),
        ];
        for (input, canonical, born, sex) in cases {
            let id = ResidentId::parse(input, now()).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(id.as_str(), canonical, "{input}");
            assert_eq!(id.birth_date(), born, "{input}");
            assert_eq!(id.sex(), sex, "{input}");
        }
    }

    #[test]
    fn resident_id_check_characters_of_published_examples() {
        // Both examples of GB 11643-1999 §8.
        assert_eq!(resident_id_check_char("11010519491231002"), Some('X'));
        assert_eq!(resident_id_check_char("44052418800101001"), Some('4'));
        // The second example's holder was born 1880-01-01, before the
        // earliest birth date we accept for a living applicant: its check
        // character is right, its date is refused.
        assert_eq!(
            ResidentId::parse("440524188001010014", now()),
            Err(Refusal::ResidentIdBirthDate)
        );
        // Every check character occurs, including X (sum mod 11 = 2).
        let mut seen: Vec<char> = (0..2000u32)
            .filter_map(|n| resident_id_check_char(&format!("1101051990010{n:04}")))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 11);
    }

    #[test]
    fn resident_id_refusals() {
        let cases: [(&str, Refusal); 18] = [
            // Wrong check character (and a transposition of two digits).
            ("110105194912310021", Refusal::ResidentIdCheckDigit),
            ("11010519491231003X", Refusal::ResidentIdCheckDigit),
            ("10110519491231002X", Refusal::ResidentIdCheckDigit),
            // Length and characters.
            ("11010519491231002", Refusal::InvalidResidentId),
            ("11010519491231002X1", Refusal::InvalidResidentId),
            ("110105194912310", Refusal::InvalidResidentId),
            ("", Refusal::InvalidResidentId),
            ("   ", Refusal::InvalidResidentId),
            ("1101051949123100XX", Refusal::InvalidResidentId),
            ("11010519491231002Y", Refusal::InvalidResidentId),
            ("A1010519491231002X", Refusal::InvalidResidentId),
            ("1101O519491231002X", Refusal::InvalidResidentId),
            ("01010519491231002X", Refusal::InvalidResidentId),
            ("11010519491231002×", Refusal::InvalidResidentId),
            // Dates: 31 February, month 13, day 0, 1899, not a leap year.
            ("110105194902310023", Refusal::ResidentIdBirthDate),
            ("110105194913010023", Refusal::ResidentIdBirthDate),
            ("110105194912000023", Refusal::ResidentIdBirthDate),
            ("110105190002290023", Refusal::ResidentIdBirthDate),
        ];
        for (input, want) in cases {
            assert_eq!(ResidentId::parse(input, now()), Err(want), "{input:?}");
        }
        // Dates refused even when the check character fits them.
        for born in ["18991231", "20260302", "20270101", "19490231", "00000000"] {
            let input = id_born(born);
            assert_eq!(
                ResidentId::parse(&input, now()),
                Err(Refusal::ResidentIdBirthDate),
                "{input}"
            );
        }
    }

    #[test]
    fn resident_id_today_is_read_in_china_standard_time() {
        let born = id_born("20260301");
        // 2026-02-28 23:00 UTC is already 1 March in Beijing.
        assert!(ResidentId::parse(&born, at(datetime!(2026-02-28 23:00 UTC))).is_ok());
        // 2026-02-28 15:00 UTC is still 28 February in Beijing.
        assert_eq!(
            ResidentId::parse(&born, at(datetime!(2026-02-28 15:00 UTC))),
            Err(Refusal::ResidentIdBirthDate)
        );
    }

    #[test]
    fn resident_id_masks_in_debug() {
        let id = ResidentId::parse("11010519491231002X", now()).unwrap();
        assert_eq!(id.masked(), "110105********002X");
        assert_eq!(id.region_code(), "110105");
        let debug = format!("{id:?}");
        assert!(!debug.contains("19491231"), "{debug}");
        assert!(debug.contains("110105********002X"), "{debug}");
    }

    #[test]
    fn uscc_accepts_valid_codes() {
        // The zero case: Σ mod 31 = 0 gives 31, written as check character 0.
        let zero_first17 = "91350100M000100Y3";
        assert_eq!(uscc_check_char(zero_first17), Some('0'));
        let cases = [
            // GB 32100-2015's example.
            ("91350100M000100Y43", "91350100M000100Y43"),
            ("91110000802100433B", "91110000802100433B"),
            ("91370400MA3C6A9X1Q", "91370400MA3C6A9X1Q"),
            ("91350100m000100y43", "91350100M000100Y43"),
            (" 91350100 M000100Y43 ", "91350100M000100Y43"),
            ("９１３５０１００Ｍ０００１００Ｙ４３", "91350100M000100Y43"),
            ("91350100M000100Y30", "91350100M000100Y30"),
        ];
        for (input, canonical) in cases {
            let u = Uscc::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(u.as_str(), canonical, "{input}");
            assert_eq!(u.to_string(), canonical, "{input}");
        }
    }

    #[test]
    fn uscc_every_check_value_round_trips() {
        // Changing the 17th character walks the check value through all 31
        // values; each made-up code parses, and every other last character
        // is refused.
        let mut checks = Vec::new();
        for &c in USCC_ALPHABET {
            let first17 = format!("91350100M000100Y{}", char::from(c));
            let check = uscc_check_char(&first17).unwrap();
            checks.push(check);
            assert!(Uscc::parse(&format!("{first17}{check}")).is_ok());
            for &other in USCC_ALPHABET.iter().filter(|&&o| char::from(o) != check) {
                assert_eq!(
                    Uscc::parse(&format!("{first17}{}", char::from(other))),
                    Err(Refusal::UsccCheckDigit)
                );
            }
        }
        checks.sort_unstable();
        checks.dedup();
        assert_eq!(checks.len(), 31);
    }

    #[test]
    fn uscc_refusals() {
        let cases: [(&str, Refusal); 14] = [
            // Wrong check character; a transposition.
            ("91350100M000100Y44", Refusal::UsccCheckDigit),
            ("91350100M000100Y40", Refusal::UsccCheckDigit),
            ("91351000M000100Y43", Refusal::UsccCheckDigit),
            // Letters outside the alphabet, each in place of a similar one.
            ("91350100M000100I43", Refusal::InvalidUscc),
            ("9135010OM000100Y43", Refusal::InvalidUscc),
            ("91350100M000100Y4S", Refusal::InvalidUscc),
            ("91350100M000100V43", Refusal::InvalidUscc),
            ("91350100M000100Z43", Refusal::InvalidUscc),
            // Length.
            ("91350100M000100Y4", Refusal::InvalidUscc),
            ("91350100M000100Y43X", Refusal::InvalidUscc),
            ("", Refusal::InvalidUscc),
            // Other characters.
            ("91350100M000100Y4.", Refusal::InvalidUscc),
            ("91350100M000100统43", Refusal::InvalidUscc),
            ("91350100M000100Y4３3", Refusal::InvalidUscc),
        ];
        for (input, want) in cases {
            assert_eq!(Uscc::parse(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn uscc_canonical_check_and_serde() {
        assert!(Uscc::is_valid_canonical("91350100M000100Y43"));
        assert!(!Uscc::is_valid_canonical("91350100m000100y43"));
        assert!(!Uscc::is_valid_canonical(" 91350100M000100Y43"));
        let u: Uscc = serde_json::from_str("\"91350100m000100y43\"").unwrap();
        assert_eq!(serde_json::to_string(&u).unwrap(), "\"91350100M000100Y43\"");
        assert!(serde_json::from_str::<Uscc>("\"91350100M000100Y44\"").is_err());
        assert_eq!("91350100M000100Y43".parse::<Uscc>(), Ok(u));
    }
}
