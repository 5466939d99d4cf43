//! Values written as Python writes them: `str(value)`, `repr` of a float, `json.dumps`. DSPy
//! builds its prompts with these, so the prompts built in Rust must use them too.

use std::fmt::Write as _;

use serde_json::{Number, Value as JsonValue};

/// Python's `repr(float)`: the shortest digits that read back to the same float, in fixed
/// notation for exponents from -4 to 15 (`0.0001`, `1e+16`, `2.5e-07`), always with a `.0` or
/// an exponent (`1.0`).
pub(crate) fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345e-5".
    let scientific = format!("{x:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exponent) {
        let point = exponent + 1;
        let body = if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else {
            let point = point as usize;
            if digits.len() <= point {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            }
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let mantissa = if rest.is_empty() {
            first.to_owned()
        } else {
            format!("{first}.{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exponent.unsigned_abs())
    }
}

/// A JSON number as Python prints the value `json.loads` gives for it.
fn number(n: &Number) -> String {
    if n.is_i64() || n.is_u64() {
        n.to_string()
    } else {
        float_repr(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Python's `str()` of the value `json.loads` gives (`True`, `None`, `1.0`); JSON text for
/// lists and objects.
pub(crate) fn str_of(value: &JsonValue) -> String {
    match value {
        JsonValue::Null => "None".to_owned(),
        JsonValue::Bool(true) => "True".to_owned(),
        JsonValue::Bool(false) => "False".to_owned(),
        JsonValue::Number(n) => number(n),
        JsonValue::String(s) => s.clone(),
        other => dumps(other, false),
    }
}

/// Python's `json.dumps(value, ensure_ascii=...)` with its default separators (`", "`,
/// `": "`).
pub(crate) fn dumps(value: &JsonValue, ensure_ascii: bool) -> String {
    let mut out = String::new();
    write_json(&mut out, value, ensure_ascii);
    out
}

/// Python's `json.dumps(value, indent=2, ensure_ascii=False)` of a value nested `depth`
/// levels deep (its inner lines indented accordingly).
pub(crate) fn dumps_indented(value: &JsonValue, depth: usize) -> String {
    let pad = |d: usize| "  ".repeat(d);
    match value {
        JsonValue::Array(items) if !items.is_empty() => {
            let inner: Vec<String> = items
                .iter()
                .map(|item| format!("{}{}", pad(depth + 1), dumps_indented(item, depth + 1)))
                .collect();
            format!("[\n{}\n{}]", inner.join(",\n"), pad(depth))
        }
        JsonValue::Object(map) if !map.is_empty() => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    let mut key = String::new();
                    write_string(&mut key, k, false);
                    format!("{}{key}: {}", pad(depth + 1), dumps_indented(v, depth + 1))
                })
                .collect();
            format!("{{\n{}\n{}}}", inner.join(",\n"), pad(depth))
        }
        other => dumps(other, false),
    }
}

fn write_json(out: &mut String, value: &JsonValue, ensure_ascii: bool) {
    match value {
        JsonValue::Null => out.push_str("null"),
        JsonValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        JsonValue::Number(n) => {
            let text = number(n);
            // json.dumps writes inf and nan as Python names them in JSON.
            out.push_str(match text.as_str() {
                "inf" => "Infinity",
                "-inf" => "-Infinity",
                "nan" => "NaN",
                _ => &text,
            });
        }
        JsonValue::String(s) => write_string(out, s, ensure_ascii),
        JsonValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json(out, item, ensure_ascii);
            }
            out.push(']');
        }
        JsonValue::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(out, k, ensure_ascii);
                out.push_str(": ");
                write_json(out, v, ensure_ascii);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && (c as u32) > 0x7e) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `textwrap.dedent`: the common leading whitespace of the non-blank lines removed,
/// blank lines emptied.
pub(crate) fn dedent(text: &str) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let margin = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| &l[..l.len() - l.trim_start_matches([' ', '\t']).len()])
        .reduce(|a, b| {
            let common = a
                .char_indices()
                .zip(b.chars())
                .find(|((_, x), y)| x != y)
                .map_or(a.len().min(b.len()), |((i, _), _)| i);
            &a[..common]
        })
        .unwrap_or("");
    lines
        .iter()
        .map(|l| {
            if l.trim_matches([' ', '\t']).is_empty() {
                ""
            } else {
                l.strip_prefix(margin).unwrap_or(l)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Python's `inspect.cleandoc` (what DSPy's `Signature.instructions` returns): tabs expanded,
/// the first line stripped on the left, the common indentation of the others removed, blank
/// lines at both ends dropped.
pub(crate) fn cleandoc(doc: &str) -> String {
    let expanded = expand_tabs(doc);
    let mut lines: Vec<&str> = expanded.split('\n').collect();
    let margin = lines
        .iter()
        .skip(1)
        .filter(|l| !l.trim_start().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min();
    if let Some(first) = lines.first_mut() {
        *first = first.trim_start();
    }
    if let Some(margin) = margin {
        for line in lines.iter_mut().skip(1) {
            *line = line.get(margin..).unwrap_or("");
        }
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let first_kept = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    lines[first_kept..].join("\n")
}

/// Python's `str.expandtabs()` (tab stops every 8 columns, counted from each line start).
fn expand_tabs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut column = 0;
    for c in text.chars() {
        match c {
            '\t' => {
                let spaces = 8 - column % 8;
                out.extend(std::iter::repeat_n(' ', spaces));
                column += spaces;
            }
            '\n' | '\r' => {
                out.push(c);
                column = 0;
            }
            c => {
                out.push(c);
                column += 1;
            }
        }
    }
    out
}

/// Python's `str.splitlines()` for the line breaks text carries (`\n`, `\r\n`, `\r`).
pub(crate) fn splitlines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\n', '\r']) {
            Some(at) => {
                lines.push(&rest[..at]);
                let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[at + skip..];
            }
            None => {
                lines.push(rest);
                rest = "";
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_print_as_python_prints_them() {
        for (x, python) in [
            (1.0, "1.0"),
            (1.5, "1.5"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (2.5e-7, "2.5e-07"),
            (-0.0, "-0.0"),
            (123_456_789.125, "123456789.125"),
            (1.234_567_890_123_456_8e20, "1.2345678901234568e+20"),
            (0.1 + 0.2, "0.30000000000000004"),
        ] {
            assert_eq!(float_repr(x), python, "{x}");
        }
    }

    #[test]
    fn json_dumps_and_str_match_python() {
        // serde_json's objects keep their keys sorted (Python keeps the order of the JSON
        // text, the same order for a value that came from one).
        let v = json!({"é": [1, 2.5e-7, true, null], "q\"": "a\nb"});
        assert_eq!(
            dumps(&v, false),
            r#"{"q\"": "a\nb", "é": [1, 2.5e-07, true, null]}"#
        );
        assert_eq!(dumps(&json!(["é😀"]), true), r#"["\u00e9\ud83d\ude00"]"#);
        assert_eq!(str_of(&json!(true)), "True");
        assert_eq!(str_of(&json!(null)), "None");
        assert_eq!(str_of(&json!(3.0)), "3.0");
    }

    #[test]
    fn dedent_and_splitlines_follow_textwrap() {
        assert_eq!(dedent("  a\n    b\n\n  c"), "a\n  b\n\nc");
        assert_eq!(dedent("a\n  b"), "a\n  b");
        assert_eq!(dedent("  a\n   \n  b"), "a\n\nb");
        assert_eq!(splitlines("a\r\nb\rc\n"), ["a", "b", "c"]);
        assert!(splitlines("").is_empty());
        assert_eq!(cleandoc("  a\n    b\n      c\n\n"), "a\nb\n  c");
        assert_eq!(cleandoc("\n\n  x\n\ty"), "x\n      y");
        assert_eq!(cleandoc(""), "");
    }
}
