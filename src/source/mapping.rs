//! Which column is the text, which make the point id, which go into the payload.

use arrow::datatypes::{DataType, Schema};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, Result, VdbError};

/// Defaults fit the SEC sentences schema (see `vdb sample-data`); every name is overridable.
pub const DEFAULT_TEXT_COLUMN: &str = "sentence";
pub const DEFAULT_ID_COLUMNS: &[&str] = &["filing_id", "sentence_index"];

/// The mapping as the user gives it (unset = defaults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnMapping {
    /// Text to embed. Default `sentence`.
    pub text: Option<String>,
    /// Columns whose values make the stable point id. Unset: `filing_id` + `sentence_index` when
    /// both exist, else the row's text. An empty list means "the row's text".
    pub id_columns: Option<Vec<String>>,
    /// Columns copied into the Qdrant payload. Unset: every column but the text (the text is
    /// always stored, under the key `text`).
    pub payload_columns: Option<Vec<String>>,
}

/// A mapping checked against a file's schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedMapping {
    pub text: String,
    /// Empty = ids from text.
    pub id_columns: Vec<String>,
    pub payload_columns: Vec<String>,
}

impl ResolvedMapping {
    /// Every column the reader must project, without repeats, in schema order.
    pub fn needed_columns(&self, schema: &Schema) -> Vec<usize> {
        schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                let n = f.name();
                *n == self.text || self.id_columns.contains(n) || self.payload_columns.contains(n)
            })
            .map(|(i, _)| i)
            .collect()
    }
}

/// Text columns may be utf8, large utf8, utf8 view, or a dictionary of those.
pub fn is_text_type(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_text_type(v),
        _ => false,
    }
}

/// Id and payload columns must be scalars we can print and store.
pub fn is_scalar_type(t: &DataType) -> bool {
    use DataType::*;
    match t {
        Boolean
        | Int8
        | Int16
        | Int32
        | Int64
        | UInt8
        | UInt16
        | UInt32
        | UInt64
        | Float16
        | Float32
        | Float64
        | Utf8
        | LargeUtf8
        | Utf8View
        | Date32
        | Date64
        | Timestamp(_, _)
        | Decimal128(_, _)
        | Decimal256(_, _) => true,
        Dictionary(_, v) => is_scalar_type(v),
        _ => false,
    }
}

impl ColumnMapping {
    /// Check the mapping against `schema` (of `file`, for messages) and fill in defaults.
    pub fn resolve(&self, schema: &Schema, file: &str) -> Result<ResolvedMapping> {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let missing = |col: &str, role: &str| {
            VdbError::new(
                ErrorKind::MissingColumn,
                format!("{file}: {role} column {col:?} does not exist; the file has columns: {}", names.join(", ")),
            )
            .with_file(file)
            .with_column(col)
        };
        let text = self.text.clone().unwrap_or_else(|| DEFAULT_TEXT_COLUMN.to_string());
        let field = schema.field_with_name(&text).map_err(|_| missing(&text, "text"))?;
        if !is_text_type(field.data_type()) {
            return Err(VdbError::new(
                ErrorKind::WrongColumnType,
                format!(
                    "{file}: text column {text:?} has type {}; expected a string column (utf8, large_utf8 or dictionary of strings)",
                    field.data_type()
                ),
            )
            .with_file(file)
            .with_column(&text));
        }
        let id_columns = match &self.id_columns {
            Some(cols) => cols.clone(),
            None if DEFAULT_ID_COLUMNS.iter().all(|c| names.contains(c)) => {
                DEFAULT_ID_COLUMNS.iter().map(|s| s.to_string()).collect()
            }
            None => Vec::new(),
        };
        let payload_columns = match &self.payload_columns {
            Some(cols) => cols.clone(),
            None => names
                .iter()
                .filter(|n| **n != text)
                .filter(|n| is_scalar_type(schema.field_with_name(n).unwrap().data_type()))
                .map(|s| s.to_string())
                .collect(),
        };
        for (cols, role) in [(&id_columns, "id"), (&payload_columns, "payload")] {
            for col in cols {
                let f = schema.field_with_name(col).map_err(|_| missing(col, role))?;
                if !is_scalar_type(f.data_type()) {
                    return Err(VdbError::new(
                        ErrorKind::WrongColumnType,
                        format!(
                            "{file}: {role} column {col:?} has type {}; expected a scalar (string, integer, float, bool, date or timestamp)",
                            f.data_type()
                        ),
                    )
                    .with_file(file)
                    .with_column(col));
                }
            }
        }
        if payload_columns.iter().any(|c| c == "text" || c == "id" || c == "row" || c == "embedding") {
            return Err(VdbError::new(
                ErrorKind::InvalidConfig,
                format!("{file}: payload columns may not be named text, id, row or embedding (reserved)"),
            )
            .with_file(file));
        }
        Ok(ResolvedMapping { text, id_columns, payload_columns })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;

    fn sec_schema() -> Schema {
        Schema::new(vec![
            Field::new("filing_id", DataType::Utf8, false),
            Field::new("cik", DataType::Int64, false),
            Field::new("company", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), false),
            Field::new("sentence_index", DataType::Int32, false),
            Field::new("sentence", DataType::LargeUtf8, true),
            Field::new("tags", DataType::List(std::sync::Arc::new(Field::new("item", DataType::Utf8, true))), true),
        ])
    }

    #[test]
    fn defaults_fit_the_sec_schema() {
        let m = ColumnMapping::default().resolve(&sec_schema(), "f.parquet").unwrap();
        assert_eq!(m.text, "sentence");
        assert_eq!(m.id_columns, vec!["filing_id", "sentence_index"]);
        // Non-scalar `tags` is left out of the default payload; text is not in it either.
        assert_eq!(m.payload_columns, vec!["filing_id", "cik", "company", "sentence_index"]);
        assert_eq!(m.needed_columns(&sec_schema()), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn overrides_and_text_ids_when_default_id_columns_are_absent() {
        let schema =
            Schema::new(vec![Field::new("body", DataType::Utf8, false), Field::new("k", DataType::Utf8, false)]);
        let m = ColumnMapping { text: Some("body".into()), ..Default::default() }.resolve(&schema, "f").unwrap();
        assert!(m.id_columns.is_empty());
        assert_eq!(m.payload_columns, vec!["k"]);
    }

    #[test]
    fn missing_column_lists_what_exists() {
        let e = ColumnMapping { text: Some("body".into()), ..Default::default() }
            .resolve(&sec_schema(), "data/x.parquet")
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::MissingColumn);
        assert_eq!(e.column.as_deref(), Some("body"));
        assert!(e.message.contains("data/x.parquet") && e.message.contains("filing_id, cik"), "{}", e.message);
        let e = ColumnMapping { payload_columns: Some(vec!["nope".into()]), ..Default::default() }
            .resolve(&sec_schema(), "f")
            .unwrap_err();
        assert_eq!(e.column.as_deref(), Some("nope"));
    }

    #[test]
    fn wrong_types_say_what_was_expected() {
        let e =
            ColumnMapping { text: Some("cik".into()), ..Default::default() }.resolve(&sec_schema(), "f").unwrap_err();
        assert_eq!(e.kind, ErrorKind::WrongColumnType);
        assert!(e.message.contains("Int64") && e.message.contains("expected a string"), "{}", e.message);
        let e = ColumnMapping { payload_columns: Some(vec!["tags".into()]), ..Default::default() }
            .resolve(&sec_schema(), "f")
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::WrongColumnType);
    }
}
