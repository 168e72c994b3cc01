//! JSON values as az (Python) holds them: objects keep insertion order, and remember whether they
//! are a plain `dict` or an `OrderedDict` (what a JMESPath multiselect hash builds), because knack's
//! TSV and table writers order columns differently for the two.

use std::fmt;

use indexmap::IndexMap;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

/// A JSON value with Python/knack semantics.
#[derive(Debug, Clone, Default)]
pub enum Val {
    #[default]
    Null,
    Bool(bool),
    Num(Number),
    Str(String),
    List(Vec<Val>),
    Obj(Obj),
}

/// An insertion-ordered JSON object (members keep their first position, as in a Python dict).
#[derive(Debug, Clone, Default)]
pub struct Obj {
    entries: IndexMap<String, Val>,
    /// `true` for Python's `OrderedDict` (TSV keeps insertion order), `false` for `dict` (TSV sorts).
    ordered: bool,
}

impl Obj {
    /// An empty plain `dict`.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty `OrderedDict`.
    pub fn ordered() -> Self {
        Obj { entries: IndexMap::new(), ordered: true }
    }

    /// Whether this is an `OrderedDict`.
    pub fn is_ordered(&self) -> bool {
        self.ordered
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Val> {
        self.entries.get(key)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Val> {
        self.entries.get_mut(key)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key`; an existing key keeps its position (as a Python dict does).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Val>) {
        self.entries.insert(key.into(), value.into());
    }

    /// Builder form of [`Obj::insert`].
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Val>) -> Self {
        self.insert(key, value);
        self
    }

    pub fn remove(&mut self, key: &str) -> Option<Val> {
        self.entries.shift_remove(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Val)> {
        self.entries.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut Val)> {
        self.entries.iter_mut()
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }

    pub fn values(&self) -> impl Iterator<Item = &Val> {
        self.entries.values()
    }

    /// Entries sorted by key (code-point order, as Python's `sorted`).
    pub fn sorted(&self) -> Vec<(&String, &Val)> {
        let mut v: Vec<_> = self.iter().collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }
}

impl IntoIterator for Obj {
    type Item = (String, Val);
    type IntoIter = indexmap::map::IntoIter<String, Val>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl FromIterator<(String, Val)> for Obj {
    fn from_iter<T: IntoIterator<Item = (String, Val)>>(iter: T) -> Self {
        let mut o = Obj::new();
        for (k, v) in iter {
            o.insert(k, v);
        }
        o
    }
}

impl Val {
    /// Parses JSON text, keeping the order of object members.
    pub fn parse(text: &str) -> Result<Val, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn str(s: impl Into<String>) -> Val {
        Val::Str(s.into())
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_obj(&self) -> Option<&Obj> {
        match self {
            Val::Obj(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_obj_mut(&mut self) -> Option<&mut Obj> {
        match self {
            Val::Obj(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&Vec<Val>> {
        match self {
            Val::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Val::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Member `key` of an object; `None` for anything else.
    pub fn get(&self, key: &str) -> Option<&Val> {
        self.as_obj()?.get(key)
    }

    /// Follows a path of object members.
    pub fn path(&self, keys: &[&str]) -> Option<&Val> {
        keys.iter().try_fold(self, |v, k| v.get(k))
    }

    /// String member `key`, if present and a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    /// JMESPath/Python truthiness: `false`, `null`, `""`, `[]` and `{}` are false (0 is true).
    pub fn is_truthy(&self) -> bool {
        match self {
            Val::Null => false,
            Val::Bool(b) => *b,
            Val::Num(_) => true,
            Val::Str(s) => !s.is_empty(),
            Val::List(l) => !l.is_empty(),
            Val::Obj(o) => !o.is_empty(),
        }
    }

    /// Converts to a `serde_json::Value` (for request bodies).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Val::Null => serde_json::Value::Null,
            Val::Bool(b) => serde_json::Value::Bool(*b),
            Val::Num(n) => serde_json::Value::Number(n.clone()),
            Val::Str(s) => serde_json::Value::String(s.clone()),
            Val::List(l) => serde_json::Value::Array(l.iter().map(Val::to_json).collect()),
            Val::Obj(o) => serde_json::Value::Object(o.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }

    /// Python's `type(x).__name__` for the value.
    pub fn py_type_name(&self) -> &'static str {
        match self {
            Val::Null => "NoneType",
            Val::Bool(_) => "bool",
            Val::Num(n) if n.is_f64() => "float",
            Val::Num(_) => "int",
            Val::Str(_) => "str",
            Val::List(_) => "list",
            Val::Obj(o) if o.is_ordered() => "OrderedDict",
            Val::Obj(_) => "dict",
        }
    }
}

impl From<serde_json::Value> for Val {
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Val::Null,
            serde_json::Value::Bool(b) => Val::Bool(b),
            serde_json::Value::Number(n) => Val::Num(n),
            serde_json::Value::String(s) => Val::Str(s),
            serde_json::Value::Array(a) => Val::List(a.into_iter().map(Val::from).collect()),
            serde_json::Value::Object(o) => Val::Obj(o.into_iter().map(|(k, v)| (k, Val::from(v))).collect()),
        }
    }
}

impl From<Obj> for Val {
    fn from(o: Obj) -> Self {
        Val::Obj(o)
    }
}

impl From<Vec<Val>> for Val {
    fn from(l: Vec<Val>) -> Self {
        Val::List(l)
    }
}

impl From<&str> for Val {
    fn from(s: &str) -> Self {
        Val::Str(s.to_owned())
    }
}

impl From<String> for Val {
    fn from(s: String) -> Self {
        Val::Str(s)
    }
}

impl From<&String> for Val {
    fn from(s: &String) -> Self {
        Val::Str(s.clone())
    }
}

impl From<bool> for Val {
    fn from(b: bool) -> Self {
        Val::Bool(b)
    }
}

impl From<i64> for Val {
    fn from(n: i64) -> Self {
        Val::Num(n.into())
    }
}

impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(o: Option<T>) -> Self {
        o.map_or(Val::Null, Into::into)
    }
}

impl<'de> Deserialize<'de> for Val {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValVisitor)
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Val, E> {
        Ok(Val::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Val, E> {
        Ok(Val::Num(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Val, E> {
        Ok(Val::Num(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Val, E> {
        Ok(Number::from_f64(v).map_or(Val::Null, Val::Num))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Val, E> {
        Ok(Val::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Val, E> {
        Ok(Val::Str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Val, D::Error> {
        Val::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Val>()? {
            out.push(v);
        }
        Ok(Val::List(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        let mut out = Obj::new();
        while let Some((k, v)) = map.next_entry::<String, Val>()? {
            out.insert(k, v);
        }
        Ok(Val::Obj(out))
    }
}

/// Python's `float.__repr__` (shortest round-trip digits; exponent form outside 1e-4..1e16).
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    // `{:e}` prints the shortest digits that round-trip, e.g. "1.2345e-5".
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let frac = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.unsigned_abs());
    }
    let point = exp + 1; // digits before the decimal point
    if point <= 0 {
        let zeros = "0".repeat(point.unsigned_abs() as usize);
        format!("{sign}0.{zeros}{digits}")
    } else {
        let point = point as usize;
        if digits.len() <= point {
            let zeros = "0".repeat(point - digits.len());
            format!("{sign}{digits}{zeros}.0")
        } else {
            let (int, frac) = digits.split_at(point);
            format!("{sign}{int}.{frac}")
        }
    }
}

/// Python's `str()` of a JSON number.
pub fn py_num_str(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        py_float_repr(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Python's `repr()` of a value (used where knack/tabulate stringify lists and dicts).
pub fn py_repr(v: &Val) -> String {
    match v {
        Val::Null => "None".into(),
        Val::Bool(true) => "True".into(),
        Val::Bool(false) => "False".into(),
        Val::Num(n) => py_num_str(n),
        Val::Str(s) => py_str_repr(s),
        Val::List(l) => {
            let items: Vec<String> = l.iter().map(py_repr).collect();
            format!("[{}]", items.join(", "))
        }
        Val::Obj(o) if o.is_ordered() => {
            let items: Vec<String> = o.iter().map(|(k, v)| format!("({}, {})", py_str_repr(k), py_repr(v))).collect();
            format!("OrderedDict([{}])", items.join(", "))
        }
        Val::Obj(o) => {
            let items: Vec<String> = o.iter().map(|(k, v)| format!("{}: {}", py_str_repr(k), py_repr(v))).collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// Python's `str()` (strings unquoted, everything else as `repr`).
pub fn py_str(v: &Val) -> String {
    match v {
        Val::Str(s) => s.clone(),
        other => py_repr(other),
    }
}

fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Options of Python's `json.dumps` that knack and jmespath use.
#[derive(Debug, Clone, Copy)]
pub struct DumpOptions {
    pub indent: Option<usize>,
    pub sort_keys: bool,
    pub ensure_ascii: bool,
    /// Item and key separators, e.g. `(",", ": ")`.
    pub separators: (&'static str, &'static str),
}

/// Python's `json.dumps(value, **opts)`.
pub fn py_json_dumps(v: &Val, opts: &DumpOptions) -> String {
    let mut out = String::new();
    dump_into(&mut out, v, opts, 0);
    out
}

fn dump_into(out: &mut String, v: &Val, opts: &DumpOptions, level: usize) {
    match v {
        Val::Null => out.push_str("null"),
        Val::Bool(true) => out.push_str("true"),
        Val::Bool(false) => out.push_str("false"),
        Val::Num(n) => {
            if n.is_f64() {
                let f = n.as_f64().unwrap_or(f64::NAN);
                // json.dumps uses float.__repr__ except for the non-finite values.
                if f.is_nan() {
                    out.push_str("NaN");
                } else if f.is_infinite() {
                    out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
                } else {
                    out.push_str(&py_float_repr(f));
                }
            } else {
                out.push_str(&py_num_str(n));
            }
        }
        Val::Str(s) => dump_str(out, s, opts.ensure_ascii),
        Val::List(l) => {
            if l.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in l.iter().enumerate() {
                if i > 0 {
                    out.push_str(opts.separators.0);
                }
                newline_indent(out, opts, level + 1);
                dump_into(out, item, opts, level + 1);
            }
            newline_indent(out, opts, level);
            out.push(']');
        }
        Val::Obj(o) => {
            if o.is_empty() {
                out.push_str("{}");
                return;
            }
            let entries: Vec<(&String, &Val)> = if opts.sort_keys { o.sorted() } else { o.iter().collect() };
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(opts.separators.0);
                }
                newline_indent(out, opts, level + 1);
                dump_str(out, k, opts.ensure_ascii);
                out.push_str(opts.separators.1);
                dump_into(out, item, opts, level + 1);
            }
            newline_indent(out, opts, level);
            out.push('}');
        }
    }
}

fn newline_indent(out: &mut String, opts: &DumpOptions, level: usize) {
    if let Some(n) = opts.indent {
        out.push('\n');
        out.push_str(&" ".repeat(n * level));
    }
}

fn dump_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if ensure_ascii && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_member_order_and_duplicate_position() {
        let v = Val::parse(r#"{"b":1,"a":{"z":1,"y":2},"b":3}"#).unwrap();
        let o = v.as_obj().unwrap();
        assert_eq!(o.keys().cloned().collect::<Vec<_>>(), vec!["b", "a"]);
        assert_eq!(py_str(o.get("b").unwrap()), "3");
        let inner = o.get("a").unwrap().as_obj().unwrap();
        assert_eq!(inner.keys().cloned().collect::<Vec<_>>(), vec!["z", "y"]);
    }

    #[test]
    fn float_repr_matches_python() {
        for (f, want) in [
            (1.0, "1.0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1.5e-7, "1.5e-07"),
            (-2.5, "-2.5"),
            (123456.789, "123456.789"),
            (1e20, "1e+20"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-0.0, "-0.0"),
        ] {
            assert_eq!(py_float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn repr_matches_python() {
        let v = Val::parse(r#"["a", "it's", 1, 2.0, true, null, {"k": [1]}]"#).unwrap();
        assert_eq!(py_repr(&v), r#"['a', "it's", 1, 2.0, True, None, {'k': [1]}]"#);
        let o = Val::Obj(Obj::ordered().with("a", 1i64));
        assert_eq!(py_repr(&o), "OrderedDict([('a', 1)])");
    }

    #[test]
    fn dumps_compact_ascii_like_python() {
        let v = Val::parse(r#"{"b":"é\u0001","a":[1,{"x":null}]}"#).unwrap();
        let opts = DumpOptions { indent: None, sort_keys: false, ensure_ascii: true, separators: (",", ":") };
        assert_eq!(py_json_dumps(&v, &opts), r#"{"b":"\u00e9\u0001","a":[1,{"x":null}]}"#);
        let emoji = Val::str("😀");
        assert_eq!(py_json_dumps(&emoji, &opts), r#""\ud83d\ude00""#);
    }
}
