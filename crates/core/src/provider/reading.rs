//! What every provider's answer must look like before it may be cached: a temperature that can
//! occur on Earth, and a short printable condition name. A provider's bug or a hostile server
//! must not put `-1e308 °C` or 100 KB of control characters into every client's display.

use super::ProviderError;
use crate::cache::Observation;

/// Coldest and hottest air temperatures accepted, in °C. The records are -89.2 °C (Vostok, 1983)
/// and 56.7 °C (Death Valley, 1913); the margins leave room for readings at altitude and for
/// sensors, never for a unit mix-up (a Kelvin or Fahrenheit value slips past at most rarely).
pub const MIN_CELSIUS: f64 = -100.0;
pub const MAX_CELSIUS: f64 = 70.0;

/// Longest condition name kept, in characters.
pub const MAX_CONDITION_CHARS: usize = 64;

/// The condition when a provider gave none (or nothing printable).
pub const UNKNOWN: &str = "Unknown";

/// Builds an observation, refusing an impossible temperature (an invalid response, so the area
/// cools down and nothing is cached) and tidying the condition: control characters removed,
/// surrounding space trimmed, at most `MAX_CONDITION_CHARS` characters.
pub fn observation(celsius: f64, condition: Option<&str>) -> Result<Observation, ProviderError> {
    if !(MIN_CELSIUS..=MAX_CELSIUS).contains(&celsius) {
        let shown = if celsius.is_finite() { format!("{celsius}") } else { "a non-finite number".to_owned() };
        return Err(ProviderError::InvalidResponse {
            message: format!("temperature {shown} °C is outside [{MIN_CELSIUS}, {MAX_CELSIUS}]"),
        });
    }
    let condition = tidy(condition.unwrap_or(""), MAX_CONDITION_CHARS);
    Ok(Observation { condition: if condition.is_empty() { UNKNOWN.to_owned() } else { condition }, celsius })
}

/// A provider's text as one display line: hidden characters removed, surrounding space
/// trimmed, at most `max_chars` characters (possibly empty).
pub fn tidy(text: &str, max_chars: usize) -> String {
    let printable: String = text.chars().filter(|c| !hidden(*c)).take(max_chars * 2).collect();
    let trimmed: String = printable.trim().chars().take(max_chars).collect();
    trimmed.trim_end().to_owned()
}

/// A provider's multi-line text (an alert's description): each line tidied, line breaks kept,
/// at most `max_chars` characters in all.
pub fn tidy_lines(text: &str, max_chars: usize) -> String {
    let lines: Vec<String> = text.lines().map(|line| tidy(line, max_chars)).collect();
    let joined = lines.join("\n");
    joined.trim().chars().take(max_chars).collect::<String>().trim_end().to_owned()
}

/// Characters that print nothing or rearrange what prints: controls (Cc), Unicode's format
/// characters (Cf: bidirectional overrides, zero-width joiners, the BOM...) and the line and
/// paragraph separators. A display line must read as it is.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c as u32,
            0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2 | 0x180E
            | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
            | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_temperatures_are_invalid_responses() {
        for celsius in [-1e308, -100.01, 70.01, 1e308, f64::INFINITY, f64::NAN, 293.15] {
            assert!(
                matches!(observation(celsius, Some("Clear")), Err(ProviderError::InvalidResponse { .. })),
                "{celsius}"
            );
        }
        assert_eq!(observation(-100.0, None).unwrap().celsius, -100.0);
        assert_eq!(observation(70.0, None).unwrap().celsius, 70.0);
    }

    #[test]
    fn multi_line_texts_keep_their_lines_only() {
        assert_eq!(tidy_lines("* WHAT...Heavy snow.\r\n\n* WHERE...Hills\u{202E}.\n", 100), "* WHAT...Heavy snow.\n\n* WHERE...Hills.");
        assert_eq!(tidy_lines(&"x\n".repeat(100), 9), "x\nx\nx\nx\nx");
    }

    #[test]
    fn conditions_are_short_and_printable() {
        assert_eq!(observation(1.0, Some("Clouds")).unwrap().condition, "Clouds");
        assert_eq!(observation(1.0, Some("Ra\u{0}in\r\n\u{1b}[31m")).unwrap().condition, "Rain[31m");
        let hostile = "\u{202E}sdu\u{200B}olC\u{2028}\u{FEFF}";
        assert_eq!(observation(1.0, Some(hostile)).unwrap().condition, "sduolC", "no bidi override, no zero-width");
        assert_eq!(observation(1.0, Some(&"x".repeat(100_000))).unwrap().condition.chars().count(), 64);
        assert_eq!(observation(1.0, Some(&"é".repeat(100))).unwrap().condition, "é".repeat(64));
        for blank in [None, Some(""), Some(" \t\n"), Some("\u{7}\u{7f}")] {
            assert_eq!(observation(1.0, blank).unwrap().condition, "Unknown");
        }
    }
}
