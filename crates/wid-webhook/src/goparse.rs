//! Go's `strconv.ParseInt(s, 10, bits)` and `strconv.Quote`, so that denials carry upstream's exact
//! texts (`strconv.ParseInt: parsing "invalid": invalid syntax`).

use std::fmt::Write;

/// `strconv.ParseInt(s, 10, bits)`; the error is Go's `*NumError` text.
pub fn parse_int(s: &str, bits: u32) -> Result<i64, String> {
    let syntax = || format!("strconv.ParseInt: parsing {}: invalid syntax", quote(s));
    let range = || format!("strconv.ParseInt: parsing {}: value out of range", quote(s));
    if s.is_empty() || bits == 0 || bits > 64 {
        return Err(syntax());
    }
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'+') => (false, s.get(1..).unwrap_or_default()),
        Some(b'-') => (true, s.get(1..).unwrap_or_default()),
        _ => (false, s),
    };
    if digits.is_empty() {
        return Err(syntax());
    }
    // ParseUint: the first bad digit is a syntax error, the first overflow a range error.
    let max_unsigned: u128 = (1u128 << bits) - 1;
    let mut n: u128 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return Err(syntax());
        }
        n = n * 10 + u128::from(b - b'0');
        if n > max_unsigned {
            return Err(range());
        }
    }
    let cutoff: u128 = 1u128 << (bits - 1);
    if !negative && n >= cutoff {
        return Err(range());
    }
    if negative && n > cutoff {
        return Err(range());
    }
    let magnitude = i128::try_from(n).map_err(|_| range())?;
    let v = if negative { -magnitude } else { magnitude };
    i64::try_from(v).map_err(|_| range())
}

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space. (The
/// tables are Unicode 18's; Go's may be older, which matters only for characters assigned since.)
fn is_print(c: char) -> bool {
    use unicode_properties::{GeneralCategoryGroup as G, UnicodeGeneralCategory};
    c == ' ' || matches!(c.general_category_group(), G::Letter | G::Mark | G::Number | G::Punctuation | G::Symbol)
}

/// `strconv.Quote`: a double-quoted Go string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            ' ' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if !is_print(c) => {
                if (c as u32) <= 0xffff {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_int_matches_go() {
        assert_eq!(parse_int("3600", 64), Ok(3600));
        assert_eq!(parse_int("+3600", 64), Ok(3600));
        assert_eq!(parse_int("-5", 64), Ok(-5));
        assert_eq!(parse_int("007200", 64), Ok(7200));
        assert_eq!(parse_int("9223372036854775807", 64), Ok(i64::MAX));
        assert_eq!(parse_int("-9223372036854775808", 64), Ok(i64::MIN));
        assert_eq!(parse_int("invalid", 64).unwrap_err(), r#"strconv.ParseInt: parsing "invalid": invalid syntax"#);
        assert_eq!(parse_int("1h", 64).unwrap_err(), r#"strconv.ParseInt: parsing "1h": invalid syntax"#);
        assert_eq!(parse_int("1_000", 64).unwrap_err(), r#"strconv.ParseInt: parsing "1_000": invalid syntax"#);
        assert_eq!(parse_int(" 1", 64).unwrap_err(), r#"strconv.ParseInt: parsing " 1": invalid syntax"#);
        assert_eq!(parse_int("-", 64).unwrap_err(), r#"strconv.ParseInt: parsing "-": invalid syntax"#);
        assert_eq!(
            parse_int("9223372036854775808", 64).unwrap_err(),
            r#"strconv.ParseInt: parsing "9223372036854775808": value out of range"#
        );
        // Go reports the overflow it meets first, before a later bad digit.
        assert!(parse_int("99999999999999999999x", 64).unwrap_err().ends_with("value out of range"));
        assert_eq!(parse_int("2147483647", 32), Ok(2147483647));
        assert!(parse_int("2147483648", 32).unwrap_err().ends_with("value out of range"));
        assert_eq!(parse_int("-2147483648", 32), Ok(-2147483648));
    }

    #[test]
    fn quote_matches_go() {
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("x\ny\u{0}"), r#""x\ny\x00""#);
        assert_eq!(quote("héllo"), "\"héllo\"");
        assert_eq!(quote("\u{2028}"), r#""\u2028""#);
        // Found by the upstream oracle: format characters and private use are not printable in Go.
        assert_eq!(quote("36\u{ad}00"), r#""36\u00ad00""#);
        assert_eq!(quote("\u{200b}3600\u{e000}\u{a0}"), r#""\u200b3600\ue000\u00a0""#);
        assert_eq!(quote("\u{10ffff}"), r#""\U0010ffff""#);
        assert_eq!(quote("日本\u{301}"), "\"日本\u{301}\"");
    }
}
