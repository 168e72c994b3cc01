//! The small OData `$filter` subset ARM list calls use: terms joined by `and`, each either
//! `field eq 'value'` or a call `name()` / `name('value')`. String literals use `''` for a quote.

/// Splits a filter on ` and ` (any case) outside string literals; terms are trimmed.
pub fn split_and(filter: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let bytes = filter.as_bytes();
    let mut start = 0;
    let mut in_str = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\'' {
            in_str = !in_str;
        } else if !in_str && b == b' ' && bytes.get(i..i + 5).is_some_and(|w| w.eq_ignore_ascii_case(b" and ")) {
            terms.push(filter.get(start..i).unwrap_or("").trim());
            i += 5;
            start = i;
            continue;
        }
        i += 1;
    }
    terms.push(filter.get(start..).unwrap_or("").trim());
    terms
}

/// A quoted literal `'…'` (with `''` for a quote) and nothing else.
fn literal(s: &str) -> Option<String> {
    let inner = s.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            // Inside the literal a quote must be doubled.
            if chars.next() != Some('\'') {
                return None;
            }
        }
        out.push(c);
    }
    Some(out)
}

/// `field eq 'value'` → (field, value).
pub fn eq_term(term: &str) -> Option<(&str, String)> {
    let mut parts = term.splitn(3, ' ');
    let field = parts.next()?.trim();
    let op = parts.next()?.trim();
    let value = parts.next()?;
    if !op.eq_ignore_ascii_case("eq") || field.is_empty() {
        return None;
    }
    Some((field, literal(value)?))
}

/// `name()` → (name, None); `name('value')` → (name, Some(value)).
pub fn call_term(term: &str) -> Option<(&str, Option<String>)> {
    let open = term.find('(')?;
    let name = term.get(..open)?.trim();
    let args = term.get(open + 1..)?.strip_suffix(')')?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    if args.trim().is_empty() { Some((name, None)) } else { Some((name, Some(literal(args)?))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms() {
        assert_eq!(split_and("atScope() and assignedTo('x')"), vec!["atScope()", "assignedTo('x')"]);
        assert_eq!(
            split_and("roleName eq 'a and b' AND type eq 'BuiltInRole'"),
            vec!["roleName eq 'a and b'", "type eq 'BuiltInRole'"]
        );
        assert_eq!(
            eq_term("roleName eq 'Key Vault Secrets User'"),
            Some(("roleName", "Key Vault Secrets User".into()))
        );
        assert_eq!(eq_term("roleName eq 'O''Brien'"), Some(("roleName", "O'Brien".into())));
        assert_eq!(eq_term("roleName eq 'unterminated"), None);
        assert_eq!(eq_term("roleName ne 'x'"), None);
        assert_eq!(eq_term("roleName eq 'a'b'"), None);
        assert_eq!(call_term("atScope()"), Some(("atScope", None)));
        assert_eq!(call_term("assignedTo('abc')"), Some(("assignedTo", Some("abc".into()))));
        assert_eq!(call_term("assignedTo(abc)"), None);
        assert_eq!(call_term("x y()"), None);
    }

    #[test]
    fn odd_input_never_panics() {
        for f in
            ["", " and ", "'", "''", "a eq ''''", "é and ü eq 'ö'", "(", ")", "x(')", "and and and", "a eq 'b' and"]
        {
            for t in split_and(f) {
                let _ = eq_term(t);
                let _ = call_term(t);
            }
        }
    }
}
