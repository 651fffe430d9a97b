//! [`GpuEmbedder`]: the [`Embedder`] of a sentence-transformers BERT folder on an NVIDIA GPU,
//! through candle's CUDA backend (cargo feature `cuda`).
//!
//! The code is the same in every build: without the feature candle's CUDA device cannot be opened
//! (and [`super::open_on`] says so first), and the tests run this very forward pass on candle's
//! CPU device, in all three precisions, against the golden vectors.
//!
//! The forward pass is [`GpuBert`] (candle ops, matrix products in the precision's dtype, the rest
//! in float32); mean pooling runs on the device in float32 and only the pooled vectors come back,
//! to be L2-normalised on the host exactly as on the CPU.
//!
//! Batching is bounded by tokens (padded, `max_batch_tokens`, thousands per pass) as well as by
//! sentences (`batch_size`). Texts are tokenised in chunks on a CPU thread pool while the device
//! works on the previous chunk.

use std::path::Path;
use std::sync::mpsc;
use std::sync::Mutex;

use candle_core::{DType, Device as CandleDevice, Tensor};
use candle_nn::VarBuilder;

use super::candle::{batches, default_threads, l2_normalize};
use super::gpu_bert::{additive_mask, GpuBert};
use super::model::{ModelFolder, Pooling};
use super::{Device, Embedder, EncodeOptions, Precision};
use crate::error::{ErrorKind, Result, VdbError};

/// How to load a [`GpuEmbedder`].
#[derive(Debug, Clone)]
pub struct GpuOptions {
    /// The CUDA device ordinal (`cuda:N`).
    pub ordinal: usize,
    /// Float32 (the default; the same vectors as sentence-transformers within float rounding),
    /// or float16 / bf16 (the whole model in half precision, pooling in float32).
    pub precision: Precision,
    /// Upper bound on the padded tokens (sentences x longest) of one forward pass.
    pub max_batch_tokens: usize,
    /// CPU threads that tokenise; `None` = the CPUs this process may use.
    pub threads: Option<usize>,
    /// Texts tokenised per chunk: the GPU embeds one chunk while the next is tokenised, and
    /// sentences are sorted by length within a chunk (padding waste stays small at 8192).
    pub chunk_texts: usize,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            ordinal: 0,
            precision: Precision::Float32,
            max_batch_tokens: 16384,
            threads: None,
            chunk_texts: 8192,
        }
    }
}

/// A sentence-transformers BERT model run on an NVIDIA GPU with candle's CUDA backend.
pub struct GpuEmbedder {
    folder: ModelFolder,
    model: GpuBert,
    device: CandleDevice,
    precision: Precision,
    max_batch_tokens: usize,
    chunk_texts: usize,
    /// Tokenises (the GPU work runs on the calling thread).
    pool: rayon::ThreadPool,
    /// The folder's model id; `+float16-cuda` / `+bf16-cuda` in half precision (float32 on the GPU
    /// computes the same function in the same arithmetic as the CPU and keeps the plain id).
    model_id: String,
    /// One call on the GPU at a time: calls from several threads queue here.
    busy: Mutex<()>,
}

/// The first line of a candle error: with `RUST_BACKTRACE` set, candle appends a backtrace.
fn first_line(e: &candle_core::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().trim().to_string()
}

fn embed_error(e: candle_core::Error) -> VdbError {
    VdbError::new(ErrorKind::Embed, format!("GPU forward pass failed: {}", first_line(&e)))
}

impl GpuEmbedder {
    /// Loads the model folder `dir` onto the GPU `opts.ordinal`.
    pub fn load(dir: &Path, opts: &GpuOptions) -> Result<GpuEmbedder> {
        let device = Device::Cuda(opts.ordinal);
        if !super::device::CUDA_BUILT {
            return Err(device.not_built_error());
        }
        device.check_precision(opts.precision)?;
        let folder = ModelFolder::load_dir(dir)?;
        // One stream of our own: every call queues on it, whichever thread makes it.
        let gpu = CandleDevice::new_cuda_with_stream(opts.ordinal).map_err(|e| {
            VdbError::new(
                ErrorKind::InvalidConfig,
                format!(
                    "device {device}: no usable NVIDIA GPU ({}); check the driver with `nvidia-smi`, the \
                     ordinal (cuda:0 is the first GPU), or use device \"cpu\"",
                    first_line(&e)
                ),
            )
        })?;
        Self::load_on(folder, gpu, opts)
    }

    /// The model of `folder` on the candle device `gpu`, with the GPU's precisions (the tests
    /// pass candle's CPU device: the same forward pass, checked where there is no GPU).
    pub fn load_on(folder: ModelFolder, gpu: CandleDevice, opts: &GpuOptions) -> Result<GpuEmbedder> {
        Device::Cuda(opts.ordinal).check_precision(opts.precision)?;
        if opts.max_batch_tokens == 0 || opts.chunk_texts == 0 {
            return Err(VdbError::new(ErrorKind::InvalidConfig, "max_batch_tokens and chunk_texts must be at least 1"));
        }
        let dtype = match opts.precision {
            Precision::Float16 => DType::F16,
            Precision::Bf16 => DType::BF16,
            _ => DType::F32,
        };
        let threads = match opts.threads {
            Some(0) => return Err(VdbError::new(ErrorKind::InvalidConfig, "threads must be at least 1")),
            Some(n) => n,
            None => default_threads(),
        };
        let model_err = |e: String, file: &Path| {
            VdbError::new(ErrorKind::Model, format!("model file {}: {e}", file.display())).with_file(file)
        };
        let config = folder.config.clone();
        let weights = folder.dir.join("model.safetensors");
        let vb = VarBuilder::from_tensors(folder.weights.clone(), DType::F32, &gpu);
        let model = GpuBert::load(vb, &config, dtype).map_err(|e| model_err(e.to_string(), &weights))?;
        gpu.synchronize().map_err(embed_error)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("vdb-tokenize-{i}"))
            .build()
            .map_err(|e| VdbError::internal(format!("cannot start {threads} tokenizer threads: {e}")))?;
        let model_id = match opts.precision {
            Precision::Float32 => folder.model_id.clone(),
            p => format!("{}+{}-cuda", folder.model_id, p.as_str()),
        };
        Ok(GpuEmbedder {
            folder,
            model,
            device: gpu,
            precision: opts.precision,
            max_batch_tokens: opts.max_batch_tokens,
            chunk_texts: opts.chunk_texts,
            pool,
            model_id,
            busy: Mutex::new(()),
        })
    }

    /// Token ids of each text, special tokens included, truncated to `max_seq_length`.
    fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let encodings = self
            .pool
            .install(|| self.folder.tokenizer.encode_batch(texts.to_vec(), true))
            .map_err(|e| VdbError::new(ErrorKind::Embed, format!("tokenisation failed: {e}")))?;
        Ok(encodings.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// Pooled, unnormalised float32 vectors of one batch (`seqs.len() * dim`, in `seqs` order).
    fn pooled(&self, seqs: &[&[u32]]) -> candle_core::Result<Vec<f32>> {
        let (n, longest) = (seqs.len(), seqs.iter().map(|s| s.len()).max().unwrap_or(0).max(1));
        let mut ids = vec![0u32; n * longest];
        for (i, seq) in seqs.iter().enumerate() {
            ids[i * longest..i * longest + seq.len()].copy_from_slice(seq);
        }
        let dev = &self.device;
        let lens: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        let ids = Tensor::from_vec(ids, (n, longest), dev)?;
        let hidden = self.model.forward(&ids, &additive_mask(&lens, longest, dev)?)?;
        let pooled = match self.folder.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Mean => {
                let mut keep = vec![0f32; n * longest];
                for (i, &len) in lens.iter().enumerate() {
                    keep[i * longest..i * longest + len].fill(1.0);
                }
                let keep = Tensor::from_vec(keep, (n, longest, 1), dev)?;
                let counts = Tensor::from_vec(lens.iter().map(|&l| l as f32).collect(), (n, 1), dev)?;
                hidden.broadcast_mul(&keep)?.sum(1)?.broadcast_div(&counts)?
            }
        };
        pooled.flatten_all()?.to_vec1::<f32>()
    }

    /// Embeds one tokenised chunk into `out` (`ids.len() * dim`, in `ids` order).
    fn embed_chunk(
        &self,
        ids: &[Vec<u32>],
        batch_size: usize,
        normalize: bool,
        out: &mut [f32],
        mut done: impl FnMut(usize),
    ) -> Result<()> {
        let dim = self.folder.dim;
        let lens: Vec<usize> = ids.iter().map(Vec::len).collect();
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(lens[i]));
        for batch in batches(&order, &lens, batch_size, self.max_batch_tokens) {
            let seqs: Vec<&[u32]> = batch.iter().map(|&i| ids[i].as_slice()).collect();
            let pooled = self.pooled(&seqs).map_err(embed_error)?;
            for (&i, v) in batch.iter().zip(pooled.chunks_exact(dim)) {
                let dst = &mut out[i * dim..(i + 1) * dim];
                dst.copy_from_slice(v);
                if normalize {
                    l2_normalize(dst);
                }
            }
            done(batch.len());
        }
        Ok(())
    }
}

impl Embedder for GpuEmbedder {
    fn dim(&self) -> usize {
        self.folder.dim
    }

    fn max_seq_length(&self) -> usize {
        self.folder.max_seq_length
    }

    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn precision(&self) -> Precision {
        self.precision
    }

    fn device(&self) -> Device {
        match self.device.location() {
            candle_core::DeviceLocation::Cuda { gpu_id } => Device::Cuda(gpu_id),
            _ => Device::Cpu,
        }
    }

    fn kernels(&self) -> super::cpu::Kernels {
        super::cpu::Kernels { f32_gemm: "cublas", int8: None, bf16: None }
    }

    fn count_tokens(&self, texts: &[&str]) -> Result<Vec<usize>> {
        Ok(self.tokenize(texts)?.iter().map(Vec::len).collect())
    }

    /// Embeds `texts`: chunk k+1 is tokenised on the CPU pool while chunk k runs on the GPU.
    fn embed(
        &self,
        texts: &[&str],
        opts: &EncodeOptions,
        progress: Option<&(dyn Fn(usize) + Sync)>,
    ) -> Result<Vec<f32>> {
        if opts.batch_size == 0 {
            return Err(VdbError::new(ErrorKind::InvalidConfig, "batch_size must be at least 1"));
        }
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let dim = self.folder.dim;
        let normalize = opts.normalize || self.folder.normalize_module;
        let _gpu = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = vec![0.0f32; texts.len() * dim];
        let mut finished = 0;
        std::thread::scope(|s| -> Result<()> {
            // Capacity 1: at most one tokenised chunk waits while the GPU works.
            let (tx, rx) = mpsc::sync_channel::<Result<Vec<Vec<u32>>>>(1);
            s.spawn(move || {
                for chunk in texts.chunks(self.chunk_texts) {
                    if tx.send(self.tokenize(chunk)).is_err() {
                        break; // the GPU side stopped on an error
                    }
                }
            });
            for (chunk, ids) in out.chunks_mut(self.chunk_texts * dim).zip(rx) {
                self.embed_chunk(&ids?, opts.batch_size, normalize, chunk, |n| {
                    finished += n;
                    if let Some(progress) = progress {
                        progress(finished);
                    }
                })?;
            }
            Ok(())
        })?;
        if finished != texts.len() {
            return Err(VdbError::internal(format!("embedded {finished} of {} texts", texts.len())));
        }
        Ok(out)
    }
}
