//! `-o yaml`: knack's `yaml.safe_dump(result, default_flow_style=False, allow_unicode=True)`.
//!
//! A port of the parts of PyYAML's emitter that JSON-shaped data reaches: block mappings (keys
//! sorted) and sequences (indentless inside mappings), empty collections in flow style, scalar
//! style selection (`analyze_scalar` + the YAML 1.1 implicit resolvers, so `'true'`, `'123'` or
//! `'2024-01-01'` are quoted), folding of long plain and single-quoted scalars at 80 columns, and
//! the `...` end marker after a plain root scalar.

use super::value::{Val, py_float_repr, py_num_str};

const BEST_WIDTH: usize = 80;
const BEST_INDENT: usize = 2;

/// Renders `v` as PyYAML's `safe_dump` does.
pub fn dump(v: &Val) -> String {
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        whitespace: true,
        indention: true,
        indent: None,
        indents: Vec::new(),
        open_ended: false,
    };
    e.node(v, Ctx::Root);
    e.write_indent();
    if e.open_ended {
        e.write_indicator("...", true, false, false);
        e.write_indent();
    }
    e.out
}

/// `-o yamlc` output. Colouring YAML like pygments is not reproduced; the text is plain YAML.
pub fn colorize(yaml: &str) -> String {
    yaml.to_owned()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Root,
    Sequence,
    MappingValue,
    SimpleKey,
}

struct Emitter {
    out: String,
    column: usize,
    whitespace: bool,
    indention: bool,
    indent: Option<usize>,
    indents: Vec<Option<usize>>,
    open_ended: bool,
}

impl Emitter {
    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        self.indent = match self.indent {
            None => Some(if flow { BEST_INDENT } else { 0 }),
            Some(i) if !indentless => Some(i + BEST_INDENT),
            Some(i) => Some(i),
        };
    }

    fn pop_indent(&mut self) {
        self.indent = self.indents.pop().flatten();
    }

    fn write(&mut self, s: &str) {
        self.column += s.chars().count();
        self.out.push_str(s);
    }

    fn write_indicator(&mut self, ind: &str, need_ws: bool, whitespace: bool, indention: bool) {
        if self.whitespace || !need_ws {
            self.write(ind);
        } else {
            self.write(&format!(" {ind}"));
        }
        self.whitespace = whitespace;
        self.indention = self.indention && indention;
    }

    fn write_line_break(&mut self) {
        self.out.push('\n');
        self.whitespace = true;
        self.indention = true;
        self.column = 0;
    }

    fn write_indent(&mut self) {
        let indent = self.indent.unwrap_or(0);
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.write_line_break();
        }
        if self.column < indent {
            self.whitespace = true;
            let pad = " ".repeat(indent - self.column);
            self.write(&pad);
        }
    }

    fn node(&mut self, v: &Val, ctx: Ctx) {
        match v {
            Val::Obj(o) if !o.is_empty() => {
                self.increase_indent(false, false);
                for (k, item) in o.sorted() {
                    self.write_indent();
                    self.scalar_str(k, Ctx::SimpleKey);
                    self.write_indicator(":", false, false, false);
                    self.node(item, Ctx::MappingValue);
                }
                self.pop_indent();
            }
            Val::List(l) if !l.is_empty() => {
                let indentless = ctx == Ctx::MappingValue && !self.indention;
                self.increase_indent(false, indentless);
                for item in l {
                    self.write_indent();
                    self.write_indicator("-", true, false, true);
                    self.node(item, Ctx::Sequence);
                }
                self.pop_indent();
            }
            Val::Obj(_) | Val::List(_) => {
                let (open, close) = if matches!(v, Val::Obj(_)) { ("{", "}") } else { ("[", "]") };
                self.increase_indent(true, false);
                self.write_indicator(open, true, true, false);
                self.pop_indent();
                self.write_indicator(close, false, false, false);
            }
            Val::Str(s) => self.scalar_str(s, ctx),
            Val::Null => self.plain_scalar("null", ctx),
            Val::Bool(b) => self.plain_scalar(if *b { "true" } else { "false" }, ctx),
            Val::Num(n) => {
                let text = if n.is_f64() {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    let r = py_float_repr(f).to_lowercase();
                    if !r.contains('.') && r.contains('e') { r.replacen('e', ".0e", 1) } else { r }
                } else {
                    py_num_str(n)
                };
                self.plain_scalar(&text, ctx);
            }
        }
    }

    /// A scalar whose plain form resolves to its own type (numbers, booleans, null).
    fn plain_scalar(&mut self, text: &str, ctx: Ctx) {
        self.increase_indent(true, false);
        self.write_plain(text, ctx != Ctx::SimpleKey, ctx == Ctx::Root);
        self.pop_indent();
    }

    fn scalar_str(&mut self, s: &str, ctx: Ctx) {
        let a = analyze(s);
        let simple_key = ctx == Ctx::SimpleKey;
        let implicit = resolves_to_str(s);
        self.increase_indent(true, false);
        if implicit && !(simple_key && (a.empty || a.multiline)) && a.allow_block_plain {
            self.write_plain(s, !simple_key, ctx == Ctx::Root);
        } else if a.allow_single_quoted && !(simple_key && a.multiline) {
            self.write_single_quoted(s, !simple_key);
        } else {
            self.write_double_quoted(s);
        }
        self.pop_indent();
    }

    fn write_plain(&mut self, text: &str, split: bool, root: bool) {
        if root {
            self.open_ended = true;
        }
        if text.is_empty() {
            return;
        }
        if !self.whitespace {
            self.write(" ");
        }
        self.whitespace = false;
        self.indention = false;
        let chars: Vec<char> = text.chars().collect();
        let (mut start, mut end) = (0usize, 0usize);
        let mut spaces = false;
        while end <= chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end && self.column > BEST_WIDTH && split {
                        self.write_indent();
                        self.whitespace = false;
                        self.indention = false;
                    } else {
                        let data: String = chars.get(start..end).unwrap_or_default().iter().collect();
                        self.write(&data);
                    }
                    start = end;
                }
            } else if ch.is_none() || ch == Some(' ') {
                let data: String = chars.get(start..end).unwrap_or_default().iter().collect();
                self.write(&data);
                start = end;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
            }
            end += 1;
        }
    }

    fn write_single_quoted(&mut self, text: &str, split: bool) {
        self.write_indicator("'", true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let (mut start, mut end) = (0usize, 0usize);
        let (mut spaces, mut breaks) = (false, false);
        let is_break = |c: char| matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}');
        while end <= chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end && self.column > BEST_WIDTH && split && start != 0 && end != chars.len() {
                        self.write_indent();
                    } else {
                        let data: String = chars.get(start..end).unwrap_or_default().iter().collect();
                        self.write(&data);
                    }
                    start = end;
                }
            } else if breaks {
                if !ch.is_some_and(is_break) {
                    if chars.get(start) == Some(&'\n') {
                        self.write_line_break();
                    }
                    for br in chars.get(start..end).unwrap_or_default().to_vec() {
                        if br == '\n' {
                            self.write_line_break();
                        } else {
                            self.out.push(br);
                            self.whitespace = true;
                            self.indention = true;
                            self.column = 0;
                        }
                    }
                    self.write_indent();
                    start = end;
                }
            } else if (ch.is_none() || ch.is_some_and(|c| c == ' ' || is_break(c) || c == '\'')) && start < end {
                let data: String = chars.get(start..end).unwrap_or_default().iter().collect();
                self.write(&data);
                start = end;
            }
            if ch == Some('\'') {
                self.write("''");
                start = end + 1;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
                breaks = is_break(c);
            }
            end += 1;
        }
        self.write_indicator("'", false, false, false);
    }

    fn write_double_quoted(&mut self, text: &str) {
        self.write_indicator("\"", true, false, false);
        let mut data = String::new();
        for c in text.chars() {
            let esc = match c {
                '\0' => Some("0".to_owned()),
                '\u{07}' => Some("a".into()),
                '\u{08}' => Some("b".into()),
                '\t' => Some("t".into()),
                '\n' => Some("n".into()),
                '\u{0b}' => Some("v".into()),
                '\u{0c}' => Some("f".into()),
                '\r' => Some("r".into()),
                '\u{1b}' => Some("e".into()),
                '"' => Some("\"".into()),
                '\\' => Some("\\".into()),
                '\u{85}' => Some("N".into()),
                '\u{a0}' => Some("_".into()),
                '\u{2028}' => Some("L".into()),
                '\u{2029}' => Some("P".into()),
                c if printable(c) => None,
                c if (c as u32) <= 0xff => Some(format!("x{:02X}", c as u32)),
                c if (c as u32) <= 0xffff => Some(format!("u{:04X}", c as u32)),
                c => Some(format!("U{:08X}", c as u32)),
            };
            match esc {
                Some(e) => {
                    data.push('\\');
                    data.push_str(&e);
                }
                None => data.push(c),
            }
        }
        self.write(&data);
        self.write_indicator("\"", false, false, false);
    }
}

fn printable(c: char) -> bool {
    let u = c as u32;
    (0x20..=0x7e).contains(&u)
        || u == 0x85
        || (0xa0..=0xd7ff).contains(&u)
        || (0xe000..=0xfffd).contains(&u)
        || (0x10000..0x10ffff).contains(&u)
}

struct Analysis {
    empty: bool,
    multiline: bool,
    allow_block_plain: bool,
    allow_single_quoted: bool,
}

/// PyYAML `Emitter.analyze_scalar` (the block-context parts).
fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis { empty: true, multiline: false, allow_block_plain: true, allow_single_quoted: true };
    }
    let chars: Vec<char> = s.chars().collect();
    let ws = |c: Option<&char>| {
        c.is_none_or(|c| matches!(c, '\0' | ' ' | '\t' | '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}'))
    };
    let is_break = |c: char| matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}');
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) = (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let mut preceded_by_ws = true;
    let mut followed_by_ws = chars.len() == 1 || ws(chars.get(1));
    let (mut prev_space, mut prev_break) = (false, false);
    let last = chars.len() - 1;
    for (i, &ch) in chars.iter().enumerate() {
        if i == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(ch) {
                block_indicators = true;
            }
            if (ch == '?' || ch == ':') && followed_by_ws {
                block_indicators = true;
            }
            if ch == '-' && followed_by_ws {
                block_indicators = true;
            }
        } else {
            if ch == ':' && followed_by_ws {
                block_indicators = true;
            }
            if ch == '#' && preceded_by_ws {
                block_indicators = true;
            }
        }
        if is_break(ch) {
            line_breaks = true;
        }
        if !(ch == '\n' || (' '..='~').contains(&ch)) {
            let unicode = (ch == '\u{85}'
                || ('\u{a0}'..='\u{d7ff}').contains(&ch)
                || ('\u{e000}'..='\u{fffd}').contains(&ch)
                || ('\u{10000}'..'\u{10ffff}').contains(&ch))
                && ch != '\u{feff}';
            if !unicode {
                special = true;
            }
        }
        if ch == ' ' {
            leading_space |= i == 0;
            trailing_space |= i == last;
            break_space |= prev_break;
            prev_space = true;
            prev_break = false;
        } else if is_break(ch) {
            leading_break |= i == 0;
            trailing_break |= i == last;
            space_break |= prev_space;
            prev_space = false;
            prev_break = true;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_by_ws = ws(Some(&ch));
        followed_by_ws = i + 2 >= chars.len() || ws(chars.get(i + 2));
    }
    let mut allow_block_plain = true;
    let mut allow_single_quoted = true;
    if leading_space || leading_break || trailing_space || trailing_break {
        allow_block_plain = false;
    }
    if break_space {
        allow_block_plain = false;
        allow_single_quoted = false;
    }
    if space_break || special {
        allow_block_plain = false;
        allow_single_quoted = false;
    }
    if line_breaks || block_indicators {
        allow_block_plain = false;
    }
    Analysis { empty: false, multiline: line_breaks, allow_block_plain, allow_single_quoted }
}

/// Whether a plain scalar `s` would be read back as a string by PyYAML's YAML 1.1 resolver.
fn resolves_to_str(s: &str) -> bool {
    !(is_null(s) || is_bool(s) || is_int(s) || is_float(s) || is_timestamp(s) || s == "<<" || s == "=")
}

fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

fn is_bool(s: &str) -> bool {
    matches!(
        s,
        "yes"
            | "Yes"
            | "YES"
            | "no"
            | "No"
            | "NO"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    )
}

fn strip_sign(s: &str) -> &str {
    s.strip_prefix(['-', '+']).unwrap_or(s)
}

fn all(s: &str, f: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.chars().all(f)
}

/// `[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+` (sexagesimal) minus the sign handling done by callers.
fn is_sexagesimal_tail(parts: &[&str]) -> bool {
    !parts.is_empty()
        && parts.iter().all(|p| {
            let b = p.as_bytes();
            match b.len() {
                1 => b.first().is_some_and(u8::is_ascii_digit),
                2 => b.first().is_some_and(|c| (b'0'..=b'5').contains(c)) && b.get(1).is_some_and(u8::is_ascii_digit),
                _ => false,
            }
        })
}

fn is_int(s: &str) -> bool {
    let t = strip_sign(s);
    if let Some(b) = t.strip_prefix("0b") {
        return all(b, |c| matches!(c, '0' | '1' | '_'));
    }
    if let Some(x) = t.strip_prefix("0x") {
        return all(x, |c| c.is_ascii_hexdigit() || c == '_');
    }
    if t == "0" {
        return true;
    }
    if let Some(o) = t.strip_prefix('0') {
        return all(o, |c| matches!(c, '0'..='7' | '_'));
    }
    let mut parts = t.split(':');
    let head = parts.next().unwrap_or("");
    let head_ok = head.starts_with(|c: char| ('1'..='9').contains(&c)) && all(head, |c| c.is_ascii_digit() || c == '_');
    let rest: Vec<&str> = parts.collect();
    head_ok && (rest.is_empty() || is_sexagesimal_tail(&rest))
}

fn is_float(s: &str) -> bool {
    let t = strip_sign(s);
    if matches!(t, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    if matches!(s, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let exp_ok = |e: &str| -> bool {
        e.is_empty()
            || e.strip_prefix(['e', 'E'])
                .and_then(|x| x.strip_prefix(['-', '+']))
                .is_some_and(|d| all(d, |c| c.is_ascii_digit()))
    };
    // [0-9][0-9_]*\.[0-9_]*(exp)?
    if let Some((int, rest)) = t.split_once('.') {
        let frac_end = rest.find(['e', 'E']).unwrap_or(rest.len());
        let (frac, exp) = rest.split_at(frac_end);
        let frac_ok = frac.chars().all(|c| c.is_ascii_digit() || c == '_');
        if !int.is_empty()
            && int.starts_with(|c: char| c.is_ascii_digit())
            && int.chars().all(|c| c.is_ascii_digit() || c == '_')
            && frac_ok
            && exp_ok(exp)
        {
            return true;
        }
        // \.[0-9][0-9_]*(exp)?  (no sign allowed)
        if int.is_empty() && s == t && frac.starts_with(|c: char| c.is_ascii_digit()) && frac_ok && exp_ok(exp) {
            return true;
        }
        // [0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*
        let mut parts = int.split(':');
        let head = parts.next().unwrap_or("");
        let rest_parts: Vec<&str> = parts.collect();
        if !rest_parts.is_empty()
            && head.starts_with(|c: char| c.is_ascii_digit())
            && head.chars().all(|c| c.is_ascii_digit() || c == '_')
            && is_sexagesimal_tail(&rest_parts)
            && exp.is_empty()
            && frac_ok
        {
            return true;
        }
    }
    false
}

fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    // YYYY-MM-DD
    if b.len() == 10
        && (0..4).all(d)
        && b.get(4) == Some(&b'-')
        && d(5)
        && d(6)
        && b.get(7) == Some(&b'-')
        && d(8)
        && d(9)
    {
        return true;
    }
    // YYYY-M[M]-D[D](T|t|[ \t]+)H[H]:MM:SS(.frac)?([ \t]*(Z|[-+]H[H](:MM)?))?
    let mut i = 0;
    let digits = |i: &mut usize, min: usize, max: usize| -> bool {
        let start = *i;
        while *i < b.len() && *i - start < max && b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start >= min
    };
    let lit = |i: &mut usize, c: u8| -> bool {
        if b.get(*i) == Some(&c) {
            *i += 1;
            true
        } else {
            false
        }
    };
    if !(digits(&mut i, 4, 4) && lit(&mut i, b'-') && digits(&mut i, 1, 2) && lit(&mut i, b'-') && digits(&mut i, 1, 2))
    {
        return false;
    }
    if !(lit(&mut i, b'T') || lit(&mut i, b't')) {
        let start = i;
        while matches!(b.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    if !(digits(&mut i, 1, 2) && lit(&mut i, b':') && digits(&mut i, 2, 2) && lit(&mut i, b':') && digits(&mut i, 2, 2))
    {
        return false;
    }
    if lit(&mut i, b'.') {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    if i == b.len() {
        return true;
    }
    if lit(&mut i, b'Z') {
        return i == b.len();
    }
    if lit(&mut i, b'-') || lit(&mut i, b'+') {
        if !digits(&mut i, 1, 2) {
            return false;
        }
        if lit(&mut i, b':') && !digits(&mut i, 2, 2) {
            return false;
        }
        return i == b.len();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(json: &str) -> String {
        dump(&Val::parse(json).unwrap())
    }

    // Expected strings were produced by PyYAML 6.0.3 `safe_dump(default_flow_style=False,
    // allow_unicode=True)`, knack's yaml formatter.
    #[test]
    fn matches_pyyaml() {
        assert_eq!(y(r#""abc""#), "abc\n...\n");
        assert_eq!(y("null"), "null\n...\n");
        assert_eq!(y(r#""true""#), "'true'\n");
        assert_eq!(y("[]"), "[]\n");
        assert_eq!(y("{}"), "{}\n");
        assert_eq!(
            y(r#"{"b":[1,"2",{"c":null,"a":[]}],"a":{"x":"y: z","e":{}},"t":true,"f":1.5,"g":1e20}"#),
            "a:\n  e: {}\n  x: 'y: z'\nb:\n- 1\n- '2'\n- a: []\n  c: null\nf: 1.5\ng: 1.0e+20\nt: true\n"
        );
        assert_eq!(
            y(
                r##"[["a","b"],"2024-01-01","2024-01-01T00:00:00Z","é","it's","a\nb"," x","-","- x","#x","a #b","yes","0x1F","1_000",".5","1.","0o7"]"##
            ),
            "- - a\n  - b\n- '2024-01-01'\n- '2024-01-01T00:00:00Z'\n- é\n- it's\n- 'a\n\n  b'\n- ' x'\n- '-'\n- '- x'\n- '#x'\n- 'a #b'\n- 'yes'\n- '0x1F'\n- '1_000'\n- '.5'\n- '1.'\n- 0o7\n"
        );
        assert_eq!(
            y(
                r#"{"d":"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua."}"#
            ),
            "d: Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor\n  incididunt ut labore et dolore magna aliqua.\n"
        );
        assert_eq!(y(r#"{"k":"tab\there"}"#), "k: \"tab\\there\"\n");
    }
}
