//! The one duration syntax of wid's flags: Go's `time.ParseDuration` (what kubectl and
//! azure-workload-identity's flags read: `3600s`, `90m`, `1h30m`, `1.5h`, `500ms`), optionally with
//! whole days (`90d`) for the long lifetimes of signing keys. Every duration must be positive, and
//! errors name the flag they were given to.

use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Parses `s`, given to `flag`; `days` also accepts the unit `d` (24 h).
pub fn parse(s: &str, flag: &str, days: bool) -> Result<Duration, String> {
    let s = s.trim();
    let invalid = || format!("invalid duration \"{s}\" for {flag}");
    if s.is_empty() {
        return Err(invalid());
    }
    if s.starts_with('-') {
        return Err(format!("{flag} must be positive, got \"{s}\""));
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest == "0" {
        return Err(format!("{flag} must be positive"));
    }
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after.find(|c: char| !c.is_alphabetic()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        rest = after;
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3600 * NANOS_PER_SEC,
            "d" if days => 86_400 * NANOS_PER_SEC,
            "" => return Err(format!("missing unit in duration \"{s}\" for {flag}")),
            other => return Err(format!("unknown unit \"{other}\" in duration \"{s}\" for {flag}")),
        };
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        let int: u128 = if int.is_empty() { 0 } else { int.parse().map_err(|_| invalid())? };
        let mut part = int.checked_mul(scale).ok_or_else(invalid)?;
        let mut frac_scale = scale;
        for digit in frac.chars().filter_map(|c| c.to_digit(10)) {
            frac_scale /= 10;
            part += u128::from(digit) * frac_scale;
        }
        nanos = nanos.checked_add(part).ok_or_else(invalid)?;
    }
    if nanos == 0 {
        return Err(format!("{flag} must be positive"));
    }
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| invalid())?;
    let sub = u32::try_from(nanos % NANOS_PER_SEC).map_err(|_| invalid())?;
    Ok(Duration::new(secs, sub))
}

/// [`parse`], for flags that take whole seconds (kubectl's `--duration`).
pub fn whole_seconds(s: &str, flag: &str, days: bool) -> Result<u64, String> {
    let d = parse(s, flag, days)?;
    if d.subsec_nanos() != 0 {
        return Err(format!("{flag} cannot be expressed in units less than seconds, got \"{}\"", s.trim()));
    }
    Ok(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Result<u64, String> {
        whole_seconds(s, "--duration", false)
    }

    #[test]
    fn durations_like_kubectl() {
        assert_eq!(secs("3600s").unwrap(), 3600);
        assert_eq!(secs("1h").unwrap(), 3600);
        assert_eq!(secs("90m").unwrap(), 5400);
        assert_eq!(secs("1h30m").unwrap(), 5400);
        assert_eq!(secs("1.5h").unwrap(), 5400);
        assert_eq!(secs("2000ms").unwrap(), 2);
        assert!(secs("1500ms").is_err());
        assert!(secs("3600").is_err());
        assert!(secs("0").is_err());
        assert!(secs("-1h").is_err());
        assert!(secs("1d").is_err());
        assert!(secs("").is_err());
    }

    #[test]
    fn days_and_fractions_where_allowed() {
        let long = |s| whole_seconds(s, "--signing-key-max-age", true);
        assert_eq!(long("3600s").unwrap(), 3600);
        assert_eq!(long("24h").unwrap(), 86400);
        assert_eq!(long("90d").unwrap(), 90 * 86400);
        assert_eq!(long("1h30m").unwrap(), 5400);
        assert!(long("1y").is_err());
        assert!(long("h").is_err());
        assert_eq!(parse("500ms", "--cert-reload-interval", true).unwrap(), Duration::from_millis(500));
        assert_eq!(parse("1.5s", "--cert-reload-interval", true).unwrap(), Duration::from_millis(1500));
    }

    #[test]
    fn errors_name_the_flag() {
        let e = whole_seconds("0", "--signing-key-max-age", true).unwrap_err();
        assert_eq!(e, "--signing-key-max-age must be positive");
        let e = parse("10x", "--cert-reload-interval", true).unwrap_err();
        assert!(e.contains("unknown unit \"x\"") && e.ends_with("for --cert-reload-interval"), "{e}");
        assert!(secs("1500ms").unwrap_err().starts_with("--duration cannot be expressed"));
    }
}
