//! The CLI's az output emulation over arbitrary server responses: a `--query` expression on the
//! first line, a JSON document after it; the query is evaluated and the result rendered in every
//! `-o` format, coloured and not. Must never panic (deep nesting, odd numbers, unicode keys).
#![no_main]

use clap::ValueEnum;
use libfuzzer_sys::fuzz_target;
use wid_cli::OutputFormat;
use wid_cli::output::query::Query;
use wid_cli::output::value::Val;
use wid_cli::output::{render, shape};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (expr, json) = text.split_once('\n').unwrap_or(("", text));
    let Ok(mut value) = Val::parse(json) else { return };
    shape::add_resource_group(&mut value);
    let result = match Query::parse(expr) {
        Ok(q) => match q.search(&value) {
            Ok(v) => v,
            Err(_) => return,
        },
        Err(_) => value,
    };
    for format in OutputFormat::value_variants() {
        for color in [false, true] {
            let _ = render(*format, &result, None, !expr.is_empty(), color);
        }
    }
});
