//! The pyo3 layer: translation only. Python values in (typed through serde: `convert`), Rust calls
//! (GIL released, panics caught), Python dicts/lists or bytes out, `VdbError` -> the Python
//! exception hierarchy. No logic lives here.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use serde::Serialize;

use convert::{arg, arg_or_default, out};

use crate::config::{Settings, SETTINGS};
use crate::embed::{Embedder as EmbedderTrait, EncodeOptions};
use crate::error::{ErrorKind, VdbError};
use crate::handoff::RunDir;
use crate::pipeline::{self, IngestOptions, PlanOptions};
use crate::progress::{Bar, LogLines, Progress, Silent};
use crate::source::ColumnMapping;
use crate::store::{self, LoadOptions, StoreTarget};

mod convert;
mod store_handle;

/// The Python exception hierarchy (module `vdb_core._native`, re-exported by `vdb_core`).
mod exceptions {
    use pyo3::exceptions::PyException;
    pyo3::create_exception!(
        vdb_core,
        VdbError,
        PyException,
        "Base of every vdb_core error. Attributes: kind, file, row, column."
    );
    pyo3::create_exception!(vdb_core, InputError, VdbError, "The input parquet or its column mapping is unusable.");
    pyo3::create_exception!(vdb_core, ConfigError, VdbError, "A setting has a value that cannot work.");
    pyo3::create_exception!(
        vdb_core,
        ModelError,
        VdbError,
        "The model folder is missing or malformed, or embedding failed."
    );
    pyo3::create_exception!(
        vdb_core,
        StoreError,
        VdbError,
        "Qdrant refused, was unreachable, or holds a mismatching collection."
    );
    pyo3::create_exception!(
        vdb_core,
        HandoffError,
        VdbError,
        "A run directory, manifest or shard file is missing, damaged, locked or belongs to another run."
    );
}
use exceptions::{ConfigError, HandoffError, InputError, ModelError, StoreError};

fn to_py(err: VdbError) -> PyErr {
    use ErrorKind::*;
    let msg = err.message.clone();
    let e = match err.kind {
        FileNotFound | NotParquet | CorruptFile | MissingColumn | WrongColumnType | EmptyText | DuplicateId
        | NullId | NoRows => InputError::new_err(msg),
        InvalidConfig => ConfigError::new_err(msg),
        Model | Embed => ModelError::new_err(msg),
        Store | StoreUnavailable | StoreAuth | CollectionMismatch => StoreError::new_err(msg),
        Handoff | RunMismatch | Locked => HandoffError::new_err(msg),
        Io | Internal => exceptions::VdbError::new_err(msg),
    };
    Python::attach(|py| {
        let v = e.value(py);
        let _ = v.setattr("kind", err.kind.as_str());
        let _ = v.setattr("file", err.file.as_ref().map(|p| p.display().to_string()));
        let _ = v.setattr("row", err.row);
        let _ = v.setattr("column", err.column.clone());
    });
    e
}

/// Run Rust work with the GIL released; a panic becomes a `VdbError` (kind "internal") instead of
/// crossing into the interpreter.
fn work<T: Send>(py: Python<'_>, f: impl FnOnce() -> crate::Result<T> + Send) -> PyResult<T> {
    let out = py.detach(|| {
        crate::error::catch_panic(f, |what| {
            VdbError::internal(format!("internal error (a bug in vdb_core, please report it): {what}"))
        })
        .and_then(|r| r)
    });
    out.map_err(to_py)
}

/// The progress sink of one call. `progress`: None (silent), "bar" (terminal bar), "lines" (stderr
/// lines) or a callable taking one str (e.g. a logger's `info`), called at most every `every`
/// seconds. An exception the callable raises is kept (the callable is not called again) and
/// raised by the call when its work returns ([`CallProgress::result`]): never discarded.
struct CallProgress {
    sink: Box<dyn Progress>,
    raised: Arc<Mutex<Option<PyErr>>>,
}

impl CallProgress {
    fn sink(&self) -> &dyn Progress {
        self.sink.as_ref()
    }

    /// The call's result, or the exception the progress callable raised during a call that
    /// succeeded (a call that failed raises its own error).
    fn result<T>(&self, r: PyResult<T>) -> PyResult<T> {
        match (r, self.raised.lock().take()) {
            (Ok(_), Some(e)) => Err(e),
            (r, _) => r,
        }
    }
}

fn progress(progress: Option<Py<PyAny>>, every: f64) -> PyResult<CallProgress> {
    let raised = Arc::new(Mutex::new(None::<PyErr>));
    let Some(obj) = progress else { return Ok(CallProgress { sink: Box::new(Silent), raised }) };
    let sink = Python::attach(|py| {
        let b = obj.bind(py);
        if let Ok(s) = b.extract::<String>() {
            return match s.as_str() {
                "bar" => Ok(Box::new(Bar::new()) as Box<dyn Progress>),
                "lines" => Ok(Box::new(LogLines::new(Duration::from_secs_f64(every), Box::new(|l| eprintln!("{l}"))))
                    as Box<dyn Progress>),
                other => Err(to_py(VdbError::new(
                    ErrorKind::InvalidConfig,
                    format!("progress must be None, 'bar', 'lines' or a callable, not {other:?}"),
                ))),
            };
        }
        let f = Arc::new(obj.clone_ref(py));
        let slot = raised.clone();
        Ok(Box::new(LogLines::new(
            Duration::from_secs_f64(every),
            Box::new(move |line| {
                Python::attach(|py| {
                    let mut slot = slot.lock();
                    if slot.is_none() {
                        if let Err(e) = f.call1(py, (line,)) {
                            *slot = Some(e);
                        }
                    }
                })
            }),
        )) as Box<dyn Progress>)
    })?;
    Ok(CallProgress { sink, raised })
}

/// Every error kind the Rust core raises (`ErrorKind::ALL`'s slugs).
#[pyfunction]
fn error_kinds() -> Vec<&'static str> {
    ErrorKind::ALL.iter().map(|k| k.as_str()).collect()
}

/// The BM25 sparse vector of a document (`query=False`) or a query (values 1), with Qdrant's
/// default parameters: (indices, values), what the load step writes / the search sends.
#[pyfunction]
#[pyo3(signature = (text, query=false))]
fn bm25(text: &str, query: bool) -> PyResult<(Vec<u32>, Vec<f32>)> {
    let b = crate::sparse::Bm25::new(Default::default()).map_err(to_py)?;
    let v = if query { b.embed_query(text) } else { b.embed_document(text) };
    Ok((v.indices, v.values))
}

/// The settings in force: defaults overlaid with the environment.
#[pyfunction]
fn resolved_settings(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    out(py, &Settings::from_env().map_err(to_py)?)
}

/// The CPU's name and the kernel each GEMM path would use on it.
#[pyfunction]
fn cpu_info(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    out(py, &crate::embed::cpu::cpu_info())
}

/// GFLOP/s of one `m x inp -> m x out` linear layer in `precision` on this CPU's kernels.
#[pyfunction]
#[pyo3(signature = (precision, m, inp, out, threads, reps=10))]
fn linear_gflops(
    py: Python<'_>,
    precision: &str,
    m: usize,
    inp: usize,
    out: usize,
    threads: usize,
    reps: usize,
) -> PyResult<f64> {
    let precision: crate::embed::Precision = precision.parse().map_err(to_py)?;
    work(py, || crate::embed::cpu::linear_gflops(precision, m, inp, out, threads, reps))
}

/// The configuration table: every setting's variable, default and meaning.
#[pyfunction]
fn settings(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    #[derive(Serialize)]
    struct Row {
        env: &'static str,
        default: &'static str,
        help: &'static str,
    }
    out(py, &SETTINGS.iter().map(|s| Row { env: s.env, default: s.default, help: s.help }).collect::<Vec<_>>())
}

/// The store target: explicit arguments, else QDRANT_URL / QDRANT_API_KEY / VDB_STORE_PATH.
#[pyfunction]
#[pyo3(signature = (url=None, api_key=None, store_path=None))]
fn resolve_target(
    py: Python<'_>,
    url: Option<String>,
    api_key: Option<String>,
    store_path: Option<PathBuf>,
) -> PyResult<Bound<'_, PyAny>> {
    let s = Settings::from_env().map_err(to_py)?;
    let t = match (url.filter(|u| !u.is_empty()), store_path) {
        (Some(url), _) => StoreTarget::Server { url, api_key: api_key.or(s.qdrant_api_key) },
        (None, Some(path)) => StoreTarget::Embedded { path },
        (None, None) => s.store_target(),
    };
    out(py, &t)
}

#[pyfunction]
fn run_dir(work_dir: Option<PathBuf>, dag_id: &str, run_id: &str) -> PyResult<String> {
    let work = match work_dir {
        Some(w) => w,
        None => Settings::from_env().map_err(to_py)?.work_dir,
    };
    Ok(RunDir::for_run(&work, dag_id, run_id).path.display().to_string())
}

#[pyfunction]
fn remove_run_dir(py: Python<'_>, path: PathBuf) -> PyResult<()> {
    work(py, || RunDir::at(path).remove())
}

#[pyfunction]
fn inspect<'py>(py: Python<'py>, path: String, mapping: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let mapping: ColumnMapping = arg("mapping", mapping)?;
    let r = work(py, || crate::source::inspect::inspect(&path, &mapping))?;
    out(py, &r)
}

#[pyfunction]
#[pyo3(signature = (path, rows, seed, duplicate_rate=0.0, yearly=None, change_rate=0.3))]
fn sample_data(
    py: Python<'_>,
    path: PathBuf,
    rows: u64,
    seed: u64,
    duplicate_rate: f64,
    yearly: Option<u32>,
    change_rate: f64,
) -> PyResult<Bound<'_, PyAny>> {
    let r = work(py, || match yearly {
        Some(years) => crate::sample::write_yearly(&path, rows, seed, years, change_rate),
        None => crate::sample::write_sample_with(&path, rows, seed, duplicate_rate),
    })?;
    out(py, &r)
}

#[pyfunction]
#[pyo3(signature = (run_dir, input, mapping, shard_rows, strict, reuse, progress=None, changes_scope=Vec::new(), changes_order=None))]
#[allow(clippy::too_many_arguments)]
fn plan<'py>(
    py: Python<'py>,
    run_dir: PathBuf,
    input: PathBuf,
    mapping: &Bound<'py, PyAny>,
    shard_rows: usize,
    strict: bool,
    reuse: bool,
    progress: Option<Py<PyAny>>,
    changes_scope: Vec<String>,
    changes_order: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let mapping: ColumnMapping = arg("mapping", mapping)?;
    let p = self::progress(progress, 10.0)?;
    let opts = PlanOptions { input, mapping, shard_rows, strict, reuse };
    let changes = changes_order.filter(|_| !changes_scope.is_empty()).map(|o| (changes_scope, o));
    let run = RunDir::at(run_dir);
    let r = p.result(work(py, || {
        let r = pipeline::plan(&run, &opts, p.sink())?;
        pipeline::changes::track(&run, changes.as_ref())?;
        Ok(r)
    }))?;
    out(py, &r)
}

/// A loaded model. `encode` returns raw float32 bytes; the Python wrapper makes the numpy array.
#[pyclass(frozen, name = "NativeEmbedder", module = "vdb_core._native")]
struct NativeEmbedder {
    inner: Box<dyn EmbedderTrait>,
}

#[pymethods]
impl NativeEmbedder {
    #[new]
    #[pyo3(signature = (model_dir=None, threads=None, precision="float32", device="cpu", gpu_batch_tokens=None))]
    fn new(
        py: Python<'_>,
        model_dir: Option<PathBuf>,
        threads: Option<usize>,
        precision: &str,
        device: &str,
        gpu_batch_tokens: Option<usize>,
    ) -> PyResult<Self> {
        let precision: crate::embed::Precision = precision.parse().map_err(to_py)?;
        let device: crate::embed::Device = device.parse().map_err(to_py)?;
        let inner =
            work(py, || crate::embed::open_on(model_dir.as_deref(), threads, precision, device, gpu_batch_tokens))?;
        Ok(NativeEmbedder { inner })
    }
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    #[getter]
    fn max_seq_length(&self) -> usize {
        self.inner.max_seq_length()
    }
    #[getter]
    fn model_id(&self) -> String {
        self.inner.model_id().to_string()
    }
    #[getter]
    fn precision(&self) -> &'static str {
        self.inner.precision().as_str()
    }
    #[getter]
    fn device(&self) -> String {
        self.inner.device().to_string()
    }
    /// The kernels the GEMMs run on (f32_gemm, int8, bf16).
    #[getter]
    fn kernels<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        out(py, &self.inner.kernels())
    }
    /// Tokens per text after truncation (for throughput accounting).
    fn token_lengths(&self, py: Python<'_>, texts: Vec<String>) -> PyResult<Vec<usize>> {
        work(py, || self.inner.count_tokens(&texts.iter().map(String::as_str).collect::<Vec<_>>()))
    }
    #[pyo3(signature = (texts, batch_size=32, normalize=true, progress=None))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        batch_size: usize,
        normalize: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let p = self::progress(progress, 1.0)?;
        let opts = EncodeOptions { batch_size, normalize };
        let vectors = p.result(work(py, || {
            let (refs, p): (Vec<&str>, &dyn Progress) = (texts.iter().map(String::as_str).collect(), p.sink());
            p.start("encode", refs.len() as u64);
            let last = std::sync::atomic::AtomicUsize::new(0);
            let cb = |done: usize| {
                let prev = last.swap(done, std::sync::atomic::Ordering::Relaxed);
                p.advance(done.saturating_sub(prev) as u64);
            };
            let v = self.inner.embed(&refs, &opts, Some(&cb));
            p.finish();
            v
        }))?;
        let bytes: Vec<u8> = vectors.iter().flat_map(|f| f.to_le_bytes()).collect();
        Ok(PyBytes::new(py, &bytes))
    }
}

#[pyfunction]
#[pyo3(signature = (run_dir, shard, embedder, batch_size=32, target=None, collection=None, recreate=false, rebuild=false, progress=None))]
#[allow(clippy::too_many_arguments)]
fn embed_shard<'py>(
    py: Python<'py>,
    run_dir: PathBuf,
    shard: usize,
    embedder: &NativeEmbedder,
    batch_size: usize,
    target: Option<&Bound<'py, PyAny>>,
    collection: Option<String>,
    recreate: bool,
    rebuild: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let replaces = pipeline::EnsureMode::from_flags(recreate, rebuild).map_err(to_py)?.replaces();
    let p = self::progress(progress, 10.0)?;
    let opts = EncodeOptions { batch_size, normalize: true };
    let run = RunDir::at(run_dir);
    let target: Option<StoreTarget> = target.filter(|t| !t.is_none()).map(|t| arg("target", t)).transpose()?;
    let r = p.result(match (target, collection) {
        (Some(target), Some(collection)) => with_store(py, &target, |store| {
            let source = pipeline::VectorSource { store, collection: &collection, replaces };
            pipeline::embed_shard(&run, shard, embedder.inner.as_ref(), &opts, Some(source), p.sink())
        }),
        _ => work(py, || pipeline::embed_shard(&run, shard, embedder.inner.as_ref(), &opts, None, p.sink())),
    })?;
    out(py, &r)
}

/// Opens the store `target` names and runs `f` on it, with the GIL released.
fn with_store<T: Send>(
    py: Python<'_>,
    target: &StoreTarget,
    f: impl FnOnce(&dyn store::VectorStore) -> crate::Result<T> + Send,
) -> PyResult<T> {
    work(py, || f(store::open(target)?.as_ref()))
}

#[pyfunction]
#[pyo3(signature = (run_dir, target, collection, recreate, rebuild=false, options=None))]
fn ensure_collection<'py>(
    py: Python<'py>,
    run_dir: PathBuf,
    target: &Bound<'py, PyAny>,
    collection: String,
    recreate: bool,
    rebuild: bool,
    options: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let target: StoreTarget = arg("target", target)?;
    let o: store::CollectionOptions = arg_or_default("options", options)?;
    let mode = pipeline::EnsureMode::from_flags(recreate, rebuild).map_err(to_py)?;
    let r = with_store(py, &target, |s| pipeline::ensure_collection(&RunDir::at(run_dir), s, &collection, mode, &o))?;
    out(py, &r)
}

#[pyfunction]
#[pyo3(signature = (run_dir, shard, target, collection, load_options, progress=None))]
fn load_shard<'py>(
    py: Python<'py>,
    run_dir: PathBuf,
    shard: usize,
    target: &Bound<'py, PyAny>,
    collection: String,
    load_options: &Bound<'py, PyAny>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let target: StoreTarget = arg("target", target)?;
    let o: LoadOptions = arg("load_options", load_options)?;
    let p = self::progress(progress, 10.0)?;
    let r = p.result(with_store(py, &target, |s| {
        pipeline::load_shard(&RunDir::at(run_dir), shard, s, &collection, &o, p.sink())
    }))?;
    out(py, &r)
}

#[pyfunction]
#[pyo3(signature = (target, collection, run_dir=None))]
fn restore_indexing(
    py: Python<'_>,
    target: &Bound<'_, PyAny>,
    collection: String,
    run_dir: Option<PathBuf>,
) -> PyResult<()> {
    let target: StoreTarget = arg("target", target)?;
    let run = run_dir.map(RunDir::at);
    with_store(py, &target, |s| pipeline::restore_indexing(run.as_ref(), s, &collection))
}

#[pyfunction]
fn verify<'py>(
    py: Python<'py>,
    run_dir: PathBuf,
    target: &Bound<'py, PyAny>,
    collection: String,
) -> PyResult<Bound<'py, PyAny>> {
    let target: StoreTarget = arg("target", target)?;
    let r = with_store(py, &target, |s| pipeline::verify(&RunDir::at(run_dir), s, &collection))?;
    out(py, &r)
}

#[pyfunction]
fn sync<'py>(
    py: Python<'py>,
    run_dir: PathBuf,
    target: &Bound<'py, PyAny>,
    collection: String,
    scope: Vec<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let target: StoreTarget = arg("target", target)?;
    let r = with_store(py, &target, |s| pipeline::sync(&RunDir::at(run_dir), s, &collection, &scope))?;
    out(py, &r)
}

#[pyfunction]
fn update_first_seen<'py>(
    py: Python<'py>,
    run_dir: PathBuf,
    target: &Bound<'py, PyAny>,
    collection: String,
    scope: Vec<String>,
    order: String,
) -> PyResult<Bound<'py, PyAny>> {
    let target: StoreTarget = arg("target", target)?;
    let r = with_store(py, &target, |s| {
        pipeline::update_first_seen_for_run(&RunDir::at(run_dir), s, &collection, &scope, &order)
    })?;
    out(py, &r)
}

#[pyfunction]
fn switch<'py>(
    py: Python<'py>,
    run_dir: PathBuf,
    target: &Bound<'py, PyAny>,
    collection: String,
) -> PyResult<Bound<'py, PyAny>> {
    let target: StoreTarget = arg("target", target)?;
    let r = with_store(py, &target, |s| pipeline::switch(&RunDir::at(run_dir), s, &collection))?;
    out(py, &r)
}

#[pyfunction]
fn report_summary(report: &Bound<'_, PyAny>) -> PyResult<String> {
    let r: pipeline::Report = arg("report", report)?;
    Ok(r.summary())
}

#[pyfunction]
#[pyo3(signature = (run_dir, input, mapping, shard_rows, strict, reuse, collection, recreate, target, embedder, batch_size, load_options, sync_scope=Vec::new(), collection_options=None, rebuild=false, progress=None, changes_scope=Vec::new(), changes_order=None))]
#[allow(clippy::too_many_arguments)]
fn ingest<'py>(
    py: Python<'py>,
    run_dir: PathBuf,
    input: PathBuf,
    mapping: &Bound<'py, PyAny>,
    shard_rows: usize,
    strict: bool,
    reuse: bool,
    collection: String,
    recreate: bool,
    target: &Bound<'py, PyAny>,
    embedder: &NativeEmbedder,
    batch_size: usize,
    load_options: &Bound<'py, PyAny>,
    sync_scope: Vec<String>,
    collection_options: Option<&Bound<'py, PyAny>>,
    rebuild: bool,
    progress: Option<Py<PyAny>>,
    changes_scope: Vec<String>,
    changes_order: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let mode = pipeline::EnsureMode::from_flags(recreate, rebuild).map_err(to_py)?;
    let target: StoreTarget = arg("target", target)?;
    let collection_options: store::CollectionOptions = arg_or_default("collection_options", collection_options)?;
    let mapping: ColumnMapping = arg("mapping", mapping)?;
    let load: LoadOptions = arg("load_options", load_options)?;
    let p = self::progress(progress, 10.0)?;
    let opts = IngestOptions {
        plan: PlanOptions { input, mapping, shard_rows, strict, reuse },
        collection,
        mode,
        collection_options,
        encode: EncodeOptions { batch_size, normalize: true },
        load,
        sync_scope,
        changes: changes_order.filter(|_| !changes_scope.is_empty()).map(|o| (changes_scope, o)),
    };
    let r = p.result(with_store(py, &target, |s| {
        pipeline::ingest(&RunDir::at(run_dir), &opts, embedder.inner.as_ref(), s, p.sink())
    }))?;
    out(py, &r)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // The core's `log` records go to Python's `logging` (logger names follow the Rust module path:
    // `vdb_core.store.server`, ...), and so into Airflow task logs. Only this crate's records at
    // debug and above, and warnings of dependencies, cross over (each record takes the GIL); the
    // embedded engine's internal notices ("Feature flags not initialized!" on every shard load)
    // only when they are errors. Levels are looked up live, so a logging configuration set after
    // the import still applies.
    let _ = pyo3_log::Logger::new(py, pyo3_log::Caching::Loggers)?
        .filter(log::LevelFilter::Warn)
        .filter_target("vdb_core".to_string(), log::LevelFilter::Debug)
        .filter_target("qdrant_edge".to_string(), log::LevelFilter::Error)
        .install();
    m.add("__version__", crate::VERSION)?;
    m.add("CUDA_BUILT", crate::embed::device::CUDA_BUILT)?;
    m.add("EMBEDDED_BUILT", crate::store::EMBEDDED_BUILT)?;
    m.add("VdbError", py.get_type::<exceptions::VdbError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add("StoreError", py.get_type::<StoreError>())?;
    m.add("HandoffError", py.get_type::<HandoffError>())?;
    m.add_class::<NativeEmbedder>()?;
    m.add_class::<store_handle::NativeStore>()?;
    m.add_function(wrap_pyfunction!(error_kinds, m)?)?;
    m.add_function(wrap_pyfunction!(bm25, m)?)?;
    m.add_function(wrap_pyfunction!(update_first_seen, m)?)?;
    m.add_function(wrap_pyfunction!(settings, m)?)?;
    m.add_function(wrap_pyfunction!(cpu_info, m)?)?;
    m.add_function(wrap_pyfunction!(linear_gflops, m)?)?;
    m.add_function(wrap_pyfunction!(resolved_settings, m)?)?;
    m.add_function(wrap_pyfunction!(resolve_target, m)?)?;
    m.add_function(wrap_pyfunction!(run_dir, m)?)?;
    m.add_function(wrap_pyfunction!(remove_run_dir, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(sample_data, m)?)?;
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    m.add_function(wrap_pyfunction!(embed_shard, m)?)?;
    m.add_function(wrap_pyfunction!(ensure_collection, m)?)?;
    m.add_function(wrap_pyfunction!(load_shard, m)?)?;
    m.add_function(wrap_pyfunction!(restore_indexing, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(sync, m)?)?;
    m.add_function(wrap_pyfunction!(switch, m)?)?;
    m.add_function(wrap_pyfunction!(report_summary, m)?)?;
    m.add_function(wrap_pyfunction!(ingest, m)?)?;
    Ok(())
}
