//! `--query`: JMESPath evaluated the way az does it (python `jmespath` with
//! `Options(dict_cls=OrderedDict)`, see knack `query.py`).
//!
//! The `jmespath` crate parses; this module interprets, because the crate's values are sorted maps
//! and az keeps the order of a multiselect hash (`{name:name, id:id}`), which decides the column
//! order of `-o tsv` and `-o table`. Semantics follow python-jmespath's `TreeInterpreter` and
//! `Functions` (ordering comparisons on numbers and strings, `0` is truthy, type errors with
//! python's messages).

use std::cmp::Ordering;

use jmespath::ast::{Ast, Comparator};

use super::value::{DumpOptions, Obj, Val, py_json_dumps, py_repr};

/// A compiled `--query` expression.
#[derive(Debug, Clone)]
pub struct Query {
    ast: Ast,
}

/// A JMESPath evaluation error; the message is python-jmespath's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Res<T> = Result<T, QueryError>;

impl Query {
    /// Compiles `text`; the error is the parser's message.
    pub fn parse(text: &str) -> Result<Query, String> {
        if text.is_empty() {
            return Err("Invalid JMESPath expression: cannot be empty.".into());
        }
        jmespath::parse(text).map(|ast| Query { ast }).map_err(|e| e.to_string())
    }

    /// Evaluates the expression against `data`.
    pub fn search(&self, data: &Val) -> Res<Val> {
        eval(&self.ast, data)
    }
}

/// Evaluates an AST node (python `TreeInterpreter.visit`).
fn eval(node: &Ast, value: &Val) -> Res<Val> {
    Ok(match node {
        Ast::Field { name, .. } => match value {
            Val::Obj(o) => o.get(name).cloned().unwrap_or(Val::Null),
            _ => Val::Null,
        },
        Ast::Subexpr { lhs, rhs, .. } => {
            let left = eval(lhs, value)?;
            eval(rhs, &left)?
        }
        Ast::Identity { .. } => value.clone(),
        Ast::Literal { value: lit, .. } => Val::from(serde_json::to_value(&**lit).unwrap_or(serde_json::Value::Null)),
        Ast::Index { idx, .. } => match value {
            Val::List(l) => py_index(l, i64::from(*idx)).cloned().unwrap_or(Val::Null),
            _ => Val::Null,
        },
        Ast::Or { lhs, rhs, .. } => {
            let left = eval(lhs, value)?;
            if left.is_truthy() { left } else { eval(rhs, value)? }
        }
        Ast::And { lhs, rhs, .. } => {
            let left = eval(lhs, value)?;
            if !left.is_truthy() { left } else { eval(rhs, value)? }
        }
        Ast::Not { node, .. } => Val::Bool(!eval(node, value)?.is_truthy()),
        Ast::Condition { predicate, then, .. } => {
            if eval(predicate, value)?.is_truthy() {
                eval(then, value)?
            } else {
                Val::Null
            }
        }
        Ast::Comparison { comparator, lhs, rhs, .. } => {
            let left = eval(lhs, value)?;
            let right = eval(rhs, value)?;
            compare(comparator, &left, &right)?
        }
        Ast::ObjectValues { node, .. } => match eval(node, value)? {
            Val::Obj(o) => Val::List(o.into_iter().map(|(_, v)| v).collect()),
            _ => Val::Null,
        },
        Ast::Projection { lhs, rhs, .. } => match eval(lhs, value)? {
            Val::List(items) => {
                let mut out = Vec::new();
                for item in &items {
                    let r = eval(rhs, item)?;
                    if !r.is_null() {
                        out.push(r);
                    }
                }
                Val::List(out)
            }
            _ => Val::Null,
        },
        Ast::Flatten { node, .. } => match eval(node, value)? {
            Val::List(items) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Val::List(inner) => out.extend(inner),
                        other => out.push(other),
                    }
                }
                Val::List(out)
            }
            _ => Val::Null,
        },
        Ast::MultiList { elements, .. } => {
            if value.is_null() {
                Val::Null
            } else {
                Val::List(elements.iter().map(|e| eval(e, value)).collect::<Res<Vec<_>>>()?)
            }
        }
        Ast::MultiHash { elements, .. } => {
            if value.is_null() {
                Val::Null
            } else {
                let mut out = Obj::ordered();
                for kv in elements {
                    out.insert(kv.key.clone(), eval(&kv.value, value)?);
                }
                Val::Obj(out)
            }
        }
        Ast::Function { name, args, .. } => call_function(name, args, value)?,
        Ast::Expref { .. } => {
            // Only valid as a function argument; python would hand an `_Expression` object on.
            return Err(QueryError("Expression references are only valid as function arguments".into()));
        }
        Ast::Slice { start, stop, step, .. } => match value {
            Val::List(l) => Val::List(py_slice(l, *start, *stop, *step)?),
            _ => Val::Null,
        },
    })
}

fn py_index(list: &[Val], idx: i64) -> Option<&Val> {
    let len = i64::try_from(list.len()).ok()?;
    let i = if idx < 0 { idx + len } else { idx };
    if i < 0 || i >= len {
        return None;
    }
    list.get(usize::try_from(i).ok()?)
}

/// Python list slicing `l[start:stop:step]`.
fn py_slice(list: &[Val], start: Option<i32>, stop: Option<i32>, step: i32) -> Res<Vec<Val>> {
    if step == 0 {
        return Err(QueryError("slice step cannot be zero".into()));
    }
    let len = list.len() as i64;
    let step = i64::from(step);
    let clamp = |v: Option<i32>, default: i64, lo: i64, hi: i64| -> i64 {
        match v {
            None => default,
            Some(v) => {
                let v = i64::from(v);
                let v = if v < 0 { v + len } else { v };
                v.clamp(lo, hi)
            }
        }
    };
    let mut out = Vec::new();
    if step > 0 {
        let (mut i, end) = (clamp(start, 0, 0, len), clamp(stop, len, 0, len));
        while i < end {
            if let Some(v) = usize::try_from(i).ok().and_then(|i| list.get(i)) {
                out.push(v.clone());
            }
            i += step;
        }
    } else {
        let (mut i, end) = (clamp(start, len - 1, -1, len - 1), clamp(stop, -1, -1, len - 1));
        while i > end {
            if let Some(v) = usize::try_from(i).ok().and_then(|i| list.get(i)) {
                out.push(v.clone());
            }
            i += step;
        }
    }
    Ok(out)
}

fn num_f64(v: &Val) -> Option<f64> {
    match v {
        Val::Num(n) => n.as_f64(),
        Val::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// Python `==` (booleans compare equal to 0/1, numbers across int/float).
fn loose_eq(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Num(x), Val::Num(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(i), Some(j), _, _) => i == j,
            (_, _, Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Val::Num(_), Val::Bool(_)) | (Val::Bool(_), Val::Num(_)) => num_f64(a) == num_f64(b),
        (Val::List(x), Val::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| loose_eq(p, q)),
        (Val::Obj(x), Val::Obj(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| loose_eq(v, w)))
        }
        _ => false,
    }
}

/// python-jmespath `_equals`: a number never equals a boolean at the top level.
fn jp_equals(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Num(_), Val::Bool(_)) | (Val::Bool(_), Val::Num(_)) => false,
        _ => loose_eq(a, b),
    }
}

/// Python ordering of two numbers or two strings; `Err` for a python `TypeError`.
fn py_order(a: &Val, b: &Val, op: &str) -> Res<Ordering> {
    match (a, b) {
        (Val::Num(x), Val::Num(y)) => {
            if let (Some(i), Some(j)) = (x.as_i64(), y.as_i64()) {
                return Ok(i.cmp(&j));
            }
            let (p, q) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            Ok(p.partial_cmp(&q).unwrap_or(Ordering::Equal))
        }
        (Val::Str(x), Val::Str(y)) => Ok(x.cmp(y)),
        _ => Err(QueryError(format!(
            "'{op}' not supported between instances of '{}' and '{}'",
            a.py_type_name(),
            b.py_type_name()
        ))),
    }
}

fn compare(cmp: &Comparator, left: &Val, right: &Val) -> Res<Val> {
    let op = match cmp {
        Comparator::Equal => return Ok(Val::Bool(jp_equals(left, right))),
        Comparator::NotEqual => return Ok(Val::Bool(!jp_equals(left, right))),
        Comparator::LessThan => "<",
        Comparator::LessThanEqual => "<=",
        Comparator::GreaterThan => ">",
        Comparator::GreaterThanEqual => ">=",
    };
    let comparable = |v: &Val| matches!(v, Val::Num(_) | Val::Str(_));
    if !(comparable(left) && comparable(right)) {
        return Ok(Val::Null);
    }
    let ord = py_order(left, right, op)?;
    Ok(Val::Bool(match cmp {
        Comparator::LessThan => ord == Ordering::Less,
        Comparator::LessThanEqual => ord != Ordering::Greater,
        Comparator::GreaterThan => ord == Ordering::Greater,
        _ => ord != Ordering::Less,
    }))
}

/// A resolved function argument: a value or an expression reference (`&expr`).
enum Arg<'a> {
    Val(Val),
    Expref(&'a Ast),
}

impl Arg<'_> {
    /// python-jmespath's type name of the argument (`type(x).__name__`).
    fn py_type(&self) -> &'static str {
        match self {
            Arg::Val(v) => v.py_type_name(),
            Arg::Expref(_) => "_Expression",
        }
    }

    fn repr(&self) -> String {
        match self {
            Arg::Val(v) => py_repr(v),
            Arg::Expref(_) => "<jmespath.visitor._Expression object>".into(),
        }
    }
}

fn jp_type_of(py: &str) -> &'static str {
    match py {
        "bool" => "boolean",
        "list" => "array",
        "dict" | "OrderedDict" => "object",
        "NoneType" => "null",
        "str" => "string",
        "float" | "int" => "number",
        "_Expression" => "expref",
        _ => "unknown",
    }
}

fn py_types_of(jp: &str) -> &'static [&'static str] {
    match jp {
        "boolean" => &["bool"],
        "array" => &["list"],
        "object" => &["dict", "OrderedDict"],
        "null" => &["NoneType"],
        "string" => &["str"],
        "number" => &["float", "int"],
        "expref" => &["_Expression"],
        _ => &[],
    }
}

/// One parameter of a function signature: allowed jmespath types (empty = any).
struct Param(&'static [&'static str]);

fn signature(name: &str) -> Option<(&'static [Param], bool)> {
    const ANY: Param = Param(&[]);
    const NUM: Param = Param(&["number"]);
    const STR: Param = Param(&["string"]);
    const OBJ: Param = Param(&["object"]);
    const ARR: Param = Param(&["array"]);
    const EXP: Param = Param(&["expref"]);
    Some(match name {
        "abs" | "ceil" | "floor" => (&[NUM], false),
        "avg" | "sum" => (&[Param(&["array-number"])], false),
        "not_null" => (&[ANY], true),
        "to_array" | "to_string" | "to_number" | "type" => (&[ANY], false),
        "contains" => (&[Param(&["array", "string"]), ANY], false),
        "length" => (&[Param(&["string", "array", "object"])], false),
        "ends_with" | "starts_with" => (&[STR, STR], false),
        "reverse" => (&[Param(&["array", "string"])], false),
        "join" => (&[STR, Param(&["array-string"])], false),
        "map" => (&[EXP, ARR], false),
        "max" | "min" => (&[Param(&["array-number", "array-string"])], false),
        "sort" => (&[Param(&["array-string", "array-number"])], false),
        "merge" => (&[OBJ], true),
        "keys" | "values" => (&[OBJ], false),
        "sort_by" | "min_by" | "max_by" => (&[ARR, EXP], false),
        _ => return None,
    })
}

fn type_error(func: &str, value: String, actual: &str, expected: &[&str]) -> QueryError {
    let expected: Vec<String> = expected.iter().map(|t| format!("'{t}'")).collect();
    QueryError(format!(
        "In function {func}(), invalid type for value: {value}, expected one of: [{}], received: \"{actual}\"",
        expected.join(", ")
    ))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "argument" } else { "arguments" }
}

/// python-jmespath `_validate_arguments` + `_type_check`.
fn check_args(name: &str, params: &[Param], variadic: bool, args: &[Arg<'_>]) -> Res<()> {
    if variadic {
        if args.len() < params.len() {
            return Err(QueryError(format!(
                "Expected at least {} {} for function {name}(), received {}",
                params.len(),
                plural(params.len()),
                args.len()
            )));
        }
    } else if args.len() != params.len() {
        return Err(QueryError(format!(
            "Expected {} {} for function {name}(), received {}",
            params.len(),
            plural(params.len()),
            args.len()
        )));
    }
    for (param, arg) in params.iter().zip(args) {
        if param.0.is_empty() {
            continue;
        }
        let mut allowed: Vec<&str> = Vec::new();
        let mut subtypes: Vec<&'static [&'static str]> = Vec::new();
        for t in param.0 {
            match t.split_once('-') {
                Some((outer, inner)) => {
                    allowed.extend(py_types_of(outer));
                    subtypes.push(py_types_of(inner));
                }
                None => allowed.extend(py_types_of(t)),
            }
        }
        let actual = arg.py_type();
        if !allowed.contains(&actual) {
            return Err(type_error(name, arg.repr(), jp_type_of(actual), param.0));
        }
        let Arg::Val(Val::List(items)) = arg else {
            continue;
        };
        if subtypes.len() == 1 {
            let allowed_sub = subtypes.first().copied().unwrap_or(&[]);
            for item in items {
                let t = item.py_type_name();
                if !allowed_sub.contains(&t) {
                    return Err(type_error(name, py_repr(item), t, param.0));
                }
            }
        } else if subtypes.len() > 1
            && let Some(first) = items.first()
        {
            let first_t = first.py_type_name();
            let Some(allowed_sub) = subtypes.iter().find(|s| s.contains(&first_t)) else {
                return Err(type_error(name, py_repr(first), first_t, param.0));
            };
            for item in items {
                let t = item.py_type_name();
                if !allowed_sub.contains(&t) {
                    return Err(type_error(name, py_repr(item), t, param.0));
                }
            }
        }
    }
    Ok(())
}

fn call_function(name: &str, arg_nodes: &[Ast], value: &Val) -> Res<Val> {
    let mut args = Vec::with_capacity(arg_nodes.len());
    for node in arg_nodes {
        args.push(match node {
            Ast::Expref { ast, .. } => Arg::Expref(ast),
            other => Arg::Val(eval(other, value)?),
        });
    }
    let Some((params, variadic)) = signature(name) else {
        return Err(QueryError(format!("Unknown function: {name}()")));
    };
    check_args(name, params, variadic, &args)?;

    let val = |i: usize| -> Val {
        match args.get(i) {
            Some(Arg::Val(v)) => v.clone(),
            _ => Val::Null,
        }
    };
    let expref = |i: usize| -> Option<&Ast> {
        match args.get(i) {
            Some(Arg::Expref(a)) => Some(a),
            _ => None,
        }
    };
    let list = |i: usize| -> Vec<Val> {
        match val(i) {
            Val::List(l) => l,
            _ => Vec::new(),
        }
    };

    Ok(match name {
        "abs" => match val(0) {
            Val::Num(n) => match n.as_i64() {
                Some(i) => Val::from(i.checked_abs().unwrap_or(i)),
                None => float(n.as_f64().map(f64::abs)),
            },
            other => other,
        },
        "avg" => {
            let items = list(0);
            if items.is_empty() {
                Val::Null
            } else {
                let sum: f64 = items.iter().filter_map(num_f64).sum();
                float(Some(sum / items.len() as f64))
            }
        }
        "sum" => sum(&list(0)),
        "ceil" | "floor" => match val(0) {
            Val::Num(n) if !n.is_f64() => Val::Num(n),
            Val::Num(n) => {
                let f = n.as_f64().unwrap_or(0.0);
                let r = if name == "ceil" { f.ceil() } else { f.floor() };
                int_from_f64(r)
            }
            other => other,
        },
        "not_null" => args
            .iter()
            .find_map(|a| match a {
                Arg::Val(v) if !v.is_null() => Some(v.clone()),
                _ => None,
            })
            .unwrap_or(Val::Null),
        "to_array" => match val(0) {
            Val::List(l) => Val::List(l),
            other => Val::List(vec![other]),
        },
        "to_string" => match val(0) {
            Val::Str(s) => Val::Str(s),
            other => Val::Str(py_json_dumps(
                &other,
                &DumpOptions { indent: None, sort_keys: false, ensure_ascii: true, separators: (",", ":") },
            )),
        },
        "to_number" => match val(0) {
            Val::Num(n) => Val::Num(n),
            Val::Str(s) => to_number(&s),
            _ => Val::Null,
        },
        "type" => Val::str(jp_type_of(val(0).py_type_name())),
        "contains" => match (val(0), val(1)) {
            (Val::List(l), search) => Val::Bool(l.iter().any(|x| loose_eq(x, &search))),
            (Val::Str(s), Val::Str(search)) => Val::Bool(s.contains(search.as_str())),
            (Val::Str(_), other) => {
                return Err(QueryError(format!(
                    "'in <string>' requires string as left operand, not {}",
                    other.py_type_name()
                )));
            }
            _ => Val::Null,
        },
        "length" => match val(0) {
            Val::Str(s) => Val::from(s.chars().count() as i64),
            Val::List(l) => Val::from(l.len() as i64),
            Val::Obj(o) => Val::from(o.len() as i64),
            _ => Val::Null,
        },
        "ends_with" | "starts_with" => match (val(0), val(1)) {
            (Val::Str(s), Val::Str(x)) => {
                Val::Bool(if name == "ends_with" { s.ends_with(x.as_str()) } else { s.starts_with(x.as_str()) })
            }
            _ => Val::Null,
        },
        "reverse" => match val(0) {
            Val::Str(s) => Val::Str(s.chars().rev().collect()),
            Val::List(mut l) => {
                l.reverse();
                Val::List(l)
            }
            other => other,
        },
        "join" => match val(0) {
            Val::Str(sep) => {
                Val::Str(list(1).iter().filter_map(|v| v.as_str().map(str::to_owned)).collect::<Vec<_>>().join(&sep))
            }
            _ => Val::Null,
        },
        "map" => {
            let Some(ast) = expref(0) else {
                return Ok(Val::Null);
            };
            Val::List(list(1).iter().map(|v| eval(ast, v)).collect::<Res<_>>()?)
        }
        "max" | "min" => {
            let items = list(0);
            let mut best: Option<&Val> = None;
            for item in &items {
                best = Some(match best {
                    None => item,
                    Some(b) => {
                        let ord = py_order(item, b, if name == "max" { ">" } else { "<" })?;
                        let better = if name == "max" { ord == Ordering::Greater } else { ord == Ordering::Less };
                        if better { item } else { b }
                    }
                });
            }
            best.cloned().unwrap_or(Val::Null)
        }
        "sort" => {
            let mut items = list(0);
            let mut err = None;
            items.sort_by(|a, b| {
                py_order(a, b, "<").unwrap_or_else(|e| {
                    err.get_or_insert(e);
                    Ordering::Equal
                })
            });
            if let Some(e) = err {
                return Err(e);
            }
            Val::List(items)
        }
        "merge" => {
            let mut out = Obj::new();
            for a in &args {
                if let Arg::Val(Val::Obj(o)) = a {
                    for (k, v) in o.iter() {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            Val::Obj(out)
        }
        "keys" => match val(0) {
            Val::Obj(o) => Val::List(o.keys().map(Val::from).collect()),
            _ => Val::Null,
        },
        "values" => match val(0) {
            Val::Obj(o) => Val::List(o.into_iter().map(|(_, v)| v).collect()),
            _ => Val::Null,
        },
        "sort_by" => {
            let items = list(0);
            let Some(ast) = expref(1) else {
                return Ok(Val::Null);
            };
            let Some(first) = items.first() else {
                return Ok(Val::List(items));
            };
            let first_key = eval(ast, first)?;
            let required = jp_type_of(first_key.py_type_name());
            if required != "number" && required != "string" {
                return Err(type_error("sort_by", py_repr(first), required, &["string", "number"]));
            }
            let mut keyed = Vec::with_capacity(items.len());
            for item in items {
                let key = eval(ast, &item)?;
                let t = jp_type_of(key.py_type_name());
                if t != required {
                    return Err(type_error("sort_by", py_repr(&key), t, &[required]));
                }
                keyed.push((key, item));
            }
            let mut err = None;
            keyed.sort_by(|a, b| {
                py_order(&a.0, &b.0, "<").unwrap_or_else(|e| {
                    err.get_or_insert(e);
                    Ordering::Equal
                })
            });
            if let Some(e) = err {
                return Err(e);
            }
            Val::List(keyed.into_iter().map(|(_, v)| v).collect())
        }
        "min_by" | "max_by" => {
            let items = list(0);
            let Some(ast) = expref(1) else {
                return Ok(Val::Null);
            };
            let mut best: Option<(Val, Val)> = None;
            for item in items {
                let key = eval(ast, &item)?;
                let t = jp_type_of(key.py_type_name());
                if t != "number" && t != "string" {
                    return Err(type_error(name, py_repr(&key), t, &["number", "string"]));
                }
                best = Some(match best {
                    None => (key, item),
                    Some((bk, bv)) => {
                        let ord = py_order(&key, &bk, "<")?;
                        let better = if name == "max_by" { ord == Ordering::Greater } else { ord == Ordering::Less };
                        if better { (key, item) } else { (bk, bv) }
                    }
                });
            }
            best.map_or(Val::Null, |(_, v)| v)
        }
        _ => return Err(QueryError(format!("Unknown function: {name}()"))),
    })
}

fn float(f: Option<f64>) -> Val {
    f.and_then(serde_json::Number::from_f64).map_or(Val::Null, Val::Num)
}

fn int_from_f64(f: f64) -> Val {
    if f.is_finite() && f.abs() < 9.0e18 { Val::from(f as i64) } else { float(Some(f)) }
}

fn sum(items: &[Val]) -> Val {
    if items.iter().any(|v| matches!(v, Val::Num(n) if n.is_f64())) {
        return float(Some(items.iter().filter_map(num_f64).sum()));
    }
    let mut total: i64 = 0;
    for item in items {
        let Val::Num(n) = item else { continue };
        match n.as_i64().and_then(|i| total.checked_add(i)) {
            Some(t) => total = t,
            None => return float(Some(items.iter().filter_map(num_f64).sum())),
        }
    }
    Val::from(total)
}

/// python `int(s)` then `float(s)`, `None` when neither parses.
fn to_number(s: &str) -> Val {
    let t = s.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    let int_like = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_');
    if int_like {
        let cleaned: String = t.chars().filter(|c| *c != '_').collect();
        if let Ok(i) = cleaned.parse::<i64>() {
            return Val::from(i);
        }
        return float(cleaned.parse::<f64>().ok());
    }
    let lower = t.to_ascii_lowercase();
    if lower.contains("inf") || lower.contains("nan") {
        return Val::Null;
    }
    match t.parse::<f64>() {
        Ok(f) => float(Some(f)),
        Err(_) => Val::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::value::py_str;

    fn q(expr: &str, data: &str) -> Val {
        Query::parse(expr).unwrap().search(&Val::parse(data).unwrap()).unwrap()
    }

    fn dump(v: &Val) -> String {
        py_json_dumps(v, &DumpOptions { indent: None, sort_keys: false, ensure_ascii: false, separators: (", ", ": ") })
    }

    #[test]
    fn multiselect_hash_keeps_expression_order() {
        let v = q("{z: b, a: a}", r#"{"a": 1, "b": 2}"#);
        let o = v.as_obj().unwrap();
        assert!(o.is_ordered());
        assert_eq!(o.keys().cloned().collect::<Vec<_>>(), vec!["z", "a"]);
        let v = q("[].{n: name, i: id}", r#"[{"id": "1", "name": "x"}]"#);
        assert_eq!(dump(&v), r#"[{"n": "x", "i": "1"}]"#);
    }

    #[test]
    fn basic_expressions() {
        let data = r#"{"a": {"b": [1, 2, 3, 4]}, "s": "str", "l": [{"n": "x", "v": 2}, {"n": "y", "v": 1}]}"#;
        assert_eq!(dump(&q("a.b[-1]", data)), "4");
        assert_eq!(dump(&q("a.b[::-2]", data)), "[4, 2]");
        assert_eq!(dump(&q("a.b[1:3]", data)), "[2, 3]");
        assert_eq!(dump(&q("a.b[10]", data)), "null");
        assert_eq!(dump(&q("s.x", data)), "null");
        assert_eq!(dump(&q("l[?v > `1`].n", data)), r#"["x"]"#);
        assert_eq!(dump(&q("l[?n == 'y'] | [0].v", data)), "1");
        assert_eq!(dump(&q("sort_by(l, &v)[].n", data)), r#"["y", "x"]"#);
        assert_eq!(dump(&q("max_by(l, &v).n", data)), r#""x""#);
        assert_eq!(dump(&q("length(l)", data)), "2");
        assert_eq!(dump(&q("l[*].v | sum(@)", data)), "3");
        assert_eq!(dump(&q("avg(a.b)", data)), "2.5");
        assert_eq!(dump(&q("to_string(l[0])", data)), r#""{\"n\":\"x\",\"v\":2}""#);
        assert_eq!(dump(&q("join(',', l[].n)", data)), r#""x,y""#);
        assert_eq!(dump(&q("a.*", data)), "[[1, 2, 3, 4]]");
        assert_eq!(dump(&q("!`0`", data)), "false");
        assert_eq!(dump(&q("`1` == `true`", data)), "false");
        assert_eq!(dump(&q("'a' < 'b'", data)), "true");
        assert_eq!(dump(&q("s < `null`", data)), "null");
        let err = Query::parse("s < `1`").unwrap().search(&Val::parse(data).unwrap()).unwrap_err();
        assert_eq!(err.0, "'<' not supported between instances of 'str' and 'int'");
    }

    #[test]
    fn python_error_messages() {
        let err = Query::parse("length(`1`)").unwrap().search(&Val::Null).unwrap_err();
        assert_eq!(
            err.0,
            "In function length(), invalid type for value: 1, expected one of: ['string', 'array', 'object'], received: \"number\""
        );
        let err = Query::parse("nope(@)").unwrap().search(&Val::Null).unwrap_err();
        assert_eq!(err.0, "Unknown function: nope()");
        let err = Query::parse("abs(`1`, `2`)").unwrap().search(&Val::Null).unwrap_err();
        assert_eq!(err.0, "Expected 1 argument for function abs(), received 2");
    }

    #[test]
    fn to_number_and_sorting() {
        assert_eq!(py_str(&q("to_number('12')", "null")), "12");
        assert_eq!(py_str(&q("to_number('1.5')", "null")), "1.5");
        assert_eq!(py_str(&q("to_number('x')", "null")), "None");
        assert_eq!(dump(&q("sort(@)", r#"["b", "a", "C"]"#)), r#"["C", "a", "b"]"#);
        assert_eq!(dump(&q("keys(@)", r#"{"b": 1, "a": 2}"#)), r#"["b", "a"]"#);
    }
}
