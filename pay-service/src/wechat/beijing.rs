//! WeChat Pay writes times as `yyyyMMddHHmmss` in Beijing time (UTC+8),
//! whatever the server's zone.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};

/// Evaluated at compile time: an invalid offset fails the build, not a request.
const BEIJING: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+8 is a valid offset"),
};

fn offset() -> FixedOffset {
    BEIJING
}

/// Unix seconds → `yyyyMMddHHmmss` Beijing time.
pub fn format(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .unwrap_or_default()
        .with_timezone(&offset())
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// `yyyyMMddHHmmss` Beijing time → Unix seconds.
pub fn parse(s: &str) -> Option<i64> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S")
        .ok()?
        .and_local_timezone(offset())
        .single()
        .map(|t| t.timestamp())
}

/// `yyyy-MM-dd HH:mm:ss` Beijing time (how refunds write it) → Unix seconds.
pub fn parse_refund_time(s: &str) -> Option<i64> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()?
        .and_local_timezone(offset())
        .single()
        .map(|t| t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_is_utc_plus_eight() {
        // 2024-03-01T16:30:05Z
        assert_eq!(format(1_709_310_605), "20240302003005");
        assert_eq!(parse("20240302003005"), Some(1_709_310_605));
        assert_eq!(parse("2024030200300"), None);
        assert_eq!(parse("20241302003005"), None);
        assert_eq!(parse("+0240302003005"), None);
        assert_eq!(
            parse_refund_time("2024-03-02 00:30:05"),
            Some(1_709_310_605)
        );
        assert_eq!(parse_refund_time("20240302003005"), None);
    }
}
