//! The small languages inside strings: `when` conditions, OSC address templates and
//! typed OSC arguments.

use super::values::*;
use super::*;

const PLACEHOLDERS: &[&str] = &["layer", "layer_index", "step", "value", "metric"];

/// Parses a `when` condition: `value OP number` with OP one of `>`, `>=`, `<`, `<=`, `==`, `!=`.
pub fn parse_condition(s: &str) -> Result<Condition, String> {
    let expected = "expected a condition like \"value > 10\" (operators > >= < <= == !=)";
    let rest = s.trim();
    let Some(rest) = rest.strip_prefix("value") else {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let hint = did_you_mean(&word, &["value"]);
        return Err(format!("{expected}, found {s:?}{hint}"));
    };
    let rest = rest.trim_start();
    let ops = [
        (">=", CmpOp::Ge),
        ("<=", CmpOp::Le),
        ("==", CmpOp::Eq),
        ("!=", CmpOp::Ne),
        (">", CmpOp::Gt),
        ("<", CmpOp::Lt),
    ];
    let Some((op, rhs)) = ops
        .iter()
        .find_map(|(t, op)| rest.strip_prefix(t).map(|r| (*op, r)))
    else {
        return Err(format!("{expected}, found {s:?}"));
    };
    match rhs.trim().parse::<f64>() {
        Ok(rhs) if rhs.is_finite() => Ok(Condition { op, rhs }),
        _ => Err(format!(
            "{expected}: `{}` is not a finite number",
            rhs.trim()
        )),
    }
}

/// Parses an OSC address template with `{layer}`, `{layer_index}`, `{step}`, `{value}` and
/// `{metric}` placeholders.
pub fn parse_address(s: &str) -> Result<Vec<AddrPart>, String> {
    if !s.starts_with('/') {
        return Err(format!("an OSC address starts with `/`, found {s:?}"));
    }
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(AddrPart::Text(rest[..open].to_string()));
        }
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("unclosed `{{` in address {s:?}"));
        };
        let name = &rest[open + 1..open + close];
        parts.push(match name {
            "layer" => AddrPart::Layer,
            "layer_index" => AddrPart::LayerIndex,
            "step" => AddrPart::Step,
            "value" => AddrPart::Value,
            "metric" => AddrPart::Metric,
            other => {
                let hint = did_you_mean(other, PLACEHOLDERS);
                return Err(format!(
                    "unknown placeholder `{{{other}}}`{hint} (expected one of {})",
                    list(PLACEHOLDERS)
                ));
            }
        });
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("unmatched `}}` in address {s:?}"));
    }
    if !rest.is_empty() {
        parts.push(AddrPart::Text(rest.to_string()));
    }
    if s.contains(' ') {
        return Err(format!("an OSC address has no spaces, found {s:?}"));
    }
    Ok(parts)
}

/// Parses one typed OSC argument `"TYPE:SOURCE"`.
pub fn parse_arg(s: &str) -> Result<OscArgSpec, String> {
    let Some((ty, source)) = s.split_once(':') else {
        return Err(format!(
            "expected a typed argument like \"f:value\" (TYPE:SOURCE), found {s:?}"
        ));
    };
    let ty = match ty {
        "f" => OscType::Float,
        "d" => OscType::Double,
        "i" => OscType::Int,
        "s" => OscType::Str,
        other => {
            return Err(format!(
                "unknown OSC type `{other}`, expected `f`, `d`, `i` or `s`"
            ))
        }
    };
    let Some(src) = ArgSource::parse(source) else {
        let hint = did_you_mean(source, &ArgSource::NAMES);
        return Err(format!(
            "unknown argument source `{source}`{hint} (expected one of {})",
            list(&ArgSource::NAMES)
        ));
    };
    if ty == OscType::Str && !matches!(src, ArgSource::Layer | ArgSource::Route | ArgSource::Metric)
    {
        return Err(format!(
            "a string argument takes `layer`, `route` or `metric`, not `{source}`"
        ));
    }
    Ok(OscArgSpec { ty, source: src })
}
