//! RFC 3339 timestamps as providers write them (`2026-11-22T10:00:00Z`,
//! `2026-11-22T05:00:00-05:00`), to epoch seconds. Only what those providers send: no leap
//! seconds, fractions ignored.

use crate::cache::days_from_civil;

/// Epoch seconds and the offset written in the text (seconds east of UTC).
pub fn parse_rfc3339(text: &str) -> Option<(i64, i32)> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<i64> {
        let part = text.get(from..to)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok()).flatten()
    };
    let (year, month, day) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        rest = fraction.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(&rest[..1], "+" | "-") && &rest[3..4] == ":" => {
            let (h, m) = (digits(text.len() - 5, text.len() - 3)?, digits(text.len() - 2, text.len())?);
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            (sign * (h * 3_600 + m * 60)) as i32
        }
        _ => return None,
    };
    let days = days_from_civil(year, month as u32, day as u32);
    Some((days * 86_400 + hour * 3_600 + minute * 60 + second - offset as i64, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_and_offsets() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(parse_rfc3339("2026-11-22T10:00:00Z"), Some((1_795_341_600, 0)));
        assert_eq!(parse_rfc3339("2026-11-22T05:00:00-05:00"), Some((1_795_341_600, -18_000)));
        assert_eq!(parse_rfc3339("2026-11-22T15:30:00.123+05:30"), Some((1_795_341_600, 19_800)));
        for bad in ["", "2026-11-22", "2026-13-01T00:00:00Z", "2026-11-22T10:00:00", "2026-11-22T10:00:00+0500", "２０２６-11-22T10:00:00Z"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
