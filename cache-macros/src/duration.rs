//! Durations of the attribute, parsed at compile time.

/// A duration option's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Millis(u64),
    Forever,
}

pub const HINT: &str = "write a duration such as \"500ms\", \"90s\", \"15m\", \"1h\", \"2.5h\", \"1d\", or a whole number of seconds";

/// Parses `"500ms"`, `"90s"`, `"15m"`, `"1h"`, `"2.5h"`, `"1d"`, `"1h 30m"` (and, with
/// `allow_forever`, `"forever"`) into milliseconds.
pub fn parse(text: &str, allow_forever: bool) -> Result<Span, String> {
    let t = text.trim();
    if allow_forever && t.eq_ignore_ascii_case("forever") {
        return Ok(Span::Forever);
    }
    if t.starts_with('-') {
        return Err(format!("`{t}` is negative: durations can't be negative; {HINT}"));
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Span::Millis(secs.saturating_mul(1000)));
    }
    if let Some(ms) = decimal(t) {
        return Ok(Span::Millis(ms));
    }
    match humantime::parse_duration(t) {
        Ok(d) => Ok(Span::Millis(d.as_millis().min(u64::MAX as u128) as u64)),
        Err(_) => {
            let forever = if allow_forever { ", or \"forever\"" } else { "" };
            Err(format!("`{t}` is not a duration: {HINT}{forever}"))
        }
    }
}

/// `<number>[.<fraction>]<unit>` with one unit: ms, s, m, h, d.
fn decimal(t: &str) -> Option<u64> {
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = t.split_at(split);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1 {
        return None;
    }
    let unit_ms: f64 = match unit.trim() {
        "ms" => 1.0,
        "s" | "sec" | "secs" => 1_000.0,
        "m" | "min" | "mins" => 60_000.0,
        "h" | "hr" | "hrs" => 3_600_000.0,
        "d" | "day" | "days" => 86_400_000.0,
        _ => return None,
    };
    let n: f64 = num.parse().ok()?;
    let ms = (n * unit_ms).round();
    (ms.is_finite() && ms >= 0.0 && ms < u64::MAX as f64).then_some(ms as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_of_the_spec() {
        assert_eq!(parse("500ms", false), Ok(Span::Millis(500)));
        assert_eq!(parse("90s", false), Ok(Span::Millis(90_000)));
        assert_eq!(parse("15m", false), Ok(Span::Millis(900_000)));
        assert_eq!(parse("1h", false), Ok(Span::Millis(3_600_000)));
        assert_eq!(parse("2.5h", false), Ok(Span::Millis(9_000_000)));
        assert_eq!(parse("1d", false), Ok(Span::Millis(86_400_000)));
        assert_eq!(parse("1h 30m", false), Ok(Span::Millis(5_400_000)));
        assert_eq!(parse("30", false), Ok(Span::Millis(30_000)));
        assert_eq!(parse("forever", true), Ok(Span::Forever));
    }

    #[test]
    fn bad_forms_say_what_to_write() {
        assert!(parse("forever", false).unwrap_err().contains("not a duration"));
        assert!(parse("-5s", false).unwrap_err().contains("negative"));
        assert!(parse("1 fortnight", false).unwrap_err().contains("\"500ms\""));
        assert!(parse("1.h", false).is_err());
    }
}
