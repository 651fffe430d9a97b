//! Values across the pyo3 boundary, typed: a Python dict, list, str or number becomes the Rust
//! option type through its serde `Deserialize` (pythonize; no JSON text in between), and a Rust
//! result becomes Python dicts, lists and scalars through its `Serialize`. The `.pyi`
//! (`vdb_core/_native.pyi`) declares both sides as `TypedDict`s (`vdb_core._types`).
//!
//! An argument that does not fit its type is a `ConfigError` (kind `invalid_config`) naming the
//! argument, the field and what was expected, e.g. `argument 'mapping': unknown field `txt`,
//! expected one of `text`, `id_columns`, `payload_columns``, or `argument 'mapping':
//! payload_columns: unexpected type: 'int' object is not an instance of 'Sequence'`.

use pyo3::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::to_py;
use crate::error::{ErrorKind, VdbError};

/// The typed value of the argument `name` (for the error message).
pub(super) fn arg<T: DeserializeOwned>(name: &str, value: &Bound<'_, PyAny>) -> PyResult<T> {
    serde_path_to_error::deserialize(&mut pythonize::Depythonizer::from_object(value)).map_err(|e| {
        let at = match e.path().to_string() {
            p if p == "." => String::new(),
            p => format!("{p}: "),
        };
        to_py(VdbError::new(ErrorKind::InvalidConfig, format!("argument '{name}': {at}{}", e.inner())))
    })
}

/// [`arg`] of an optional argument: `None` (or the argument left out) gives `T::default()`.
pub(super) fn arg_or_default<T: DeserializeOwned + Default>(
    name: &str,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<T> {
    match value {
        Some(v) if !v.is_none() => arg(name, v),
        _ => Ok(T::default()),
    }
}

/// A result as Python objects: structs and maps become dicts, sequences lists, `None` None.
pub(super) fn out<'py, T: Serialize + ?Sized>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    pythonize::pythonize(py, value).map_err(|e| to_py(VdbError::internal(format!("result to Python: {e}"))))
}
