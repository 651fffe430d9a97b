//! Step 1, plan: validate the parquet, split the valid rows into shard files, write the manifest.
//!
//! Idempotent: re-planning the same input into the same run directory keeps finished work (shards
//! whose files still match their checksums); a different input, mapping or shard size is refused
//! with a clear message instead of mixing results.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow::compute::{concat_batches, filter};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{ErrorKind, Result, VdbError};
use crate::handoff::ids::{id_from_text, id_from_values, text_hash, TextHash};
use crate::handoff::manifest::{InputInfo, Skipped, FORMAT};
use crate::handoff::shard::{self, EMBED, ID, PLANNED_COLUMNS, ROW, TEXT, TEXT_HASH, VECTOR_SHARD};
use crate::handoff::{Manifest, RunDir, ShardEntry, ShardState};
use crate::progress::{peak_rss_mib, Progress};
use crate::source::mapping::{ColumnMapping, ResolvedMapping};
use crate::source::reader::ParquetSource;
use crate::source::values::{formatter, normalize};

#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub input: PathBuf,
    pub mapping: ColumnMapping,
    pub shard_rows: usize,
    /// Null/blank text and duplicate ids are errors instead of being skipped and counted.
    pub strict: bool,
    /// Embed each distinct text once (and take vectors the collection already has); off: every
    /// row is embedded (`VDB_REUSE=0`, for comparisons).
    pub reuse: bool,
}

/// The small summary a DAG passes through XCom.
#[derive(Debug, Clone, Serialize)]
pub struct PlanSummary {
    pub run_dir: String,
    pub rows_read: u64,
    pub rows_valid: u64,
    /// Distinct texts among the valid rows (what the embed steps compute at most).
    pub distinct_texts: u64,
    pub skipped: Skipped,
    pub shards: Vec<usize>,
    /// True when an existing plan of the same input was reused.
    pub resumed: bool,
    pub seconds: f64,
}

fn summary(run: &RunDir, m: &Manifest, resumed: bool, seconds: f64) -> PlanSummary {
    PlanSummary {
        run_dir: run.path.display().to_string(),
        rows_read: m.rows_read,
        rows_valid: m.rows_valid,
        distinct_texts: m.distinct_texts,
        skipped: m.skipped.clone(),
        shards: m.shards.iter().map(|s| s.index).collect(),
        resumed,
        seconds,
    }
}

/// Plans `opts.input` into `run`: reads the input's schema and mapping, keeps an existing plan of
/// the same input ([`check_same_plan`]; its shards if intact), else splits the valid rows into
/// shard files ([`split`]) and writes the manifest ([`manifest`]).
pub fn plan(run: &RunDir, opts: &PlanOptions, progress: &dyn Progress) -> Result<PlanSummary> {
    let started = Instant::now();
    if opts.shard_rows == 0 {
        return Err(VdbError::new(ErrorKind::InvalidConfig, "shard_rows must be at least 1"));
    }
    let mut source = ParquetSource::open(&opts.input)?;
    let mapping = source.resolve(&opts.mapping)?;
    let input = InputInfo::of(&opts.input)?;
    run.create()?;
    let _plan_lock = run.lock("plan", Duration::from_secs(600))?;

    if let Some(old) = Manifest::try_read(run)? {
        check_same_plan(run, opts, &old, &input, &mapping)?;
        if old.shards.iter().all(|s| shard::checksum_matches(&run.shard_path(s.index), &s.checksum)) {
            return Ok(summary(run, &old, true, started.elapsed().as_secs_f64()));
        }
        // Some planned shard file is missing or damaged: split again (deterministic), below,
        // keeping the state of every shard whose content is unchanged.
    }

    let split = split(run, opts, &mut source, &mapping, progress)?;
    let mut m = manifest(run, opts, input, mapping, split)?;
    let seconds = started.elapsed().as_secs_f64();
    m.add_step("plan", seconds, m.rows_read, peak_rss_mib());
    {
        let _lock = run.lock("manifest", crate::handoff::manifest::LOCK_TIMEOUT)?;
        m.write(run)?;
    }
    Ok(summary(run, &m, false, seconds))
}

/// An existing plan in `run` must be of the same input, mapping and options.
fn check_same_plan(
    run: &RunDir,
    opts: &PlanOptions,
    old: &Manifest,
    input: &InputInfo,
    mapping: &ResolvedMapping,
) -> Result<()> {
    let same = old.input.fingerprint == input.fingerprint
        && old.input.size == input.size
        && old.mapping == *mapping
        && old.shard_rows == opts.shard_rows
        && old.strict == opts.strict
        && old.reuse == opts.reuse;
    if same {
        return Ok(());
    }
    Err(VdbError::new(
        ErrorKind::RunMismatch,
        format!(
            "run directory {} was planned for {} (fingerprint {}, shard_rows {}, text column {:?}); \
             it cannot be reused for {} (fingerprint {}, shard_rows {}, text column {:?}). \
             Use a new run directory, or delete this one to start over.",
            run.path.display(),
            old.input.path,
            &old.input.fingerprint[..12],
            old.shard_rows,
            old.mapping.text,
            input.path,
            &input.fingerprint[..12],
            opts.shard_rows,
            mapping.text
        ),
    )
    .with_file(run.manifest_path()))
}

/// What splitting the input found: the shards written and the counts of the manifest.
struct Split {
    shards: Vec<ShardEntry>,
    rows_read: u64,
    rows_valid: u64,
    distinct_texts: u64,
    skipped: Skipped,
}

/// Reads the input batch by batch, keeps the valid rows ([`RowPlanner::planned_columns`]) and cuts them
/// into shard files.
fn split(
    run: &RunDir,
    opts: &PlanOptions,
    source: &mut ParquetSource,
    mapping: &ResolvedMapping,
    progress: &dyn Progress,
) -> Result<Split> {
    progress.start("plan", source.num_rows());
    let stream = source.stream(mapping)?;
    let mut splitter = Splitter::new(run, mapping, opts.shard_rows);
    let mut planner = RowPlanner::new(opts, mapping);
    for item in stream {
        let (first_row, batch) = item?;
        splitter.push(planner.planned_columns(first_row, &batch)?)?;
        progress.advance(batch.num_rows() as u64);
    }
    let shards = splitter.finish()?;
    progress.finish();
    let rows_valid: u64 = shards.iter().map(|s| s.rows).sum();
    let RowPlanner { rows_read, skipped, provider, .. } = planner;
    if rows_valid == 0 {
        return Err(VdbError::new(
            ErrorKind::NoRows,
            format!(
                "{}: nothing to ingest: {rows_read} rows read, none valid (null text {}, empty text {}, duplicate id {})",
                opts.input.display(),
                skipped.null_text,
                skipped.empty_text,
                skipped.duplicate_id
            ),
        )
        .with_file(&opts.input));
    }
    let distinct_texts = if opts.reuse { provider.len() as u64 } else { rows_valid };
    Ok(Split { shards, rows_read, rows_valid, distinct_texts, skipped })
}

/// The new manifest: the split's shards and counts, keeping what an earlier plan of the same input
/// recorded (the progress of every shard whose content is unchanged, model, target, steps).
fn manifest(
    run: &RunDir,
    opts: &PlanOptions,
    input: InputInfo,
    mapping: ResolvedMapping,
    split: Split,
) -> Result<Manifest> {
    let old = Manifest::try_read(run)?;
    let shards = split
        .shards
        .into_iter()
        .map(|mut s| {
            // Keep the progress of a shard whose content is unchanged (re-split after damage).
            if let Some(prev) = old.as_ref().and_then(|m| m.shards.get(s.index)) {
                if prev.checksum == s.checksum {
                    s = prev.clone();
                }
            }
            s
        })
        .collect();
    Ok(Manifest {
        format: FORMAT,
        vdb_core_version: crate::VERSION.to_string(),
        input,
        requested_mapping: opts.mapping.clone(),
        mapping,
        strict: opts.strict,
        reuse: opts.reuse,
        distinct_texts: split.distinct_texts,
        shard_rows: opts.shard_rows,
        rows_read: split.rows_read,
        rows_valid: split.rows_valid,
        skipped: split.skipped,
        shards,
        model: old.as_ref().and_then(|m| m.model.clone()),
        target: old.as_ref().and_then(|m| m.target.clone()),
        verified: false,
        synced: None,
        rebuild: old.as_ref().and_then(|m| m.rebuild.clone()),
        sparse: old.as_ref().and_then(|m| m.sparse),
        changes: old.as_ref().and_then(|m| m.changes.clone()),
        steps: old.map(|m| m.steps).unwrap_or_default(),
    })
}

/// The rows read so far: their ids (to find duplicates), text fingerprints (to embed each
/// distinct text once) and counts.
struct RowPlanner<'a> {
    opts: &'a PlanOptions,
    mapping: &'a ResolvedMapping,
    /// The input's path, as error messages name it.
    file: String,
    seen: HashSet<Uuid>,
    /// Fingerprint -> the shard that provides its vector (its first occurrence): fixed-size keys,
    /// so memory grows with the number of distinct texts, not their length.
    provider: HashMap<TextHash, u32>,
    valid: u64,
    skipped: Skipped,
    rows_read: u64,
}

impl<'a> RowPlanner<'a> {
    fn new(opts: &'a PlanOptions, mapping: &'a ResolvedMapping) -> Self {
        RowPlanner {
            opts,
            mapping,
            file: opts.input.display().to_string(),
            seen: HashSet::new(),
            provider: HashMap::new(),
            valid: 0,
            skipped: Skipped::default(),
            rows_read: 0,
        }
    }

    /// The planned columns ([`PLANNED_COLUMNS`], then the payload columns) of the valid rows of
    /// `batch`, whose first row is row `first_row` of the input.
    fn planned_columns(&mut self, first_row: u64, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let n = batch.num_rows();
        self.rows_read += n as u64;
        let text = normalize(batch.column_by_name(&self.mapping.text).expect("projected"))?;
        let text = text.as_string::<i32>();
        let id_cols: Vec<ArrayRef> = self
            .mapping
            .id_columns
            .iter()
            .map(|c| normalize(batch.column_by_name(c).expect("projected")))
            .collect::<Result<_>>()?;
        let fmts = id_cols.iter().map(|a| formatter(a.as_ref())).collect::<Result<Vec<_>>>()?;
        let mut keep = Vec::with_capacity(n);
        let mut ids = Vec::with_capacity(n);
        let mut rows = Vec::with_capacity(n);
        let mut hashes: Vec<TextHash> = Vec::with_capacity(n);
        let mut vector_shard: Vec<u32> = Vec::with_capacity(n);
        let mut embed: Vec<bool> = Vec::with_capacity(n);
        let mut vals: Vec<String> = Vec::with_capacity(id_cols.len());
        for i in 0..n {
            let row = first_row + i as u64;
            let id = if self.text_is_valid(text, i, row)? {
                let id = if id_cols.is_empty() {
                    id_from_text(text.value(i))
                } else {
                    self.check_ids(&id_cols, i, row)?;
                    vals.clear();
                    vals.extend(fmts.iter().map(|f| f.value(i).to_string()));
                    id_from_values(&vals)
                };
                self.first_with_id(id, id_cols.is_empty(), row)?.then_some(id)
            } else {
                None
            };
            keep.push(id.is_some());
            let Some(id) = id else { continue };
            ids.push(id.to_string());
            rows.push(row);
            let (h, from, own) = self.fingerprint(text.value(i))?;
            hashes.push(h);
            vector_shard.push(from);
            embed.push(own);
        }
        let mask = BooleanArray::from(keep);
        let text_kept = filter(text, &mask).map_err(|e| VdbError::internal(e.to_string()))?;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(UInt64Array::from(rows)),
            text_kept,
            Arc::new(shard::hash_array(&hashes)?),
            Arc::new(UInt32Array::from(vector_shard)),
            Arc::new(BooleanArray::from(embed)),
        ];
        for c in &self.mapping.payload_columns {
            let col = normalize(batch.column_by_name(c).expect("projected"))?;
            columns.push(filter(col.as_ref(), &mask).map_err(|e| VdbError::internal(e.to_string()))?);
        }
        Ok(columns)
    }

    /// Whether row `i` has text; null, empty and whitespace-only texts are counted and skipped
    /// (an error in strict mode).
    fn text_is_valid(&mut self, text: &StringArray, i: usize, row: u64) -> Result<bool> {
        let bad = if text.is_null(i) {
            self.skipped.null_text += 1;
            "null"
        } else if text.value(i).trim().is_empty() {
            self.skipped.empty_text += 1;
            if text.value(i).is_empty() {
                "empty"
            } else {
                "whitespace-only"
            }
        } else {
            return Ok(true);
        };
        if self.opts.strict {
            return Err(VdbError::new(
                ErrorKind::EmptyText,
                format!("{}: row {row}: text column {:?} is {bad} (strict mode)", self.file, self.mapping.text),
            )
            .with_file(&self.opts.input)
            .with_row(row)
            .with_column(&self.mapping.text));
        }
        Ok(false)
    }

    /// Every id column of row `i` has a value (an error otherwise).
    fn check_ids(&self, id_cols: &[ArrayRef], i: usize, row: u64) -> Result<()> {
        let Some(k) = id_cols.iter().position(|a| a.is_null(i)) else {
            return Ok(());
        };
        let col = &self.mapping.id_columns[k];
        Err(VdbError::new(
            ErrorKind::NullId,
            format!(
                "{}: row {row}: id column {col:?} is null; every id column needs a value in every row \
                 (choose other id columns, or none to derive ids from the text)",
                self.file
            ),
        )
        .with_file(&self.opts.input)
        .with_row(row)
        .with_column(col))
    }

    /// Whether `id` is new; a duplicate is counted and skipped (an error in strict mode).
    fn first_with_id(&mut self, id: Uuid, from_text: bool, row: u64) -> Result<bool> {
        if self.seen.insert(id) {
            return Ok(true);
        }
        self.skipped.duplicate_id += 1;
        if self.opts.strict {
            let key = if from_text { "text".to_string() } else { self.mapping.id_columns.join(", ") };
            return Err(VdbError::new(
                ErrorKind::DuplicateId,
                format!("{}: row {row}: duplicate id (same {key} as an earlier row) (strict mode)", self.file),
            )
            .with_file(&self.opts.input)
            .with_row(row));
        }
        Ok(false)
    }

    /// The next valid row's text fingerprint, the shard that provides its vector and whether it
    /// is that shard (its text's first occurrence, or every row without reuse).
    fn fingerprint(&mut self, text: &str) -> Result<(TextHash, u32, bool)> {
        let h = text_hash(text);
        let shard = u32::try_from(self.valid / self.opts.shard_rows as u64).map_err(|_| {
            VdbError::new(
                ErrorKind::InvalidConfig,
                format!("more than 2^32 shards: raise shard_rows ({})", self.opts.shard_rows),
            )
        })?;
        self.valid += 1;
        let (from, own) = if self.opts.reuse {
            match self.provider.entry(h) {
                Entry::Vacant(v) => (*v.insert(shard), true),
                Entry::Occupied(o) => (*o.get(), false),
            }
        } else {
            (shard, true)
        };
        Ok((h, from, own))
    }
}

/// Accumulates filtered rows and cuts them into shard files of exactly `shard_rows` rows (the
/// last one smaller).
struct Splitter<'a> {
    run: &'a RunDir,
    schema: Option<SchemaRef>,
    mapping: &'a ResolvedMapping,
    shard_rows: usize,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    shards: Vec<ShardEntry>,
}

impl<'a> Splitter<'a> {
    fn new(run: &'a RunDir, mapping: &'a ResolvedMapping, shard_rows: usize) -> Self {
        Splitter { run, schema: None, mapping, shard_rows, pending: vec![], pending_rows: 0, shards: vec![] }
    }

    fn push(&mut self, columns: Vec<ArrayRef>) -> Result<()> {
        let schema = self
            .schema
            .get_or_insert_with(|| {
                let mut fields = vec![
                    Field::new(ID, DataType::Utf8, false),
                    Field::new(ROW, DataType::UInt64, false),
                    Field::new(TEXT, DataType::Utf8, true),
                    Field::new(TEXT_HASH, DataType::FixedSizeBinary(16), false),
                    Field::new(VECTOR_SHARD, DataType::UInt32, false),
                    Field::new(EMBED, DataType::Boolean, false),
                ];
                for (c, a) in self.mapping.payload_columns.iter().zip(&columns[PLANNED_COLUMNS.len()..]) {
                    fields.push(Field::new(c, a.data_type().clone(), true));
                }
                Arc::new(Schema::new(fields))
            })
            .clone();
        let batch = RecordBatch::try_new(schema, columns).map_err(|e| VdbError::internal(e.to_string()))?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.pending_rows += batch.num_rows();
        self.pending.push(batch);
        while self.pending_rows >= self.shard_rows {
            self.cut(self.shard_rows)?;
        }
        Ok(())
    }

    fn cut(&mut self, rows: usize) -> Result<()> {
        let schema = self.pending[0].schema();
        let all = concat_batches(&schema, &self.pending).map_err(|e| VdbError::internal(e.to_string()))?;
        let head = all.slice(0, rows);
        let rest = all.slice(rows, all.num_rows() - rows);
        let index = self.shards.len();
        let path = self.run.shard_path(index);
        let checksum = shard::write_shard(&path, &head)?;
        let first_row = head.column(1).as_primitive::<arrow::datatypes::UInt64Type>().value(0);
        let texts = head.column(5).as_boolean().true_count() as u64;
        self.shards.push(ShardEntry {
            index,
            rows: rows as u64,
            first_row,
            checksum,
            state: ShardState::Planned,
            embedded_checksum: None,
            loaded_points: None,
            new_points: None,
            texts,
            texts_embedded: None,
            unchanged_points: None,
            updated_points: None,
            sparse_points: None,
        });
        self.pending_rows = rest.num_rows();
        self.pending = if rest.num_rows() > 0 { vec![rest] } else { vec![] };
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<ShardEntry>> {
        if self.pending_rows > 0 {
            self.cut(self.pending_rows)?;
        }
        Ok(self.shards)
    }
}
