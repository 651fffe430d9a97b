//! `vdb inspect`: what a parquet file holds, from its footer alone (fast on any size).

use serde::Serialize;

use super::mapping::{ColumnMapping, ResolvedMapping};
use super::reader::ParquetSource;
use crate::error::Result;

#[derive(Debug, Clone, Serialize)]
pub struct ColumnInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    pub nullable: bool,
    /// Sum of the row groups' null counts; `None` when a row group has no statistics.
    pub null_count: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub path: String,
    pub size_bytes: u64,
    pub rows: u64,
    pub row_groups: usize,
    pub columns: Vec<ColumnInfo>,
    /// The mapping with defaults filled in, when it fits the file.
    pub mapping: Option<ResolvedMapping>,
    /// Why the mapping does not fit, otherwise ...
    pub mapping_error: Option<String>,
    /// ... its error kind (`missing_column`, `wrong_column_type`, ...) and the column it names.
    pub mapping_error_kind: Option<&'static str>,
    pub mapping_error_column: Option<String>,
}

pub fn inspect(path: &str, mapping: &ColumnMapping) -> Result<Inspection> {
    let src = ParquetSource::open(path)?;
    let meta = &src.metadata;
    let descr = meta.file_metadata().schema_descr();
    let (mapping, mapping_error) = match src.resolve(mapping) {
        Ok(m) => (Some(m), None),
        Err(e) => (None, Some(e)),
    };
    let columns = src
        .schema
        .fields()
        .iter()
        .map(|f| {
            // Leaf columns of this top-level field (one for the flat columns we care about).
            let leaves: Vec<usize> =
                (0..descr.num_columns()).filter(|&i| descr.get_column_root(i).name() == f.name()).collect();
            let null_count = if leaves.len() == 1 {
                meta.row_groups()
                    .iter()
                    .map(|rg| rg.column(leaves[0]).statistics().and_then(|s| s.null_count_opt()))
                    .sum::<Option<u64>>()
            } else {
                None
            };
            ColumnInfo {
                name: f.name().clone(),
                data_type: f.data_type().to_string(),
                nullable: f.is_nullable(),
                null_count,
            }
        })
        .collect();
    Ok(Inspection {
        path: path.to_string(),
        size_bytes: src.size,
        rows: src.num_rows(),
        row_groups: meta.num_row_groups(),
        columns,
        mapping,
        mapping_error_kind: mapping_error.as_ref().map(|e| e.kind.as_str()),
        mapping_error_column: mapping_error.as_ref().and_then(|e| e.column.clone()),
        mapping_error: mapping_error.map(|e| e.message),
    })
}
