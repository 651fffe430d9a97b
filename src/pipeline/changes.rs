//! What changed between consecutive filings: for each company (the `scope` columns) and each pair
//! of consecutive filings (the `order` column: a year, a fiscal year, a filing date), the distinct
//! sentences that are new, removed and kept, by exact text (the fingerprint every point carries in
//! [`TEXT_KEY`]), with the Jaccard similarity of the two sentence sets and the cosine of the two
//! filings' mean dense vectors (the measures of "Lazy Prices", Cohen, Malloy & Nguyen 2020).
//!
//! Read from the collection, so it describes what the collection holds, whatever order the filings
//! were loaded in, after re-ingests and syncs. One pass over the points (ids, the scope and order
//! fields, the fingerprint and the vector; a page at a time): memory grows with the number of
//! distinct sentences, not with the vectors.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{ErrorKind, Result, VdbError};
use crate::store::{Condition, IndexKind, ScannedPoint, VectorStore, TEXT_KEY};

/// One pair of consecutive filings of one scope.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeRow {
    /// The scope columns and their values (e.g. `{"ticker": "AAPL"}`).
    pub scope: Map<String, Value>,
    /// The earlier filing's order value.
    pub from: Value,
    /// The later filing's order value.
    pub to: Value,
    /// Distinct sentences in the later filing and not in the earlier one.
    pub new: u64,
    /// Distinct sentences in the earlier filing and not in the later one.
    pub removed: u64,
    /// Distinct sentences in both.
    pub kept: u64,
    /// kept / (new + removed + kept).
    pub jaccard: f64,
    /// Cosine of the two filings' mean dense vectors (over their points).
    pub cosine: f64,
}

/// An order value: numbers, or text (dates as YYYY-MM-DD order as text).
#[derive(Debug, Clone, PartialEq)]
enum OrderKey {
    Num(f64),
    Text(String),
}

impl OrderKey {
    fn of(v: &Value) -> Option<OrderKey> {
        match v {
            Value::Number(n) => n.as_f64().map(OrderKey::Num),
            Value::String(s) => Some(OrderKey::Text(s.clone())),
            _ => None,
        }
    }

    fn cmp(&self, other: &OrderKey) -> Ordering {
        match (self, other) {
            (OrderKey::Num(a), OrderKey::Num(b)) => a.total_cmp(b),
            (OrderKey::Text(a), OrderKey::Text(b)) => a.cmp(b),
            (OrderKey::Num(_), OrderKey::Text(_)) => Ordering::Less,
            (OrderKey::Text(_), OrderKey::Num(_)) => Ordering::Greater,
        }
    }
}

/// One filing: its distinct sentences and the sum of its points' vectors.
#[derive(Default)]
struct Filing {
    order: Value,
    texts: HashSet<String>,
    sum: Vec<f64>,
}

/// One scope: its values and its filings, each with its order key.
type Scope = (Map<String, Value>, Vec<(OrderKey, Filing)>);

/// Checks the scope and order columns a changes computation is asked for.
fn check_columns(scope: &[String], order: &str) -> Result<()> {
    if scope.is_empty() {
        return Err(VdbError::new(
            ErrorKind::InvalidConfig,
            "changes need at least one scope column (the company: ticker, cik, ...)",
        ));
    }
    if order.is_empty() || scope.iter().any(|s| s == order || s.is_empty()) {
        return Err(VdbError::new(
            ErrorKind::InvalidConfig,
            format!(
                "changes need an order column (a year or a date) that is not a scope column; got scope {scope:?}, \
                 order {order:?}"
            ),
        ));
    }
    Ok(())
}

/// Reads a point's scope values, order value and text fingerprint, with errors naming the column
/// (and the order column's type kept the same across the points read).
struct Reader<'a> {
    collection: &'a str,
    scope: &'a [String],
    order: &'a str,
    /// Whether the order values are numbers, and the first one seen (for the mixed-types error).
    kind: Option<(bool, Value)>,
}

impl Reader<'_> {
    fn read(&mut self, p: &ScannedPoint) -> Result<(Map<String, Value>, OrderKey, Value, String)> {
        let (collection, order) = (self.collection, self.order);
        let mut scope_values = Map::new();
        for col in self.scope {
            match p.payload.get(col) {
                Some(v) if !v.is_null() => scope_values.insert(col.clone(), v.clone()),
                _ => {
                    return Err(column_error(
                        col,
                        format!(
                            "point {} of collection '{collection}' has no value in the scope column '{col}': every \
                             point needs one (is '{col}' a payload column of every run?)",
                            p.id
                        ),
                    ))
                }
            };
        }
        let value = p.payload.get(order).filter(|v| !v.is_null()).ok_or_else(|| {
            column_error(
                order,
                format!("point {} of collection '{collection}' has no value in the order column '{order}'", p.id),
            )
        })?;
        let key = OrderKey::of(value).ok_or_else(|| {
            column_error(
                order,
                format!("the order column '{order}' holds {value} (point {}): expected a number or a date", p.id),
            )
        })?;
        let numeric = matches!(key, OrderKey::Num(_));
        match &self.kind {
            None => self.kind = Some((numeric, value.clone())),
            Some((n, seen)) if *n != numeric => {
                return Err(column_error(
                    order,
                    format!(
                        "the order column '{order}' mixes numbers and text ({seen} and {value}, point {}): one type \
                         is needed to order the filings",
                        p.id
                    ),
                ))
            }
            _ => {}
        }
        let text = p.payload.get(TEXT_KEY).and_then(Value::as_str).ok_or_else(|| {
            VdbError::new(
                ErrorKind::CollectionMismatch,
                format!("point {} of collection '{collection}' has no {TEXT_KEY} (not written by vdb_core)", p.id),
            )
        })?;
        Ok((scope_values, key, value.clone(), text.to_string()))
    }
}

fn column_error(column: &str, what: String) -> VdbError {
    VdbError::new(ErrorKind::InvalidConfig, what).with_column(column)
}

/// The changes report of `collection` (only the points `filter` matches), rows sorted by scope then
/// order. Every point must have each scope field and the order field (a number or a text, one type
/// across the collection): a point without one, or an order column of mixed types, is an
/// `InvalidConfig` error naming the column.
pub fn changes(
    store: &dyn VectorStore,
    collection: &str,
    scope: &[String],
    order: &str,
    filter: &[Condition],
) -> Result<Vec<ChangeRow>> {
    check_columns(scope, order)?;
    let mut fields: Vec<String> = scope.to_vec();
    fields.push(order.to_string());
    fields.push(TEXT_KEY.to_string());
    // scope values (as JSON text, for a stable order) -> the scope's filings.
    let mut groups: BTreeMap<String, Scope> = BTreeMap::new();
    let mut reader = Reader { collection, scope, order, kind: None };
    store.scan(collection, filter, &fields, true, &mut |points| {
        for p in points {
            let (scope_values, key, value, text) = reader.read(&p)?;
            let group_key = serde_json::to_string(&scope_values).map_err(|e| VdbError::internal(e.to_string()))?;
            let (_, filings) = groups.entry(group_key).or_insert_with(|| (scope_values, Vec::new()));
            let at = match filings.iter().position(|(k, _)| *k == key) {
                Some(i) => i,
                None => {
                    filings.push((key, Filing { order: value.clone(), ..Default::default() }));
                    filings.len() - 1
                }
            };
            let f = &mut filings[at].1;
            f.texts.insert(text);
            if let Some(v) = &p.vector {
                if f.sum.is_empty() {
                    f.sum = vec![0.0; v.len()];
                }
                for (s, x) in f.sum.iter_mut().zip(v) {
                    *s += f64::from(*x);
                }
            }
        }
        Ok(())
    })?;
    let mut rows = Vec::new();
    for (_, (scope_values, mut filings)) in groups {
        filings.sort_by(|a, b| a.0.cmp(&b.0));
        for pair in filings.windows(2) {
            let (a, b) = (&pair[0].1, &pair[1].1);
            let kept = a.texts.intersection(&b.texts).count() as u64;
            let new = b.texts.len() as u64 - kept;
            let removed = a.texts.len() as u64 - kept;
            let union = new + removed + kept;
            rows.push(ChangeRow {
                scope: scope_values.clone(),
                from: a.order.clone(),
                to: b.order.clone(),
                new,
                removed,
                kept,
                jaccard: if union == 0 { 1.0 } else { kept as f64 / union as f64 },
                cosine: cosine(&a.sum, &b.sum),
            });
        }
    }
    Ok(rows)
}

/// Cosine of two sums (the same as of the two means); 0 when one is empty or zero.
fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let (na, nb) = (a.iter().map(|x| x * x).sum::<f64>().sqrt(), b.iter().map(|x| x * x).sum::<f64>().sqrt());
    if na == 0.0 || nb == 0.0 || a.len() != b.len() {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// A JSON value as report text: strings as they are, numbers and the rest in JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Writes the report as a parquet file (atomically): one text column per scope column, `from` and
/// `to` as text, the counts, `jaccard` and `cosine`.
pub fn write_report(rows: &[ChangeRow], scope: &[String], path: &std::path::Path) -> Result<()> {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for col in scope {
        fields.push(Field::new(col, DataType::Utf8, false));
        columns.push(Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.scope.get(col).map(text).unwrap_or_default()),
        )));
    }
    for (name, f) in [("from", (|r: &ChangeRow| text(&r.from)) as fn(&ChangeRow) -> String), ("to", |r| text(&r.to))] {
        fields.push(Field::new(name, DataType::Utf8, false));
        columns.push(Arc::new(StringArray::from_iter_values(rows.iter().map(f))));
    }
    for (name, f) in
        [("new", (|r: &ChangeRow| r.new) as fn(&ChangeRow) -> u64), ("removed", |r| r.removed), ("kept", |r| r.kept)]
    {
        fields.push(Field::new(name, DataType::UInt64, false));
        columns.push(Arc::new(UInt64Array::from_iter_values(rows.iter().map(f))));
    }
    for (name, f) in [("jaccard", (|r: &ChangeRow| r.jaccard) as fn(&ChangeRow) -> f64), ("cosine", |r| r.cosine)] {
        fields.push(Field::new(name, DataType::Float64, false));
        columns.push(Arc::new(Float64Array::from_iter_values(rows.iter().map(f))));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| VdbError::internal(e.to_string()))?;
    let mut bytes = Vec::new();
    let perr = |e: parquet::errors::ParquetError| VdbError::internal(format!("changes report: {e}"));
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut bytes, schema, None).map_err(perr)?;
    w.write(&batch).map_err(perr)?;
    w.close().map_err(perr)?;
    crate::files::write_bytes_atomic(path, &bytes)
}

/// Payload key of every point of a collection whose changes are tracked: the order value (e.g. the
/// fiscal year) of the earliest filing of the point's scope (e.g. its ticker) that holds its exact
/// text. `{"key": "_vdb_first_seen", "match": {"value": 2017}}` finds what was new in 2017.
pub const FIRST_SEEN_KEY: &str = "_vdb_first_seen";

/// What [`update_first_seen`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FirstSeenResult {
    /// Scope values whose points were read.
    pub scopes: u64,
    pub points: u64,
    /// Points whose `_vdb_first_seen` was set or changed.
    pub updated: u64,
}

/// Points per set_payload request.
const SET_PAYLOAD_BATCH: usize = 1000;

/// Sets [`FIRST_SEEN_KEY`] on every point of the scope values `only` (`None`: every scope of the
/// collection) to what the collection now holds: the smallest order value among the points of its
/// scope with its text. Run after every load and sync of those scopes, it stays right whatever order
/// filings arrive in, after re-ingests and after deletions. Only points whose value changes are
/// written; the field gets a payload index (integer for numeric order values, keyword for text).
pub fn update_first_seen(
    store: &dyn VectorStore,
    collection: &str,
    scope: &[String],
    order: &str,
    only: Option<&[Map<String, Value>]>,
) -> Result<FirstSeenResult> {
    check_columns(scope, order)?;
    let filter = match only {
        Some([]) => return Ok(FirstSeenResult::default()),
        Some(values) => vec![Condition::Qdrant {
            filter: serde_json::json!({ "should": values.iter().map(|m| {
                let must: Vec<Value> = m.iter().map(|(k, v)| serde_json::json!({"key": k, "match": {"value": v}})).collect();
                serde_json::json!({ "must": must })
            }).collect::<Vec<_>>() }),
        }],
        None => Vec::new(),
    };
    let mut fields: Vec<String> = scope.to_vec();
    fields.extend([order.to_string(), TEXT_KEY.to_string(), FIRST_SEEN_KEY.to_string()]);
    // scope (JSON text) -> (text -> earliest (key, value)), and the points with their text and value.
    type Earliest = std::collections::HashMap<String, (OrderKey, Value)>;
    type Members = Vec<(uuid::Uuid, String, Option<Value>)>;
    let mut groups: BTreeMap<String, (Earliest, Members)> = BTreeMap::new();
    let mut reader = Reader { collection, scope, order, kind: None };
    let mut result = FirstSeenResult::default();
    store.scan(collection, &filter, &fields, false, &mut |points| {
        for p in points {
            let (scope_values, key, value, text) = reader.read(&p)?;
            let group_key = serde_json::to_string(&scope_values).map_err(|e| VdbError::internal(e.to_string()))?;
            let (earliest, members) = groups.entry(group_key).or_default();
            match earliest.get(&text) {
                Some((k, _)) if k.cmp(&key) != Ordering::Greater => {}
                _ => {
                    earliest.insert(text.clone(), (key, value));
                }
            }
            members.push((p.id, text, p.payload.get(FIRST_SEEN_KEY).cloned()));
            result.points += 1;
        }
        Ok(())
    })?;
    result.scopes = groups.len() as u64;
    let mut updates: BTreeMap<String, (Value, Vec<uuid::Uuid>)> = BTreeMap::new();
    for (earliest, members) in groups.into_values() {
        for (id, text, current) in members {
            let want = &earliest[&text].1;
            if current.as_ref() != Some(want) {
                let k = want.to_string();
                updates.entry(k).or_insert_with(|| (want.clone(), Vec::new())).1.push(id);
            }
        }
    }
    if let Some((numeric, _)) = &reader.kind {
        let kind = if *numeric { IndexKind::Integer } else { IndexKind::Keyword };
        store.create_payload_index(collection, FIRST_SEEN_KEY, kind)?;
    }
    for (value, ids) in updates.into_values() {
        let payload: Map<String, Value> = [(FIRST_SEEN_KEY.to_string(), value)].into_iter().collect();
        for chunk in ids.chunks(SET_PAYLOAD_BATCH) {
            store.set_payload(collection, chunk, &payload)?;
            result.updated += chunk.len() as u64;
        }
    }
    Ok(result)
}

/// The scope values (e.g. tickers) of the points of a run, read back from the collection: what a
/// load or sync of the run may have changed, so what [`update_first_seen`] must look at again.
pub fn scopes_of_run(
    run: &crate::handoff::RunDir,
    store: &dyn VectorStore,
    collection: &str,
    scope: &[String],
) -> Result<Vec<Map<String, Value>>> {
    use arrow::array::Array;

    use crate::handoff::shard::{self, ID};
    let m = crate::handoff::Manifest::read(run)?;
    let mut seen: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for s in &m.shards {
        let batch = shard::read_shard(&run.shard_path(s.index), Some(&s.checksum))?;
        let ids = shard::string_column(&batch, ID)?;
        let ids: Vec<uuid::Uuid> = (0..ids.len()).filter_map(|i| uuid::Uuid::parse_str(ids.value(i)).ok()).collect();
        for chunk in ids.chunks(SET_PAYLOAD_BATCH) {
            for hit in store.retrieve(collection, chunk)? {
                let values: Map<String, Value> =
                    scope.iter().filter_map(|c| hit.payload.get(c).map(|v| (c.clone(), v.clone()))).collect();
                if values.len() == scope.len() {
                    let key = serde_json::to_string(&values).map_err(|e| VdbError::internal(e.to_string()))?;
                    seen.entry(key).or_insert(values);
                }
            }
        }
    }
    Ok(seen.into_values().collect())
}

/// [`update_first_seen`] for the scopes a run loaded (see [`scopes_of_run`]).
pub fn update_first_seen_for_run(
    run: &crate::handoff::RunDir,
    store: &dyn VectorStore,
    collection: &str,
    scope: &[String],
    order: &str,
) -> Result<FirstSeenResult> {
    check_columns(scope, order)?;
    let started = std::time::Instant::now();
    let scopes = scopes_of_run(run, store, collection, scope)?;
    let r = update_first_seen(store, collection, scope, order, Some(&scopes))?;
    log::info!(
        "{FIRST_SEEN_KEY}: {} points of {} scope value(s) read, {} set, in {:.1}s",
        r.points,
        r.scopes,
        r.updated,
        started.elapsed().as_secs_f64()
    );
    Ok(r)
}

/// Writes [`FIRST_SEEN_KEY`] into the payloads of points about to be loaded: for each point, the
/// smallest order value among its own, those of the points of the same scope and text in `points`,
/// and those the collection already holds for them. With filings loaded in order this is final;
/// [`update_first_seen`] after the load corrects what a later load or a sync changes. Points
/// without a scope or order value are left alone ([`update_first_seen`] names the column).
pub fn with_first_seen(
    store: &dyn VectorStore,
    collection: &str,
    scope: &[String],
    order: &str,
    points: &mut [crate::store::PointRecord],
) -> Result<()> {
    check_columns(scope, order)?;
    // (scope as JSON text, scope values, order key, order value, text fingerprint) of a payload.
    type Keys = (String, Map<String, Value>, OrderKey, Value, String);
    let read = |payload: &Map<String, Value>| -> Option<Keys> {
        let values: Map<String, Value> = scope
            .iter()
            .map(|c| payload.get(c).filter(|v| !v.is_null()).map(|v| (c.clone(), v.clone())))
            .collect::<Option<_>>()?;
        let value = payload.get(order)?;
        let key = OrderKey::of(value)?;
        let text = payload.get(TEXT_KEY)?.as_str()?.to_string();
        Some((serde_json::to_string(&values).ok()?, values, key, value.clone(), text))
    };
    let mut best: std::collections::HashMap<(String, String), (OrderKey, Value)> = Default::default();
    let mut texts: BTreeMap<String, (Map<String, Value>, HashSet<String>)> = BTreeMap::new();
    let offer = |best: &mut std::collections::HashMap<(String, String), (OrderKey, Value)>,
                 k: (String, String),
                 key: OrderKey,
                 value: Value| match best.get(&k) {
        Some((have, _)) if have.cmp(&key) != Ordering::Greater => {}
        _ => {
            best.insert(k, (key, value));
        }
    };
    for p in points.iter() {
        if let Some((sk, values, key, value, text)) = read(&p.payload) {
            texts.entry(sk.clone()).or_insert_with(|| (values, HashSet::new())).1.insert(text.clone());
            offer(&mut best, (sk, text), key, value);
        }
    }
    for (sk, (values, set)) in &texts {
        let all: Vec<&String> = set.iter().collect();
        for chunk in all.chunks(SET_PAYLOAD_BATCH) {
            let mut must: Vec<Value> =
                values.iter().map(|(k, v)| serde_json::json!({"key": k, "match": {"value": v}})).collect();
            must.push(serde_json::json!({"key": TEXT_KEY, "match": {"any": chunk}}));
            let filter = [Condition::Qdrant { filter: serde_json::json!({ "must": must }) }];
            let fields = [TEXT_KEY.to_string(), FIRST_SEEN_KEY.to_string(), order.to_string()];
            store.scan(collection, &filter, &fields, false, &mut |found| {
                for q in found {
                    let Some(text) = q.payload.get(TEXT_KEY).and_then(Value::as_str) else { continue };
                    for v in [q.payload.get(FIRST_SEEN_KEY), q.payload.get(order)].into_iter().flatten() {
                        if let Some(key) = OrderKey::of(v) {
                            offer(&mut best, (sk.clone(), text.to_string()), key, v.clone());
                        }
                    }
                }
                Ok(())
            })?;
        }
    }
    for p in points.iter_mut() {
        if let Some((sk, _, _, _, text)) = read(&p.payload) {
            if let Some((_, v)) = best.get(&(sk, text)) {
                p.payload.insert(FIRST_SEEN_KEY.to_string(), v.clone());
            }
        }
    }
    Ok(())
}

/// Records in the run's manifest that its loads write `_vdb_first_seen` for `(scope, order)`
/// (`None`: leaves the manifest as it is).
pub fn track(run: &crate::handoff::RunDir, changes: Option<&(Vec<String>, String)>) -> Result<()> {
    let Some((scope, order)) = changes else { return Ok(()) };
    check_columns(scope, order)?;
    crate::handoff::Manifest::update(run, |m| {
        m.changes = Some((scope.clone(), order.clone()));
        Ok(())
    })
    .map(drop)
}
