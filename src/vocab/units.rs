//! Parsers for the policy's human-readable units: durations (`"5s"`), byte sizes (`"64KiB"`) and
//! rates (`"120/min"`). Each returns a message a policy author can act on.

use std::num::NonZeroU32;
use std::time::Duration;

/// Parses `"250ms"`, `"5s"`, `"1m"`, `"15m"`, `"1h"`, `"2d"`. A bare number is refused: a duration
/// without a unit is a guess.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration `{text}` needs a unit (ms, s, m, h, d)"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("duration `{text}` must start with a whole number"))?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "duration `{text}` has unknown unit `{unit}` (use ms, s, m, h, d)"
            ));
        }
    };
    number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration `{text}` is too large"))
}

/// Parses `"16KiB"`, `"100MiB"`, `"1GiB"`, `"64KB"`, `"512B"` or a bare number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("size `{text}` must start with a whole number"))?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "size `{text}` has unknown unit `{other}` (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size `{text}` is too large"))
}

/// A rate such as `120/min`: `count` events per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Events allowed per period; never zero.
    pub count: NonZeroU32,
    /// The period the count refers to.
    pub period: Duration,
}

impl Rate {
    /// The steady-state spacing between two events (the GCRA emission interval).
    pub fn interval(&self) -> Duration {
        self.period / self.count.get()
    }
}

/// Parses `"10/s"`, `"120/min"`, `"5000/h"`, `"100000/day"`; also `"30/10s"`.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let (count, period) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("rate `{text}` must look like `120/min`"))?;
    let count: u32 = count
        .trim()
        .parse()
        .map_err(|_| format!("rate `{text}` must start with a whole number"))?;
    let count =
        NonZeroU32::new(count).ok_or_else(|| format!("rate `{text}` must allow at least 1"))?;
    let period = match period.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3_600),
        "d" | "day" => Duration::from_secs(86_400),
        other => parse_duration(other).map_err(|_| {
            format!("rate `{text}` has unknown period `{other}` (use s, min, h, day or a duration)")
        })?,
    };
    if period.is_zero() {
        return Err(format!("rate `{text}` has a zero period"));
    }
    if period / count.get() < Duration::from_micros(1) {
        return Err(format!("rate `{text}` is faster than one per microsecond"));
    }
    Ok(Rate { count, period })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("5").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16KiB"), Ok(16 * 1024));
        assert_eq!(parse_size("100MiB"), Ok(100 * 1024 * 1024));
        assert_eq!(parse_size("64KB"), Ok(64_000));
        assert_eq!(parse_size("512"), Ok(512));
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("KiB").is_err());
    }

    #[test]
    fn rates() {
        let rate = parse_rate("120/min").unwrap();
        assert_eq!(rate.count.get(), 120);
        assert_eq!(rate.period, Duration::from_secs(60));
        assert_eq!(rate.interval(), Duration::from_millis(500));
        assert_eq!(
            parse_rate("30/10s").unwrap().interval(),
            Duration::from_millis(333) + Duration::from_nanos(333_333)
        );
        assert!(parse_rate("0/min").is_err());
        assert!(parse_rate("120").is_err());
        assert!(parse_rate("120/fortnight").is_err());
        assert!(parse_rate("4000000000/ms").is_err());
    }
}
