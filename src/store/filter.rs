//! Qdrant's own filter JSON (the `Filter` of its REST API) for the server store's gRPC requests.
//!
//! Users write filters the way the Qdrant documentation shows them: `must` / `should` / `must_not`
//! (+ `min_should`), conditions `{"key", "match": {"value" | "any" | "except" | "text"}}`,
//! `{"key", "range": {"gt", "gte", "lt", "lte"}}` (numbers; RFC 3339 strings or dates make a
//! datetime range), `{"is_empty": {"key"}}`, `{"is_null": {"key"}}`, `{"has_id": [...]}` and
//! nested filters. The embedded store reads the same JSON with qdrant-edge's own deserialiser;
//! here it becomes the protobuf `Filter`. Anything else is a clear `InvalidConfig` error.

use qdrant_client::qdrant::{self as pb, condition::ConditionOneOf, point_id::PointIdOptions, r#match::MatchValue};
use serde_json::{Map, Value};

use crate::error::{ErrorKind, Result, VdbError};

fn bad(msg: impl Into<String>) -> VdbError {
    VdbError::new(ErrorKind::InvalidConfig, format!("Qdrant filter: {}", msg.into()))
}

const FILTER_KEYS: [&str; 4] = ["must", "should", "must_not", "min_should"];

/// Whether a JSON object is a filter (rather than a condition).
pub fn is_filter(v: &Map<String, Value>) -> bool {
    !v.is_empty() && v.keys().all(|k| FILTER_KEYS.contains(&k.as_str()))
}

/// Checks the shape both stores rely on: an object with filter keys only.
pub fn validate(v: &Value) -> Result<()> {
    match v.as_object() {
        Some(m) if is_filter(m) => Ok(()),
        _ => Err(bad(format!("expected an object with must / should / must_not, got {v}"))),
    }
}

/// The protobuf filter for a Qdrant filter JSON object.
pub fn to_pb(v: &Value) -> Result<pb::Filter> {
    validate(v)?;
    let m = v.as_object().expect("validated");
    let list = |key: &str| -> Result<Vec<pb::Condition>> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(condition).collect(),
            Some(one @ Value::Object(_)) => Ok(vec![condition(one)?]),
            Some(other) => Err(bad(format!("{key} must be a list of conditions, got {other}"))),
        }
    };
    let min_should = match m.get("min_should") {
        None | Some(Value::Null) => None,
        Some(ms) => {
            let o = ms.as_object().ok_or_else(|| bad("min_should must be an object"))?;
            let conditions = match o.get("conditions") {
                Some(Value::Array(items)) => items.iter().map(condition).collect::<Result<Vec<_>>>()?,
                _ => return Err(bad("min_should needs a list of conditions")),
            };
            let min_count =
                o.get("min_count").and_then(Value::as_u64).ok_or_else(|| bad("min_should needs min_count"))?;
            Some(pb::MinShould { conditions, min_count })
        }
    };
    Ok(pb::Filter { must: list("must")?, should: list("should")?, must_not: list("must_not")?, min_should })
}

fn field(fc: pb::FieldCondition) -> pb::Condition {
    pb::Condition { condition_one_of: Some(ConditionOneOf::Field(fc)) }
}

fn key_of(o: &Map<String, Value>) -> Result<String> {
    match o.get("key") {
        Some(Value::String(k)) if !k.is_empty() => Ok(k.clone()),
        _ => Err(bad(format!("condition needs a \"key\": {}", Value::Object(o.clone())))),
    }
}

fn condition(v: &Value) -> Result<pb::Condition> {
    let o = v.as_object().ok_or_else(|| bad(format!("a condition must be an object, got {v}")))?;
    if is_filter(o) {
        return Ok(pb::Condition { condition_one_of: Some(ConditionOneOf::Filter(to_pb(v)?)) });
    }
    if let Some(e) = o.get("is_empty") {
        let key = e.get("key").and_then(Value::as_str).ok_or_else(|| bad("is_empty needs a key"))?;
        return Ok(pb::Condition {
            condition_one_of: Some(ConditionOneOf::IsEmpty(pb::IsEmptyCondition { key: key.into() })),
        });
    }
    if let Some(e) = o.get("is_null") {
        let key = e.get("key").and_then(Value::as_str).ok_or_else(|| bad("is_null needs a key"))?;
        return Ok(pb::Condition {
            condition_one_of: Some(ConditionOneOf::IsNull(pb::IsNullCondition { key: key.into() })),
        });
    }
    if let Some(ids) = o.get("has_id") {
        let ids = ids.as_array().ok_or_else(|| bad("has_id needs a list of ids"))?;
        let has_id = ids
            .iter()
            .map(|id| match id {
                Value::String(s) => Ok(pb::PointId { point_id_options: Some(PointIdOptions::Uuid(s.clone())) }),
                Value::Number(n) if n.as_u64().is_some() => {
                    Ok(pb::PointId { point_id_options: Some(PointIdOptions::Num(n.as_u64().unwrap_or_default())) })
                }
                other => Err(bad(format!("has_id: {other} is not a point id"))),
            })
            .collect::<Result<_>>()?;
        return Ok(pb::Condition { condition_one_of: Some(ConditionOneOf::HasId(pb::HasIdCondition { has_id })) });
    }
    let key = key_of(o)?;
    // A misspelt or unsupported part is an error, never a condition quietly left out.
    let parts: Vec<&String> = o.keys().filter(|k| k.as_str() != "key").collect();
    if parts.len() != 1 || !["match", "range"].contains(&parts[0].as_str()) {
        return Err(bad(format!(
            "condition on {key:?} must have exactly one of match, range (found {}): {}",
            parts.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", "),
            Value::Object(o.clone())
        )));
    }
    if let Some(m) = o.get("match") {
        return Ok(field(pb::FieldCondition {
            key,
            r#match: Some(pb::Match { match_value: Some(match_value(m)?) }),
            ..Default::default()
        }));
    }
    if let Some(r) = o.get("range") {
        let r = r.as_object().ok_or_else(|| bad("range must be an object"))?;
        let bounds = ["gt", "gte", "lt", "lte"];
        if let Some(k) = r.keys().find(|k| !bounds.contains(&k.as_str())) {
            return Err(bad(format!("range on {key:?}: unknown bound {k:?} (gt, gte, lt, lte)")));
        }
        let mut fc = pb::FieldCondition { key: key.clone(), ..Default::default() };
        if r.values().any(Value::is_string) {
            let ts = |b: &str| r.get(b).filter(|v| !v.is_null()).map(|v| timestamp(&key, v)).transpose();
            fc.datetime_range =
                Some(pb::DatetimeRange { gt: ts("gt")?, gte: ts("gte")?, lt: ts("lt")?, lte: ts("lte")? });
        } else {
            let num = |b: &str| -> Result<Option<f64>> {
                match r.get(b) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => v
                        .as_f64()
                        .filter(|x| x.is_finite())
                        .map(Some)
                        .ok_or_else(|| bad(format!("range on {key:?}: {b} must be a number or a date"))),
                }
            };
            fc.range = Some(pb::Range { gt: num("gt")?, gte: num("gte")?, lt: num("lt")?, lte: num("lte")? });
        }
        return Ok(field(fc));
    }
    Err(bad(format!(
        "unsupported condition {} (supported: match, range, is_empty, is_null, has_id, nested filters)",
        Value::Object(o.clone())
    )))
}

fn match_value(m: &Value) -> Result<MatchValue> {
    let o = m.as_object().ok_or_else(|| bad("match must be an object"))?;
    if o.len() != 1 {
        return Err(bad(format!("match needs exactly one of value, any, except, text, got {m}")));
    }
    let strings = |items: &Vec<Value>| items.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<Vec<_>>>();
    let ints = |items: &Vec<Value>| items.iter().map(Value::as_i64).collect::<Option<Vec<_>>>();
    if let Some(v) = o.get("value") {
        return match v {
            Value::String(s) => Ok(MatchValue::Keyword(s.clone())),
            Value::Bool(b) => Ok(MatchValue::Boolean(*b)),
            Value::Number(n) if n.as_i64().is_some() => Ok(MatchValue::Integer(n.as_i64().unwrap_or_default())),
            other => Err(bad(format!("match value must be a string, integer or bool, got {other}"))),
        };
    }
    if let Some(Value::String(t)) = o.get("text") {
        return Ok(MatchValue::Text(t.clone()));
    }
    for (key, except) in [("any", false), ("except", true)] {
        if let Some(Value::Array(items)) = o.get(key) {
            if let Some(s) = strings(items) {
                let r = pb::RepeatedStrings { strings: s };
                return Ok(if except { MatchValue::ExceptKeywords(r) } else { MatchValue::Keywords(r) });
            }
            if let Some(i) = ints(items) {
                let r = pb::RepeatedIntegers { integers: i };
                return Ok(if except { MatchValue::ExceptIntegers(r) } else { MatchValue::Integers(r) });
            }
            return Err(bad(format!("match {key} needs all strings or all integers")));
        }
    }
    Err(bad(format!("unsupported match {m} (value, any, except, text)")))
}

/// An RFC 3339 date-time (`2024-03-01T12:00:00Z`, `...+02:00`, fractional seconds) or a date
/// (`2024-03-01`, midnight UTC), as a protobuf timestamp.
fn timestamp(key: &str, v: &Value) -> Result<prost_types::Timestamp> {
    let s = v.as_str().ok_or_else(|| bad(format!("range on {key:?}: mix of dates and numbers")))?;
    parse_datetime(s)
        .ok_or_else(|| bad(format!("range on {key:?}: {s:?} is not a date (YYYY-MM-DD) or an RFC 3339 date-time")))
}

pub(crate) fn parse_datetime(s: &str) -> Option<prost_types::Timestamp> {
    let num = |t: &str| -> Option<i64> {
        if t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty() {
            t.parse().ok()
        } else {
            None
        }
    };
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut dp = date.splitn(3, '-');
    let (y, mo, d) = (num(dp.next()?)?, num(dp.next()?)?, num(dp.next()?)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (yy, m) = if mo <= 2 { (y - 1, mo + 9) } else { (y, mo - 3) };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let (mut secs, mut nanos) = (days * 86_400, 0i32);
    if let Some(t) = time {
        let (clock, offset) = if let Some(c) = t.strip_suffix(['Z', 'z']) {
            (c, 0)
        } else if let Some(i) = t.rfind(['+', '-']).filter(|&i| i >= 8) {
            let (c, o) = t.split_at(i);
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let (oh, om) = o[1..].split_once(':').unwrap_or((&o[1..], "0"));
            (c, sign * (num(oh)? * 3600 + num(om)? * 60))
        } else {
            (t, 0)
        };
        let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
        let mut tp = hms.splitn(3, ':');
        let (h, mi) = (num(tp.next()?)?, num(tp.next()?)?);
        let sec = tp.next().map(num).unwrap_or(Some(0))?;
        if h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        secs += h * 3600 + mi * 60 + sec - offset;
        if !frac.is_empty() {
            let digits: String = frac.chars().take(9).collect();
            nanos = (num(&digits)? * 10i64.pow(9 - digits.len() as u32)) as i32;
        }
    }
    Some(prost_types::Timestamp { seconds: secs, nanos })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_and_datetimes_parse() {
        assert_eq!(parse_datetime("1970-01-01").unwrap().seconds, 0);
        assert_eq!(parse_datetime("2024-03-01").unwrap().seconds, 1_709_251_200);
        assert_eq!(parse_datetime("2024-03-01T12:30:15Z").unwrap().seconds, 1_709_251_200 + 45_015);
        assert_eq!(parse_datetime("2024-03-01T12:30:15+02:00").unwrap().seconds, 1_709_251_200 + 45_015 - 7_200);
        let t = parse_datetime("2024-03-01T00:00:00.25Z").unwrap();
        assert_eq!((t.seconds, t.nanos), (1_709_251_200, 250_000_000));
        for bad in ["2024-13-01", "yesterday", "2024-03-01T25:00:00Z", ""] {
            assert!(parse_datetime(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn rest_filters_become_protobuf() {
        let f = to_pb(&json!({
            "must": [
                {"key": "form_type", "match": {"value": "10-K"}},
                {"key": "fiscal_year", "range": {"gte": 2020, "lte": 2022}},
                {"key": "filing_date", "range": {"gte": "2021-01-01"}},
                {"should": [{"key": "ticker", "match": {"any": ["AAPL", "MSFT"]}}]}
            ],
            "must_not": [{"key": "section", "match": {"except": ["Item 1A"]}}, {"is_empty": {"key": "company"}}]
        }))
        .unwrap();
        assert_eq!((f.must.len(), f.must_not.len(), f.should.len()), (4, 2, 0));
        let Some(ConditionOneOf::Field(fc)) = &f.must[2].condition_one_of else { panic!() };
        assert_eq!(fc.datetime_range.as_ref().unwrap().gte.as_ref().unwrap().seconds, 1_609_459_200);
        assert!(matches!(&f.must[3].condition_one_of, Some(ConditionOneOf::Filter(n)) if n.should.len() == 1));
        for bad in [
            json!({"must": [{"key": "x", "geo_radius": {}}]}),
            json!({"must": [{"key": "x", "range": {"gte": "soon"}}]}),
            json!({"must": [{"match": {"value": 1}}]}),
            json!({"mist": []}),
            json!({"must": [{"key": "x", "match": {"value": 1.5}}]}),
            // Misspelt or extra parts: an error, never a condition quietly left out.
            json!({"must": [{"key": "x", "match": {"value": 1}, "rnage": {"gt": 1}}]}),
            json!({"must": [{"key": "x", "match": {"value": 1, "any": [2]}}]}),
            json!({"must": [{"key": "x", "match": {"valeu": 1}}]}),
            json!({"must": [{"key": "x", "range": {"gte": 1, "about": 2}}]}),
            json!({"must": [{"key": "x"}]}),
        ] {
            let err = to_pb(&bad).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidConfig, "{bad}");
            assert!(err.message.starts_with("Qdrant filter:"), "{}", err.message);
        }
    }
}
