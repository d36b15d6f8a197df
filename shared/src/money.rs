//! Money is integer fen (分) end to end; yuan strings are converted exactly.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("amount is empty")]
    Empty,
    #[error("amount must be a plain decimal number of yuan with at most 2 decimal places")]
    Format,
    #[error("amount must be greater than zero")]
    Zero,
    #[error("amount is too large")]
    TooLarge,
}

/// Integer yuan digits allowed; far beyond any order and far from `i64` overflow.
const MAX_YUAN_DIGITS: usize = 12;

/// Parses a yuan amount such as `"0.29"` or `"10"` into fen (29, 1000) without
/// floating point. Refuses signs, exponents, spaces, more than two decimals,
/// leading zeros (`"01"`) and zero.
pub fn yuan_to_fen(s: &str) -> Result<i64, MoneyError> {
    if s.is_empty() {
        return Err(MoneyError::Empty);
    }
    let (int_part, frac_part) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) || (int_part.len() > 1 && int_part.starts_with('0')) {
        return Err(MoneyError::Format);
    }
    if int_part.len() > MAX_YUAN_DIGITS {
        return Err(MoneyError::TooLarge);
    }
    let frac_fen = match frac_part {
        None => 0,
        Some(f) if all_digits(f) && f.len() <= 2 => {
            let n: i64 = f.parse().map_err(|_| MoneyError::Format)?;
            if f.len() == 1 { n * 10 } else { n }
        }
        Some(_) => return Err(MoneyError::Format),
    };
    let yuan: i64 = int_part.parse().map_err(|_| MoneyError::Format)?;
    let fen = yuan * 100 + frac_fen;
    if fen == 0 {
        return Err(MoneyError::Zero);
    }
    Ok(fen)
}

/// Formats fen as yuan with two decimals: 29 → `"0.29"`.
pub fn fen_to_yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_float_bug_is_gone() {
        // The seed computed 0.29 * 100 = 28.999999999999996.
        assert_eq!(yuan_to_fen("0.29"), Ok(29));
        assert_eq!(yuan_to_fen("0.57"), Ok(57));
        assert_eq!(yuan_to_fen("1.1"), Ok(110));
        assert_eq!(yuan_to_fen("10"), Ok(1000));
        assert_eq!(yuan_to_fen("0.01"), Ok(1));
        assert_eq!(yuan_to_fen("19.99"), Ok(1999));
        assert_eq!(yuan_to_fen("999999999999.99"), Ok(99_999_999_999_999));
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "1.234",
            "-1",
            "1e3",
            "abc",
            "",
            "0",
            "0.00",
            "0.0",
            "+1",
            " 1",
            "1 ",
            "1.",
            ".5",
            "01",
            "00.5",
            "1,5",
            "１",
            "0x10",
            "NaN",
            "inf",
            "1.2.3",
            "1000000000000",
        ] {
            assert!(yuan_to_fen(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(yuan_to_fen(""), Err(MoneyError::Empty));
        assert_eq!(yuan_to_fen("0"), Err(MoneyError::Zero));
        assert_eq!(yuan_to_fen("1000000000000"), Err(MoneyError::TooLarge));
    }

    #[test]
    fn formats_fen() {
        assert_eq!(fen_to_yuan(29), "0.29");
        assert_eq!(fen_to_yuan(1000), "10.00");
        assert_eq!(fen_to_yuan(-5), "-0.05");
    }

    #[test]
    fn every_two_decimal_amount_round_trips() {
        for fen in 1..=20_000 {
            assert_eq!(yuan_to_fen(&fen_to_yuan(fen)), Ok(fen));
        }
    }
}
