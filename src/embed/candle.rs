//! [`CandleEmbedder`]: the [`Embedder`] of a sentence-transformers BERT folder on the CPU.
//!
//! `embed` tokenises everything (truncated to `max_seq_length`), sorts sentences by token count,
//! cuts the sorted list into batches of at most `batch_size` sentences and `max_batch_tokens`
//! tokens, runs each batch through the forward pass, pools (mean over the sentence's tokens, or
//! `[CLS]`), optionally L2-normalises, and writes each vector at its sentence's input position.
//! All work runs on a rayon pool owned by the embedder, so the thread setting is exact.

use parking_lot::Mutex;
use std::path::Path;

use super::bert::{FusedBert, Workspace};
use super::model::{ModelFolder, Pooling};
#[cfg(feature = "reference")]
use super::stock::StockBert;
use super::{Embedder, EncodeOptions, Precision};
use crate::error::{ErrorKind, Result, VdbError};

/// Which forward pass computes the vectors. Both give the same vectors (within float rounding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Forward {
    /// [`FusedBert`]: packed unpadded batches, fused vectorised kernels. The fast one.
    #[default]
    Fused,
    /// candle-transformers' `BertModel` on padded batches: the reference and benchmark baseline
    /// (the `reference` feature).
    #[cfg(feature = "reference")]
    Stock,
}

/// How to load a [`CandleEmbedder`].
#[derive(Debug, Clone)]
pub struct EmbedderOptions {
    /// Worker threads; `None` = the CPUs this process may run on.
    pub threads: Option<usize>,
    pub forward: Forward,
    /// Float32 (the default) or the int8 fast mode ([`Forward::Fused`] only).
    pub precision: Precision,
    /// The int8 kernel; `None` = the fastest this CPU runs (tests pin one to compare them).
    pub int8_kernel: Option<super::Int8Kernel>,
    /// The bf16 kernel; `None` = the one this CPU runs (an error where it has none).
    pub bf16_kernel: Option<super::Bf16Kernel>,
    /// Upper bound on the tokens of one batch (padded tokens for [`Forward::Stock`]); bounds
    /// activation memory (about `max_batch_tokens * 10 KiB` for MiniLM). At least one sentence
    /// always goes into a batch.
    pub max_batch_tokens: usize,
}

impl Default for EmbedderOptions {
    fn default() -> Self {
        EmbedderOptions {
            threads: None,
            forward: Forward::Fused,
            precision: Precision::Float32,
            int8_kernel: None,
            bf16_kernel: None,
            max_batch_tokens: 8192,
        }
    }
}

enum Engine {
    Fused {
        bert: FusedBert,
        /// Buffers of finished calls, reused by the next ones. A call takes one out for its
        /// whole duration: no lock is ever held while work runs on the pool (a worker waiting in
        /// a GEMM may pick up another call's job, which must not block on this call's lock).
        spare: Mutex<Vec<Workspace>>,
    },
    #[cfg(feature = "reference")]
    Stock(StockBert),
}

/// A sentence-transformers BERT model (e.g. all-MiniLM-L6-v2) run with candle on the CPU.
pub struct CandleEmbedder {
    folder: ModelFolder,
    engine: Engine,
    pool: rayon::ThreadPool,
    threads: usize,
    max_batch_tokens: usize,
    precision: Precision,
    /// The folder's model id, with `+int8` / `+bf16` in those modes (a run never mixes them).
    model_id: String,
}

/// The CPUs this process may run on (sched affinity and cgroup quota on Linux), at least 1.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl CandleEmbedder {
    /// Loads the model folder `dir` (see [`super::model::locate`] to find one) with the fused
    /// forward pass. `threads`: worker threads, `None` = [`default_threads`].
    pub fn load(dir: &Path, threads: Option<usize>) -> Result<CandleEmbedder> {
        Self::load_with(dir, &EmbedderOptions { threads, ..EmbedderOptions::default() })
    }

    /// Loads the model folder `dir` with explicit options.
    pub fn load_with(dir: &Path, opts: &EmbedderOptions) -> Result<CandleEmbedder> {
        let threads = match opts.threads {
            Some(0) => return Err(VdbError::new(ErrorKind::InvalidConfig, "threads must be at least 1")),
            Some(n) => n,
            None => default_threads(),
        };
        if let Some(k) = opts.int8_kernel.filter(|k| !k.supported()) {
            return Err(VdbError::new(
                ErrorKind::InvalidConfig,
                format!("this CPU cannot run the {} int8 kernel", k.name()),
            ));
        }
        if let Some(k) = opts.bf16_kernel.filter(|k| !k.supported()) {
            return Err(VdbError::new(
                ErrorKind::InvalidConfig,
                format!("this CPU ({}) cannot run the {} bf16 kernel", super::cpu::cpu_model(), k.name()),
            ));
        }
        if opts.max_batch_tokens == 0 {
            return Err(VdbError::new(ErrorKind::InvalidConfig, "max_batch_tokens must be at least 1"));
        }
        super::Device::Cpu.check_precision(opts.precision)?;
        #[cfg(feature = "reference")]
        if opts.forward == Forward::Stock && opts.precision != Precision::Float32 {
            return Err(VdbError::new(ErrorKind::InvalidConfig, "the stock candle forward pass runs in float32 only"));
        }
        let folder = ModelFolder::load_dir(dir)?;
        let model_id = match opts.precision {
            Precision::Float32 => folder.model_id.clone(),
            p => format!("{}+{}", folder.model_id, p.as_str()),
        };
        let engine = match opts.forward {
            Forward::Fused => Engine::Fused {
                bert: FusedBert::load(&folder, opts.precision, opts.int8_kernel, opts.bf16_kernel)?,
                spare: Mutex::new(Vec::new()),
            },
            #[cfg(feature = "reference")]
            Forward::Stock => Engine::Stock(StockBert::load(&folder)?),
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("vdb-embed-{i}"))
            .build()
            .map_err(|e| VdbError::internal(format!("cannot start {threads} embedding threads: {e}")))?;
        Ok(CandleEmbedder {
            folder,
            engine,
            pool,
            threads,
            max_batch_tokens: opts.max_batch_tokens,
            precision: opts.precision,
            model_id,
        })
    }

    /// Worker threads in use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The integer kernel of the int8 mode on this CPU (`amx-int8`, `avx512-vnni`, `avx2`, `scalar`).
    pub fn int8_kernel(&self) -> Option<&'static str> {
        match &self.engine {
            Engine::Fused { bert, .. } => bert.int8_kernel().map(|k| k.name()),
            #[cfg(feature = "reference")]
            Engine::Stock(_) => None,
        }
    }

    /// The bf16 kernel of the bf16 mode on this CPU (`amx-bf16`, `avx512-bf16`; `scalar` when
    /// pinned).
    pub fn bf16_kernel(&self) -> Option<&'static str> {
        match &self.engine {
            Engine::Fused { bert, .. } => bert.bf16_kernel().map(|k| k.name()),
            #[cfg(feature = "reference")]
            Engine::Stock(_) => None,
        }
    }

    /// Tokens of each text after truncation, special tokens included.
    pub fn count_tokens(&self, texts: &[&str]) -> Result<Vec<usize>> {
        Ok(self.pool.install(|| self.tokenize(texts))?.iter().map(Vec::len).collect())
    }

    /// Token ids of each text, special tokens included, truncated to `max_seq_length`.
    fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let encodings = self
            .folder
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| VdbError::new(ErrorKind::Embed, format!("tokenisation failed: {e}")))?;
        Ok(encodings.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// Pooled, unnormalised vectors of one batch into `out`.
    fn pooled(&self, seqs: &[&[u32]], ws: &mut Workspace, out: &mut [f32]) -> Result<()> {
        let dim = self.folder.dim;
        match &self.engine {
            #[cfg(feature = "reference")]
            Engine::Stock(bert) => bert.pooled(seqs, self.folder.pooling, out),
            Engine::Fused { bert, .. } => {
                let hidden = bert.encode(seqs, ws, self.threads)?;
                let mut start = 0;
                for (seq, v) in seqs.iter().zip(out.chunks_exact_mut(dim)) {
                    let rows = &hidden[start * dim..(start + seq.len()) * dim];
                    match self.folder.pooling {
                        Pooling::Cls => v.copy_from_slice(&rows[..dim]),
                        Pooling::Mean => {
                            v.fill(0.0);
                            for row in rows.chunks_exact(dim) {
                                v.iter_mut().zip(row).for_each(|(a, b)| *a += b);
                            }
                            let inv = 1.0 / seq.len() as f32;
                            v.iter_mut().for_each(|a| *a *= inv);
                        }
                    }
                    start += seq.len();
                }
                Ok(())
            }
        }
    }
}

impl CandleEmbedder {
    fn take_workspace(&self) -> Workspace {
        match &self.engine {
            Engine::Fused { spare, .. } => spare.lock().pop().unwrap_or_default(),
            #[cfg(feature = "reference")]
            Engine::Stock(_) => Workspace::default(),
        }
    }

    fn return_workspace(&self, ws: Workspace) {
        match &self.engine {
            Engine::Fused { spare, .. } => spare.lock().push(ws),
            #[cfg(feature = "reference")]
            Engine::Stock(_) => {}
        }
    }
}

/// Splits `order` (indices sorted by descending length) into batches of at most `max_sentences`
/// sentences whose padded size (sentences x longest) stays within `max_tokens`.
pub(super) fn batches<'a>(
    order: &'a [usize],
    lens: &[usize],
    max_sentences: usize,
    max_tokens: usize,
) -> Vec<&'a [usize]> {
    let mut out = Vec::new();
    let mut rest = order;
    while !rest.is_empty() {
        let longest = lens[rest[0]].max(1);
        let n = (max_tokens / longest).clamp(1, max_sentences).min(rest.len());
        let (batch, tail) = rest.split_at(n);
        out.push(batch);
        rest = tail;
    }
    out
}

/// `v / max(|v|, 1e-12)`, as torch's `F.normalize`.
pub(super) fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

impl Embedder for CandleEmbedder {
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

    fn kernels(&self) -> super::cpu::Kernels {
        super::cpu::Kernels { f32_gemm: super::cpu::f32_gemm_isa(), int8: self.int8_kernel(), bf16: self.bf16_kernel() }
    }

    fn count_tokens(&self, texts: &[&str]) -> Result<Vec<usize>> {
        CandleEmbedder::count_tokens(self, texts)
    }

    /// Embeds `texts`. Vectors are L2-normalised when `opts.normalize` is set or the folder has a
    /// `Normalize` module (sentence-transformers then always normalises).
    fn embed(
        &self,
        texts: &[&str],
        opts: &EncodeOptions,
        progress: Option<&(dyn Fn(usize) + Sync)>,
    ) -> Result<Vec<f32>> {
        opts.validate()?;
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let dim = self.folder.dim;
        let normalize = opts.normalize || self.folder.normalize_module;
        self.pool.install(|| {
            let ids = self.tokenize(texts)?;
            let lens: Vec<usize> = ids.iter().map(Vec::len).collect();
            let mut order: Vec<usize> = (0..texts.len()).collect();
            order.sort_by_key(|&i| std::cmp::Reverse(lens[i]));

            let mut ws = self.take_workspace();
            let mut out = vec![0.0f32; texts.len() * dim];
            let mut pooled = Vec::new();
            let mut done = 0;
            for batch in batches(&order, &lens, opts.batch_size, self.max_batch_tokens) {
                let seqs: Vec<&[u32]> = batch.iter().map(|&i| ids[i].as_slice()).collect();
                pooled.resize(batch.len() * dim, 0.0);
                self.pooled(&seqs, &mut ws, &mut pooled)?;
                for (&i, v) in batch.iter().zip(pooled.chunks_exact(dim)) {
                    let dst = &mut out[i * dim..(i + 1) * dim];
                    dst.copy_from_slice(v);
                    if normalize {
                        l2_normalize(dst);
                    }
                }
                done += batch.len();
                if let Some(progress) = progress {
                    progress(done);
                }
            }
            self.return_workspace(ws);
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_both_bounds() {
        let lens = [10, 10, 10, 10, 3, 3, 3, 300];
        let mut order: Vec<usize> = (0..lens.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(lens[i]));
        let b = batches(&order, &lens, 3, 40);
        let sizes: Vec<usize> = b.iter().map(|b| b.len()).collect();
        // 300 alone (over budget but at least one), then 10s 3 at a time, then the rest.
        assert_eq!(sizes, vec![1, 3, 3, 1]);
        assert_eq!(b.concat(), order);
    }

    #[test]
    fn normalize_guards_zero() {
        let mut v = vec![0.0, 0.0];
        l2_normalize(&mut v);
        assert_eq!(v, vec![0.0, 0.0]);
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
    }
}
