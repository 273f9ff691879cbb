//! Durations of the attribute, parsed at compile time.

/// A duration option's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Millis(u64),
    Forever,
}

/// Why a duration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    Negative,
    Malformed,
}

/// Parses `"500ms"`, `"90s"`, `"15m"`, `"1h"`, `"2.5h"`, `"1d"`, `"1h 30m"` (and, with
/// `allow_forever`, `"forever"`) into milliseconds.
pub fn parse(text: &str, allow_forever: bool) -> Result<Span, Bad> {
    let t = text.trim();
    if allow_forever && t.eq_ignore_ascii_case("forever") {
        return Ok(Span::Forever);
    }
    if t.starts_with('-') {
        return Err(Bad::Negative);
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Span::Millis(secs.saturating_mul(1000)));
    }
    if let Some(ms) = decimal(t) {
        return Ok(Span::Millis(ms));
    }
    match humantime::parse_duration(t) {
        Ok(d) => Ok(Span::Millis(d.as_millis().min(u64::MAX as u128) as u64)),
        Err(_) => Err(Bad::Malformed),
    }
}

/// What to tell the user about `option = text` (`quoted`: written as a string literal):
/// what is wrong and what to write instead.
pub fn message(bad: Bad, option: &str, text: &str, quoted: bool, allow_forever: bool) -> String {
    let t = text.trim();
    match bad {
        Bad::Negative => {
            let positive = t.trim_start_matches('-').trim_start();
            let fix = if quoted { format!("\"{positive}\"") } else { positive.to_owned() };
            format!("`{option}` can't be negative: write `{option} = {fix}`")
        }
        Bad::Malformed => {
            let forever = if allow_forever { ", or `\"forever\"` for no limit" } else { "" };
            format!(
                "`{t}` is not a duration: write e.g. `{option} = \"90s\"`, `\"2.5h\"`, `\"1h 30m\"` or `90` (seconds){forever}; the units are `ms`, `s`, `m`, `h` and `d`"
            )
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
    fn bad_forms_are_refused() {
        assert_eq!(parse("forever", false), Err(Bad::Malformed));
        assert_eq!(parse("-5s", false), Err(Bad::Negative));
        assert_eq!(parse("-5", false), Err(Bad::Negative));
        assert_eq!(parse("1 fortnight", false), Err(Bad::Malformed));
        assert_eq!(parse("soon", true), Err(Bad::Malformed));
        assert_eq!(parse("1.h", false), Err(Bad::Malformed));
    }

    #[test]
    fn a_negative_duration_is_answered_with_its_positive_twin() {
        assert_eq!(
            message(Bad::Negative, "max_age", "-5", false, false),
            "`max_age` can't be negative: write `max_age = 5`"
        );
        assert_eq!(
            message(Bad::Negative, "stale_max_age", "-5s", true, true),
            "`stale_max_age` can't be negative: write `stale_max_age = \"5s\"`"
        );
    }

    #[test]
    fn a_malformed_duration_is_answered_with_the_forms_that_work() {
        let m = message(Bad::Malformed, "max_age", "soon", true, false);
        assert!(m.starts_with("`soon` is not a duration: write e.g. `max_age = \"90s\"`"), "{m}");
        assert!(!m.contains("forever"));
        assert!(
            message(Bad::Malformed, "stale_max_age", "always", true, true).contains("or `\"forever\"` for no limit")
        );
    }
}
