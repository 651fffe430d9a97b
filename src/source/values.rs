//! Arrow values to the forms we store: canonical strings (ids) and JSON (payloads).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::*;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Number, Value};

use crate::error::{Result, VdbError};

/// Decode dictionaries and unify string flavours to utf8, decimals to float64, so shards have
/// plain columns whatever the source encoding.
pub fn normalize(array: &ArrayRef) -> Result<ArrayRef> {
    let target = match array.data_type() {
        DataType::Dictionary(_, v) => match v.as_ref() {
            DataType::LargeUtf8 | DataType::Utf8View | DataType::Utf8 => DataType::Utf8,
            other => other.clone(),
        },
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::Decimal128(_, _) | DataType::Decimal256(_, _) | DataType::Float16 => DataType::Float64,
        _ => return Ok(Arc::clone(array)),
    };
    let out =
        cast(array, &target).map_err(|e| VdbError::internal(format!("cannot convert {}: {e}", array.data_type())))?;
    // A dictionary of large strings decodes to large strings first; bring it down to utf8.
    if matches!(out.data_type(), DataType::Dictionary(_, _) | DataType::LargeUtf8 | DataType::Utf8View) {
        return normalize(&out);
    }
    Ok(out)
}

/// Display strings of a (normalized) column, for id keys. Nulls become "".
pub fn formatter(array: &dyn Array) -> Result<ArrayFormatter<'_>> {
    ArrayFormatter::try_new(array, &FormatOptions::default().with_null(""))
        .map_err(|e| VdbError::internal(format!("cannot format {}: {e}", array.data_type())))
}

/// One cell as JSON; `None` for null (the key is left out of the payload).
pub fn json_value(array: &dyn Array, i: usize, fmt: &ArrayFormatter<'_>) -> Option<Value> {
    if array.is_null(i) {
        return None;
    }
    let v = match array.data_type() {
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        DataType::Int8 => Value::from(array.as_primitive::<Int8Type>().value(i)),
        DataType::Int16 => Value::from(array.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 => Value::from(array.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => Value::from(array.as_primitive::<UInt8Type>().value(i)),
        DataType::UInt16 => Value::from(array.as_primitive::<UInt16Type>().value(i)),
        DataType::UInt32 => Value::from(array.as_primitive::<UInt32Type>().value(i)),
        DataType::UInt64 => Value::from(array.as_primitive::<UInt64Type>().value(i)),
        DataType::Float32 => Number::from_f64(array.as_primitive::<Float32Type>().value(i) as f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        DataType::Float64 => {
            Number::from_f64(array.as_primitive::<Float64Type>().value(i)).map(Value::Number).unwrap_or(Value::Null)
        }
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(i).to_string()),
        // Dates print as YYYY-MM-DD, timestamps as RFC 3339: both sort and range-filter as text
        // and Qdrant's datetime index parses them.
        _ => Value::String(fmt.value(i).to_string()),
    };
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, DictionaryArray, Int64Array, LargeStringArray, StringArray};

    #[test]
    fn dictionary_and_large_strings_normalize_to_utf8() {
        let d: DictionaryArray<Int32Type> = vec!["a", "b", "a"].into_iter().collect();
        let n = normalize(&(Arc::new(d) as ArrayRef)).unwrap();
        assert_eq!(n.data_type(), &DataType::Utf8);
        assert_eq!(n.as_string::<i32>().value(2), "a");
        let l = normalize(&(Arc::new(LargeStringArray::from(vec!["x"])) as ArrayRef)).unwrap();
        assert_eq!(l.data_type(), &DataType::Utf8);
    }

    #[test]
    fn json_values_keep_types_and_format_dates() {
        let ints = Int64Array::from(vec![Some(320193), None]);
        let f = formatter(&ints).unwrap();
        assert_eq!(json_value(&ints, 0, &f), Some(Value::from(320193)));
        assert_eq!(json_value(&ints, 1, &f), None);
        let dates = Date32Array::from(vec![19_000]);
        let f = formatter(&dates).unwrap();
        assert_eq!(json_value(&dates, 0, &f), Some(Value::String("2022-01-08".into())));
        let s = StringArray::from(vec!["10-K"]);
        let f = formatter(&s).unwrap();
        assert_eq!(json_value(&s, 0, &f), Some(Value::String("10-K".into())));
    }
}
