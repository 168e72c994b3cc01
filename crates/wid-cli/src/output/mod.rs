//! az's output, emulated as pure functions over values (no IO, so it is unit-tested against az's own
//! output and fuzzed): [`value`] holds JSON as Python does, [`query`] evaluates `--query`
//! (JMESPath), [`shape`] turns wire resources into az's result shapes, [`yaml`] writes YAML, and
//! this module renders `-o json|jsonc|yaml|yamlc|table|tsv|none` as az does (knack `output.py` 0.14 and the
//! `tabulate` "simple" format it uses):
//!
//! - json: `json.dumps(result, ensure_ascii=False, indent=2, sort_keys=True)` plus a newline;
//!   jsonc: the same coloured like pygments' `TerminalFormatter`, only when stdout is a terminal.
//! - tsv: one row per list item; an object row prints its values (sorted by key, except for an
//!   `OrderedDict` built by `--query`, which keeps its order), nested lists print their length and
//!   nested objects an empty field; python spellings (`None`, `True` inside rows, `true` alone).
//! - table: the command's table transformer (unless `--query` is given), then one column per
//!   scalar key (`id`, `type`, `etag` skipped, first letter capitalised), columns sorted unless a
//!   query or transformer decided them, width `max(len(header) + 2, cells)`, two-space gaps,
//!   trailing blanks stripped.
//! - none: nothing.

pub mod query;
pub mod shape;
pub mod value;
pub mod yaml;

use clap::ValueEnum;

use query::Query;
use value::{DumpOptions, Obj, Val, py_json_dumps, py_str};

/// The `--output/-o` choices of az.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Json,
    Jsonc,
    Yaml,
    Yamlc,
    Table,
    Tsv,
    None,
}

/// How a command shapes its result for `-o table` (az's `table_transformer`).
#[derive(Debug, Clone, Copy)]
pub enum TableTransformer {
    /// A JMESPath expression evaluated with ordered objects.
    Query(&'static str),
    /// A function over the whole result (az's python transformers).
    Func(fn(&Val) -> Option<Val>),
}

/// A table of one row per item of a list result, or `None` (no table) when the result is not a list
/// or `row` gives up on an item — the frame of az's list transformers.
pub fn table_rows(result: &Val, row: impl Fn(&Val) -> Option<Obj>) -> Option<Val> {
    let rows = result.as_list()?.iter().map(|r| row(r).map(Val::Obj)).collect::<Option<Vec<_>>>()?;
    Some(Val::List(rows))
}

/// The message az prints when a table cannot be built.
pub const TABLE_UNAVAILABLE: &str =
    "Table output unavailable. Use the --query option to specify an appropriate query. Use --debug for more info.";

/// Renders a command result.
pub fn render(
    format: OutputFormat,
    result: &Val,
    transformer: Option<&TableTransformer>,
    query_active: bool,
    color: bool,
) -> Result<String, String> {
    Ok(match format {
        OutputFormat::Json => format_json(result),
        OutputFormat::Jsonc if color => colorize_json(&format_json(result)),
        OutputFormat::Jsonc => format_json(result),
        OutputFormat::Yaml => yaml::dump(result),
        OutputFormat::Yamlc if color => yaml::colorize(&yaml::dump(result)),
        OutputFormat::Yamlc => yaml::dump(result),
        OutputFormat::Table => format_table(result, transformer, query_active)?,
        OutputFormat::Tsv => format_tsv(result),
        OutputFormat::None => String::new(),
    })
}

/// knack `format_json`.
pub fn format_json(result: &Val) -> String {
    let mut s = py_json_dumps(
        result,
        &DumpOptions { indent: Some(2), sort_keys: true, ensure_ascii: false, separators: (",", ": ") },
    );
    s.push('\n');
    s
}

const RESET: &str = "\x1b[39;49;00m";
const WHITESPACE: &str = "\x1b[37m";
const KEY: &str = "\x1b[94m";
const STRING: &str = "\x1b[33m";
const NUMBER: &str = "\x1b[34m";

/// pygments `JsonLexer` + `TerminalFormatter` over knack's JSON text: keys bright blue, strings
/// yellow/brown, numbers and constants blue, whitespace runs "gray" one line at a time.
fn colorize_json(json: &str) -> String {
    let chars: Vec<char> = json.chars().collect();
    let mut out = String::with_capacity(json.len() * 2);
    let mut i = 0;
    let paint = |out: &mut String, color: &str, text: &str| {
        for (n, line) in text.split('\n').enumerate() {
            if n > 0 {
                out.push('\n');
            }
            out.push_str(color);
            out.push_str(line);
            out.push_str(RESET);
        }
    };
    while let Some(&c) = chars.get(i) {
        if c.is_whitespace() {
            let start = i;
            while chars.get(i).is_some_and(|c| c.is_whitespace()) {
                i += 1;
            }
            let run: String = chars.get(start..i).unwrap_or_default().iter().collect();
            // TerminalFormatter paints each line of the token; the final empty piece after a
            // trailing newline is not painted.
            let mut pieces: Vec<&str> = run.split('\n').collect();
            let trailing_newline = run.ends_with('\n');
            if trailing_newline {
                pieces.pop();
            }
            for (n, piece) in pieces.iter().enumerate() {
                out.push_str(WHITESPACE);
                out.push_str(piece);
                out.push_str(RESET);
                if n + 1 < pieces.len() || trailing_newline {
                    out.push('\n');
                }
            }
        } else if c == '"' {
            let start = i;
            i += 1;
            while let Some(&d) = chars.get(i) {
                i += 1;
                if d == '\\' {
                    i += 1;
                } else if d == '"' {
                    break;
                }
            }
            let text: String = chars.get(start..i).unwrap_or_default().iter().collect();
            let mut j = i;
            while chars.get(j).is_some_and(|c| c.is_whitespace()) {
                j += 1;
            }
            let color = if chars.get(j) == Some(&':') { KEY } else { STRING };
            paint(&mut out, color, &text);
        } else if c == '-' || c.is_ascii_digit() || c.is_ascii_alphabetic() {
            let start = i;
            while chars.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.')) {
                i += 1;
            }
            let text: String = chars.get(start..i).unwrap_or_default().iter().collect();
            paint(&mut out, NUMBER, &text);
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// knack `_TsvOutput.dump`.
pub fn format_tsv(result: &Val) -> String {
    let rows: Vec<&Val> = match result {
        Val::List(l) => l.iter().collect(),
        other => vec![other],
    };
    let mut out = String::new();
    for row in rows {
        match row {
            Val::Obj(o) => {
                let values: Vec<&Val> = if o.is_ordered() {
                    o.values().collect()
                } else {
                    o.sorted().into_iter().map(|(_, v)| v).collect()
                };
                let cells: Vec<String> = values.into_iter().map(tsv_cell).collect();
                out.push_str(&cells.join("\t"));
            }
            Val::List(l) => {
                let cells: Vec<String> = l.iter().map(tsv_cell).collect();
                out.push_str(&cells.join("\t"));
            }
            Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            other => out.push_str(&tsv_cell(other)),
        }
        out.push('\n');
    }
    out
}

fn tsv_cell(v: &Val) -> String {
    match v {
        Val::List(l) => l.len().to_string(),
        Val::Obj(_) => String::new(),
        other => py_str(other),
    }
}

/// knack `format_table` + `_TableOutput`.
pub fn format_table(
    result: &Val,
    transformer: Option<&TableTransformer>,
    query_active: bool,
) -> Result<String, String> {
    let transformed;
    let data = match transformer {
        Some(t) if !query_active => {
            transformed = match t {
                TableTransformer::Query(expr) => Query::parse(expr).ok().and_then(|q| q.search(result).ok()),
                TableTransformer::Func(f) => f(result),
            }
            .ok_or_else(|| TABLE_UNAVAILABLE.to_owned())?;
            &transformed
        }
        _ => result,
    };
    let items: Vec<&Val> = match data {
        Val::List(l) => l.iter().collect(),
        other => vec![other],
    };
    let sort_keys = !query_active && transformer.is_none();
    let rows: Vec<Obj> = items.into_iter().map(|i| auto_table_item(i, sort_keys)).collect();
    if rows.is_empty() {
        return Ok("\n".into());
    }
    let mut table = tabulate_simple(&rows);
    table.push('\n');
    Ok(table)
}

fn auto_table_item(item: &Val, sort_keys: bool) -> Obj {
    let mut entry = Obj::ordered();
    match item {
        Val::Obj(o) => {
            let pairs: Vec<(&String, &Val)> = if sort_keys { o.sorted() } else { o.iter().collect() };
            for (k, v) in pairs {
                if matches!(k.as_str(), "id" | "type" | "etag") {
                    continue;
                }
                if !matches!(v, Val::Null | Val::List(_) | Val::Obj(_)) {
                    entry.insert(capitalize_first(k), v.clone());
                }
            }
        }
        Val::List(l) => {
            for (n, v) in l.iter().enumerate() {
                entry.insert(format!("Column{}", n + 1), v.clone());
            }
        }
        other => entry.insert("Result", other.clone()),
    }
    entry
}

fn capitalize_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn width(s: &str) -> usize {
    s.split(['\r', '\n']).map(|l| l.chars().count()).max().unwrap_or(0)
}

fn pad_right(s: &str, w: usize) -> String {
    let n = s.chars().count();
    let mut out = s.to_owned();
    out.push_str(&" ".repeat(w.saturating_sub(n)));
    out
}

fn split_lines(s: &str) -> Vec<&str> {
    let mut out: Vec<&str> = s.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    // A bare '\r' also ends a line in python's splitlines().
    out = out.into_iter().flat_map(|l| l.split('\r')).collect();
    if s.ends_with('\n') || s.ends_with('\r') {
        out.pop();
    }
    if s.is_empty() {
        out.clear();
    }
    out
}

/// tabulate(rows, headers="keys", tablefmt="simple", disable_numparse=True).
fn tabulate_simple(rows: &[Obj]) -> String {
    let mut headers: Vec<String> = Vec::new();
    for row in rows {
        for k in row.keys() {
            if !headers.contains(k) {
                headers.push(k.clone());
            }
        }
    }
    if headers.is_empty() {
        return String::new();
    }
    // Cell text: python str() of the value, missing values empty; stripped (PRESERVE_WHITESPACE
    // is off).
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            headers
                .iter()
                .map(|h| match row.get(h) {
                    None | Some(Val::Null) => String::new(),
                    Some(v) => py_str(v).trim().to_owned(),
                })
                .collect()
        })
        .collect();
    let multiline = headers.iter().chain(cells.iter().flatten()).any(|c| c.contains(['\n', '\r']));
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let cell_max = cells.iter().filter_map(|r| r.get(i)).map(|c| width(c)).max().unwrap_or(0);
            cell_max.max(h.chars().count() + 2)
        })
        .collect();

    let join = |parts: Vec<String>| -> String { parts.join("  ").trim_end().to_owned() };
    let mut lines = Vec::new();
    lines.push(join(headers.iter().zip(&widths).map(|(h, w)| pad_right(h, *w)).collect()));
    lines.push(join(widths.iter().map(|w| "-".repeat(*w)).collect()));
    for row in &cells {
        if !multiline {
            lines.push(join(row.iter().zip(&widths).map(|(c, w)| pad_right(c, *w)).collect()));
            continue;
        }
        let split: Vec<Vec<&str>> = row.iter().map(|c| split_lines(c)).collect();
        let height = split.iter().map(Vec::len).max().unwrap_or(0);
        for n in 0..height {
            lines.push(join(
                split
                    .iter()
                    .zip(&widths)
                    .map(|(cell_lines, w)| pad_right(cell_lines.get(n).copied().unwrap_or(""), *w))
                    .collect(),
            ));
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Val {
        Val::parse(s).unwrap()
    }

    // Expected strings below were produced by knack 0.14.0 / tabulate 0.10.0 (az's formatter).

    #[test]
    fn json_sorted_indented_unicode_kept() {
        let data = v(r#"{"b":"é\u0001\u2028","a":[],"c":{},"d":1.0,"e":1e20,"f":1e-5}"#);
        assert_eq!(
            format_json(&data),
            "{\n  \"a\": [],\n  \"b\": \"é\\u0001\u{2028}\",\n  \"c\": {},\n  \"d\": 1.0,\n  \"e\": 1e+20,\n  \"f\": 1e-05\n}\n"
        );
        assert_eq!(format_json(&v(r#""str""#)), "\"str\"\n");
        assert_eq!(
            format_json(&v(r#"[{"x":[1,{"y":null}]}]"#)),
            "[\n  {\n    \"x\": [\n      1,\n      {\n        \"y\": null\n      }\n    ]\n  }\n]\n"
        );
    }

    #[test]
    fn jsonc_matches_pygments() {
        let data = v(r#"{"a":1,"b":"x","c":true,"d":null,"e":[1.5,{}],"f":{"g":"h"}}"#);
        let want = "{\x1b[37m\x1b[39;49;00m\n\x1b[37m  \x1b[39;49;00m\x1b[94m\"a\"\x1b[39;49;00m:\x1b[37m \x1b[39;49;00m\x1b[34m1\x1b[39;49;00m,\x1b[37m\x1b[39;49;00m\n\x1b[37m  \x1b[39;49;00m\x1b[94m\"b\"\x1b[39;49;00m:\x1b[37m \x1b[39;49;00m\x1b[33m\"x\"\x1b[39;49;00m,\x1b[37m\x1b[39;49;00m\n\x1b[37m  \x1b[39;49;00m\x1b[94m\"c\"\x1b[39;49;00m:\x1b[37m \x1b[39;49;00m\x1b[34mtrue\x1b[39;49;00m,\x1b[37m\x1b[39;49;00m\n\x1b[37m  \x1b[39;49;00m\x1b[94m\"d\"\x1b[39;49;00m:\x1b[37m \x1b[39;49;00m\x1b[34mnull\x1b[39;49;00m,\x1b[37m\x1b[39;49;00m\n\x1b[37m  \x1b[39;49;00m\x1b[94m\"e\"\x1b[39;49;00m:\x1b[37m \x1b[39;49;00m[\x1b[37m\x1b[39;49;00m\n\x1b[37m    \x1b[39;49;00m\x1b[34m1.5\x1b[39;49;00m,\x1b[37m\x1b[39;49;00m\n\x1b[37m    \x1b[39;49;00m{}\x1b[37m\x1b[39;49;00m\n\x1b[37m  \x1b[39;49;00m],\x1b[37m\x1b[39;49;00m\n\x1b[37m  \x1b[39;49;00m\x1b[94m\"f\"\x1b[39;49;00m:\x1b[37m \x1b[39;49;00m{\x1b[37m\x1b[39;49;00m\n\x1b[37m    \x1b[39;49;00m\x1b[94m\"g\"\x1b[39;49;00m:\x1b[37m \x1b[39;49;00m\x1b[33m\"h\"\x1b[39;49;00m\x1b[37m\x1b[39;49;00m\n\x1b[37m  \x1b[39;49;00m}\x1b[37m\x1b[39;49;00m\n}\x1b[37m\x1b[39;49;00m\n";
        assert_eq!(render(OutputFormat::Jsonc, &data, None, false, true).unwrap(), want);
        assert_eq!(
            render(OutputFormat::Jsonc, &v("-3"), None, false, true).unwrap(),
            "\x1b[34m-3\x1b[39;49;00m\x1b[37m\x1b[39;49;00m\n"
        );
        assert_eq!(render(OutputFormat::Jsonc, &v("[]"), None, false, false).unwrap(), "[]\n");
    }

    #[test]
    fn tsv_rules() {
        let data = v(r#"{"b":null,"a":true,"c":[1,2],"d":{"x":1},"e":1.5,"f":"s"}"#);
        assert_eq!(format_tsv(&data), "True\tNone\t2\t\t1.5\ts\n");
        assert_eq!(format_tsv(&v(r#"[true,null,false,1,"x"]"#)), "true\nNone\nfalse\n1\nx\n");
        assert_eq!(format_tsv(&v(r#"[[1,[2],{"a":1},null,true]]"#)), "1\t1\t\tNone\tTrue\n");
        assert_eq!(format_tsv(&v("[]")), "");
        assert_eq!(
            format_tsv(&v(r#""6a7e2b4c-0000-0000-0000-000000000000""#)),
            "6a7e2b4c-0000-0000-0000-000000000000\n"
        );
        // An OrderedDict from --query keeps the expression's order.
        let q = Query::parse("{z: b, a: a}").unwrap();
        let r = q.search(&v(r#"{"b":1,"a":2}"#)).unwrap();
        assert_eq!(format_tsv(&r), "1\t2\n");
    }

    #[test]
    fn table_rules() {
        let t = |s: &str, q: bool| format_table(&v(s), None, q).unwrap();
        assert_eq!(t("[]", false), "\n");
        assert_eq!(t(r#"[{"a":[1]}]"#, false), "\n");
        assert_eq!(t(r#"[{"a":[1]},{"b":{}},{"c":[]}]"#, false), "\n");
        assert_eq!(
            t(r#"{"name":"x","id":"i","flag":true,"n":3,"z":null,"multi":"a\nbc"}"#, false),
            "Flag    Multi    N    Name\n------  -------  ---  ------\nTrue    a        3    x\n        bc\n"
        );
        assert_eq!(
            t(r#"[{"b":1,"a":"  pad "},{"c":true}]"#, false),
            "A    B    C\n---  ---  ----\npad  1\n          True\n"
        );
        assert_eq!(
            t(r#"[{"a":true,"b":1.5},{"a":"x","b":false}]"#, false),
            "A     B\n----  -----\nTrue  1.5\nx     False\n"
        );
        assert_eq!(
            t(r#"[[1,[2,"x"],{"k":"v"}],"s"]"#, true),
            "Column1    Column2    Column3     Result\n---------  ---------  ----------  --------\n1          [2, 'x']   {'k': 'v'}\n                                  s\n"
        );
        assert_eq!(t(r#"["a","b"]"#, false), "Result\n--------\na\nb\n");
        assert_eq!(t(r#"[{"c":"x\r\ny\rz","d":" q "}]"#, false), "C    D\n---  ---\nx    q\ny\nz\n");
    }

    #[test]
    fn table_transformer_and_query_order() {
        let groups = v(
            r#"[{"id":"/subscriptions/s/resourceGroups/rg1","location":"eastus","managedBy":null,"name":"rg1","properties":{"provisioningState":"Succeeded"},"tags":null,"type":"Microsoft.Resources/resourceGroups"}]"#,
        );
        let tr = TableTransformer::Query("[].{Name:name, Location:location, Status:properties.provisioningState}");
        assert_eq!(
            format_table(&groups, Some(&tr), false).unwrap(),
            "Name    Location    Status\n------  ----------  ---------\nrg1     eastus      Succeeded\n"
        );
        // With --query active the transformer is skipped and columns keep the query's order.
        let q = Query::parse("[].{z:name, a:location}").unwrap();
        let r = q.search(&groups).unwrap();
        assert_eq!(format_table(&r, Some(&tr), true).unwrap(), "Z    A\n---  ------\nrg1  eastus\n");
    }
}
