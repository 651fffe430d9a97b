//! `NativeStore`: one opened store (Qdrant server client, or the embedded engine with its open
//! collections), kept for many calls. Translation only: every method is one `VectorStore` call.

use parking_lot::RwLock;
use pyo3::prelude::*;

use super::convert::{arg, arg_or_default, out};
use super::{to_py, work, NativeEmbedder};
use crate::error::{ErrorKind, VdbError};
use crate::pipeline;
use crate::store::{self, Condition, SearchParams, StoreTarget, VectorStore};

/// A search's filter (a list of conditions) and parameters (`{"hnsw_ef", "exact"}`); either may be
/// left out.
fn query_options(
    filter: Option<&Bound<'_, PyAny>>,
    params: Option<&Bound<'_, PyAny>>,
) -> PyResult<(Vec<Condition>, SearchParams)> {
    Ok((arg_or_default("filter", filter)?, arg_or_default("params", params)?))
}

#[pyclass(frozen, name = "NativeStore", module = "vdb_core._native")]
pub struct NativeStore {
    /// `None` once closed.
    inner: RwLock<Option<Box<dyn VectorStore>>>,
}

// The lock is only ever taken with the GIL released (inside `work` / `py.detach`): work done under
// the read lock may log, and a log record crosses into Python's `logging`, which needs the GIL. A
// thread that waited for the lock while holding the GIL (a `close`, or a call queued behind it)
// would deadlock with it.
impl NativeStore {
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&dyn VectorStore) -> crate::Result<T> + Send,
    ) -> PyResult<T> {
        work(py, || {
            let guard = self.inner.read();
            let store =
                guard.as_deref().ok_or_else(|| VdbError::new(ErrorKind::InvalidConfig, "this Store is closed"))?;
            f(store)
        })
    }
}

#[pymethods]
impl NativeStore {
    /// Opens the store a target (`vdb_core.store_target()`) names.
    #[new]
    fn new(py: Python<'_>, target: &Bound<'_, PyAny>) -> PyResult<Self> {
        let t: StoreTarget = arg("target", target)?;
        let inner = work(py, || store::open(&t))?;
        Ok(NativeStore { inner: RwLock::new(Some(inner)) })
    }

    fn describe(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |s| Ok(s.describe()))
    }

    fn collections(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.with(py, |s| s.collections())
    }

    fn aliases(&self, py: Python<'_>) -> PyResult<Vec<(String, String)>> {
        self.with(py, |s| s.aliases())
    }

    /// (field, index type) pairs: "keyword", "integer", "float" or "datetime".
    fn payload_indexes(&self, py: Python<'_>, collection: String) -> PyResult<Vec<(String, String)>> {
        let indexes = self.with(py, |s| s.payload_indexes(&collection))?;
        Ok(indexes.into_iter().map(|(field, kind)| (field, kind.name().to_string())).collect())
    }

    fn count(&self, py: Python<'_>, collection: String) -> PyResult<u64> {
        self.with(py, |s| s.count(&collection))
    }

    #[pyo3(signature = (collection, vector, limit, filter=None, params=None))]
    fn search_vector<'py>(
        &self,
        py: Python<'py>,
        collection: String,
        vector: Vec<f32>,
        limit: usize,
        filter: Option<&Bound<'py, PyAny>>,
        params: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (f, p) = query_options(filter, params)?;
        out(py, &self.with(py, |s| s.search_with(&collection, &vector, limit, &f, &p))?)
    }

    /// `mode`: "hybrid", "dense", "sparse" or None (hybrid where the collection has BM25);
    /// `fusion`: "rrf" or "dbsf"; `distinct`: one hit per distinct text, with its filings. Returns
    /// `{"mode", "fusion", "hits", "filings"?}`.
    #[pyo3(signature = (collection, query, embedder, limit, filter=None, params=None, mode=None, fusion="rrf", distinct=false))]
    #[allow(clippy::too_many_arguments)]
    fn search_text<'py>(
        &self,
        py: Python<'py>,
        collection: String,
        query: String,
        embedder: &NativeEmbedder,
        limit: usize,
        filter: Option<&Bound<'py, PyAny>>,
        params: Option<&Bound<'py, PyAny>>,
        mode: Option<&str>,
        fusion: &str,
        distinct: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (filter, params) = query_options(filter, params)?;
        let opts = pipeline::TextSearchOptions {
            limit,
            filter,
            params,
            mode: mode.map(str::parse).transpose().map_err(to_py)?,
            fusion: fusion.parse().map_err(to_py)?,
            distinct,
        };
        let e = embedder.inner.as_ref();
        out(py, &self.with(py, |s| pipeline::search_text(e, s, &collection, &query, &opts))?)
    }

    /// The changes report (`pipeline::changes`) as rows; with `out`, also written there as parquet.
    #[pyo3(signature = (collection, scope, order, filter=None, out=None))]
    fn changes<'py>(
        &self,
        py: Python<'py>,
        collection: String,
        scope: Vec<String>,
        order: String,
        filter: Option<&Bound<'py, PyAny>>,
        out: Option<std::path::PathBuf>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let f: Vec<Condition> = arg_or_default("filter", filter)?;
        let rows = self.with(py, |s| {
            let rows = pipeline::changes(s, &collection, &scope, &order, &f)?;
            if let Some(path) = &out {
                pipeline::changes::write_report(&rows, &scope, path)?;
            }
            Ok(rows)
        })?;
        super::convert::out(py, &rows)
    }

    /// The BM25 parameters of the collection's sparse vector (`{"k", "b", "avg_len"}`), or None
    /// for a dense-only collection.
    fn collection_sparse<'py>(&self, py: Python<'py>, collection: String) -> PyResult<Bound<'py, PyAny>> {
        out(py, &self.with(py, |s| s.collection_sparse(&collection))?)
    }

    fn retrieve<'py>(&self, py: Python<'py>, collection: String, ids: Vec<String>) -> PyResult<Bound<'py, PyAny>> {
        let ids = ids
            .iter()
            .map(|s| {
                uuid::Uuid::parse_str(s)
                    .map_err(|e| VdbError::new(ErrorKind::InvalidConfig, format!("bad point id {s:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(to_py)?;
        out(py, &self.with(py, |s| s.retrieve(&collection, &ids))?)
    }

    /// Gives back what the store holds for `collection` (the embedded store's file lock) until
    /// its next use.
    fn release(&self, py: Python<'_>, collection: String) -> PyResult<()> {
        self.with(py, |s| {
            s.release(&collection);
            Ok(())
        })
    }

    /// Closes the store (the embedded store flushes and lets go of its file locks) once the calls
    /// in flight on other threads have returned. Idempotent.
    fn close(&self, py: Python<'_>) {
        py.detach(|| drop(self.inner.write().take()));
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        py.detach(|| self.inner.read().is_none())
    }
}
