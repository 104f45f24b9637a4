//! Money: amounts are integer fen (分) everywhere, never floats. This module
//! turns them into and out of the decimal yuan text payment providers use
//! (Alipay's `total_amount` is `"88.88"`; WeChat Pay counts fen as
//! integers already).

/// `8888` → `"88.88"` (no unit; what Alipay's `total_amount` takes).
pub fn yuan_decimal(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Reads a provider's decimal yuan amount (`"88.88"`, `"88.8"`, `"88"`)
/// as fen, strictly: digits, at most one point, at most two decimals, no
/// sign, no spaces, at most 12 integer digits. Anything else is `None`
/// (an amount we cannot read exactly is never guessed).
pub fn parse_yuan_decimal(text: &str) -> Option<i64> {
    let (yuan, fen) = match text.split_once('.') {
        Some((y, f)) if (1..=2).contains(&f.len()) => (y, f),
        Some(_) => return None,
        None => (text, ""),
    };
    if yuan.is_empty()
        || yuan.len() > 12
        || !yuan.bytes().all(|b| b.is_ascii_digit())
        || !fen.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let yuan: i64 = yuan.parse().ok()?;
    let fen: i64 = match fen.len() {
        0 => 0,
        1 => fen.parse::<i64>().ok()? * 10,
        _ => fen.parse().ok()?,
    };
    yuan.checked_mul(100)?.checked_add(fen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_yuan_round_trips() {
        for (fen, text) in [
            (0, "0.00"),
            (1, "0.01"),
            (8888, "88.88"),
            (38_000, "380.00"),
        ] {
            assert_eq!(yuan_decimal(fen), text);
            assert_eq!(parse_yuan_decimal(text), Some(fen));
        }
        assert_eq!(yuan_decimal(-150), "-1.50");
        assert_eq!(parse_yuan_decimal("88.8"), Some(8880));
        assert_eq!(parse_yuan_decimal("88"), Some(8800));
        for bad in [
            "", ".5", "88.", "88.888", "-1.00", "+1", "1,000.00", " 1.00", "1e3", "0x10", "1.0.0",
            "１.00",
        ] {
            assert_eq!(parse_yuan_decimal(bad), None, "{bad:?}");
        }
    }
}
