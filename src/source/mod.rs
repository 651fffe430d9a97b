//! The parquet source: column mapping, footer inspection, streaming reads into shards.

pub mod inspect;
pub mod mapping;
pub mod reader;
pub mod values;

pub use mapping::ColumnMapping;
