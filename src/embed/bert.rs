//! The fused BERT encoder: the same computation as candle-transformers' `BertModel`, run on
//! unpadded, packed batches with fused vectorised kernels and reusable buffers.
//!
//! A batch is its sequences' tokens laid one after another (`Σ len` rows of `hidden_size`), as in
//! text-embeddings-inference's packed batches: no padding tokens are ever computed, so a vector
//! does not depend on what else is in its batch. Per layer:
//!
//! 1. `qkv = x Wqkv^T + b` — the three projections as one GEMM (bias pre-filled, GEMM accumulates);
//! 2. attention per sequence and head: `scale * Q K^T` and `P V` as small single-threaded GEMMs,
//!    softmax in between, sequences in parallel;
//! 3. `x = LN(x + b + ctx Wo^T)` — residual and bias pre-added into `x`, GEMM accumulates into it;
//! 4. `h = GELU(x Wi^T + b)` — bias and GELU in one pass;
//! 5. `x = LN(x + b + h Wd^T)`.
//!
//! GEMMs use the `gemm` crate (what candle's CPU matmul calls; its AVX-512 kernels where the CPU
//! has AVX-512F) directly on the weights as stored (`[out, in]`, read transposed through strides)
//! and run on the current rayon pool. In the opt-in precisions the linear layers run on
//! [`quant`] (int8) or [`bf16`] kernels instead; attention stays float32.

use rayon::prelude::*;

use super::bf16::{self, Bf16Linear};
use super::kernels;
use super::model::ModelFolder;
use super::quant::{self, Kernel, QuantLinear};
use super::{cpu, Precision};
use crate::error::{ErrorKind, Result, VdbError};

/// Rows per parallel task in the row-wise kernels (bias, GELU, layer norm).
const ROWS_PER_TASK: usize = 32;

/// A linear layer: `weight` is `[out, in]` row-major (PyTorch's layout).
struct Linear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    out: usize,
    inp: usize,
    /// The int8 weights, in [`Precision::Int8`] mode (the product then runs in int8).
    int8: Option<QuantLinear>,
    /// The bf16 weights, in [`Precision::Bf16`] mode (the product then runs in bf16).
    bf16: Option<Bf16Linear>,
}

impl Linear {
    fn quantize(&mut self, kernel: Kernel) {
        self.int8 = Some(QuantLinear::new(&self.weight, self.out, self.inp, kernel));
        // The float weights are not needed any more.
        self.weight = Vec::new();
    }

    fn round_to_bf16(&mut self, kernel: bf16::Kernel) {
        self.bf16 = Some(Bf16Linear::new(&self.weight, self.out, self.inp, kernel));
        self.weight = Vec::new();
    }
}

struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    /// Query, key and value stacked: `[3 * hidden, hidden]`.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
}

/// BERT weights, ready for [`FusedBert::encode`].
pub struct FusedBert {
    hidden: usize,
    heads: usize,
    eps: f32,
    vocab: usize,
    max_positions: usize,
    word: Vec<f32>,
    position: Vec<f32>,
    /// Row 0 of the token-type embeddings (single-sentence inputs are all type 0).
    token_type: Vec<f32>,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    /// The integer kernel of the linear layers in int8 mode.
    int8: Option<Kernel>,
    /// The bf16 kernel of the linear layers in bf16 mode.
    bf16: Option<bf16::Kernel>,
}

/// Activation buffers, grown to the largest batch seen and reused across batches.
#[derive(Default)]
pub struct Workspace {
    hidden: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    inter: Vec<f32>,
}

fn grown(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

impl FusedBert {
    /// Takes the weights out of a loaded model folder (names as in `BertModel`, with or without
    /// a `bert.` prefix). In [`Precision::Int8`] the weights of every linear layer are quantised
    /// (see [`quant`]), in [`Precision::Bf16`] rounded to bf16 (see [`bf16`]); embeddings, layer
    /// norms and attention stay float32. `kernel`/`bf16_kernel`: pin a kernel (tests), else the
    /// fastest this CPU runs; bf16 on a CPU without bf16 instructions is an error.
    pub fn load(
        folder: &ModelFolder,
        precision: Precision,
        kernel: Option<Kernel>,
        bf16_kernel: Option<bf16::Kernel>,
    ) -> Result<FusedBert> {
        let c = &folder.config;
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let prefix = if folder.weights.keys().any(|k| k.starts_with("bert.")) { "bert." } else { "" };
        let t = |name: &str, shape: &[usize]| folder.tensor(&format!("{prefix}{name}"), shape);
        let linear = |name: &str, out: usize, inp: usize| -> Result<Linear> {
            Ok(Linear {
                weight: t(&format!("{name}.weight"), &[out, inp])?,
                bias: t(&format!("{name}.bias"), &[out])?,
                out,
                inp,
                int8: None,
                bf16: None,
            })
        };
        let norm = |name: &str| -> Result<LayerNorm> {
            Ok(LayerNorm { gamma: t(&format!("{name}.weight"), &[h])?, beta: t(&format!("{name}.bias"), &[h])? })
        };
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for l in 0..c.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            let [q, k, v] = ["query", "key", "value"].map(|n| linear(&format!("{p}.attention.self.{n}"), h, h));
            let (q, k, v) = (q?, k?, v?);
            layers.push(Layer {
                qkv: Linear {
                    weight: [q.weight, k.weight, v.weight].concat(),
                    bias: [q.bias, k.bias, v.bias].concat(),
                    out: 3 * h,
                    inp: h,
                    int8: None,
                    bf16: None,
                },
                attn_out: linear(&format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                up: linear(&format!("{p}.intermediate.dense"), i, h)?,
                down: linear(&format!("{p}.output.dense"), h, i)?,
                out_norm: norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        let token_types = t("embeddings.token_type_embeddings.weight", &[c.type_vocab_size, h])?;
        let (mut int8, mut bf16) = (None, None);
        match precision {
            Precision::Float32 => {}
            Precision::Float16 => return Err(super::device::float16_on_cpu_error()),
            Precision::Int8 => {
                let kernel = kernel.unwrap_or_else(Kernel::detect);
                for l in &mut layers {
                    for lin in [&mut l.qkv, &mut l.attn_out, &mut l.up, &mut l.down] {
                        lin.quantize(kernel);
                    }
                }
                int8 = Some(kernel);
            }
            Precision::Bf16 => {
                let kernel = match bf16_kernel {
                    Some(k) => k,
                    None => bf16::Kernel::detect().ok_or_else(cpu::no_bf16_error)?,
                };
                for l in &mut layers {
                    for lin in [&mut l.qkv, &mut l.attn_out, &mut l.up, &mut l.down] {
                        lin.round_to_bf16(kernel);
                    }
                }
                bf16 = Some(kernel);
            }
        }
        Ok(FusedBert {
            hidden: h,
            heads: c.num_attention_heads,
            eps: c.layer_norm_eps as f32,
            vocab: c.vocab_size,
            max_positions: c.max_position_embeddings,
            word: t("embeddings.word_embeddings.weight", &[c.vocab_size, h])?,
            position: t("embeddings.position_embeddings.weight", &[c.max_position_embeddings, h])?,
            token_type: token_types[..h].to_vec(),
            embed_norm: norm("embeddings.LayerNorm")?,
            layers,
            int8,
            bf16,
        })
    }

    /// The integer kernel in int8 mode (`None` otherwise).
    pub fn int8_kernel(&self) -> Option<Kernel> {
        self.int8
    }

    /// The bf16 kernel in bf16 mode (`None` otherwise).
    pub fn bf16_kernel(&self) -> Option<bf16::Kernel> {
        self.bf16
    }

    /// Runs the encoder over `seqs` (token ids, special tokens included) packed one after another
    /// and returns the last hidden states: `Σ len` rows of `hidden_size`, in `seqs` order.
    /// Work runs on the current rayon pool; `threads` is its size (for the GEMMs).
    pub fn encode<'w>(&self, seqs: &[&[u32]], ws: &'w mut Workspace, threads: usize) -> Result<&'w [f32]> {
        let h = self.hidden;
        let tokens: usize = seqs.iter().map(|s| s.len()).sum();

        let x = grown(&mut ws.hidden, tokens * h);
        let qkv = grown(&mut ws.qkv, tokens * 3 * h);
        let ctx = grown(&mut ws.ctx, tokens * h);
        let inter = grown(&mut ws.inter, tokens * self.layers.first().map_or(0, |l| l.up.out));

        self.embed_tokens(seqs, x)?;
        for layer in &self.layers {
            for row in qkv.chunks_exact_mut(3 * h) {
                row.copy_from_slice(&layer.qkv.bias);
            }
            linear(qkv, true, x, &layer.qkv, threads);
            self.attention(seqs, qkv, ctx);

            rows(x, h, |r| kernels::add_bias(r, &layer.attn_out.bias));
            linear(x, true, ctx, &layer.attn_out, threads);
            self.norm(x, &layer.attn_norm);

            linear(inter, false, x, &layer.up, threads);
            rows(inter, layer.up.out, |r| kernels::bias_gelu(r, &layer.up.bias));

            rows(x, h, |r| kernels::add_bias(r, &layer.down.bias));
            linear(x, true, inter, &layer.down, threads);
            self.norm(x, &layer.out_norm);
        }
        Ok(&ws.hidden[..tokens * h])
    }

    /// Word + position + token-type embeddings, then layer norm.
    fn embed_tokens(&self, seqs: &[&[u32]], x: &mut [f32]) -> Result<()> {
        let h = self.hidden;
        let mut rows = x.chunks_exact_mut(h);
        for seq in seqs {
            if seq.len() > self.max_positions {
                return Err(VdbError::new(
                    ErrorKind::Embed,
                    format!("a sequence of {} tokens exceeds {} positions", seq.len(), self.max_positions),
                ));
            }
            for (pos, &id) in seq.iter().enumerate() {
                let id = id as usize;
                if id >= self.vocab {
                    return Err(VdbError::new(
                        ErrorKind::Embed,
                        format!("token id {id} is outside the vocabulary ({})", self.vocab),
                    ));
                }
                let row = rows.next().expect("x holds one row per token");
                let word = &self.word[id * h..(id + 1) * h];
                let position = &self.position[pos * h..(pos + 1) * h];
                for (((r, &w), &p), &t) in row.iter_mut().zip(word).zip(position).zip(&self.token_type) {
                    *r = w + p + t;
                }
            }
        }
        self.norm(x, &self.embed_norm);
        Ok(())
    }

    fn norm(&self, x: &mut [f32], n: &LayerNorm) {
        rows(x, self.hidden, |r| kernels::layer_norm(r, &n.gamma, &n.beta, self.eps));
    }

    /// Multi-head self-attention of every sequence on its own tokens: `qkv` rows are
    /// `[q | k | v]`, `ctx` receives the heads side by side. Parallel over sequences.
    fn attention(&self, seqs: &[&[u32]], qkv: &[f32], ctx: &mut [f32]) {
        let h = self.hidden;
        let head_dim = h / self.heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let mut jobs = Vec::with_capacity(seqs.len());
        let (mut qkv_rest, mut ctx_rest) = (qkv, ctx);
        for seq in seqs {
            let (q, qr) = qkv_rest.split_at(seq.len() * 3 * h);
            let (c, cr) = std::mem::take(&mut ctx_rest).split_at_mut(seq.len() * h);
            jobs.push((seq.len(), q, c));
            (qkv_rest, ctx_rest) = (qr, cr);
        }
        jobs.into_par_iter().for_each_init(Vec::new, |scores, (len, q, c)| {
            let scores = grown(scores, len * len);
            for head in 0..self.heads {
                let off = head * head_dim;
                let (q_h, k_h, v_h) = (&q[off..], &q[h + off..], &q[2 * h + off..]);
                let c_h = &mut c[off..];
                assert!(q_h.len() >= (len - 1) * 3 * h + head_dim && c_h.len() >= (len - 1) * h + head_dim);
                // SAFETY: the assert bounds every access: Q, K, V rows are `head_dim` floats at
                // row stride 3h within `q`; the scores are len x len; ctx rows are `head_dim`
                // floats at row stride h within `c`.
                unsafe {
                    // scores = scale * Q K^T
                    gemm::gemm(
                        len,
                        len,
                        head_dim,
                        scores.as_mut_ptr(),
                        1,
                        len as isize,
                        false,
                        q_h.as_ptr(),
                        1,
                        (3 * h) as isize,
                        k_h.as_ptr(),
                        (3 * h) as isize,
                        1,
                        0.0,
                        scale,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                kernels::softmax_rows(scores, len);
                // SAFETY: as above.
                unsafe {
                    // ctx = P V
                    gemm::gemm(
                        len,
                        head_dim,
                        len,
                        c_h.as_mut_ptr(),
                        1,
                        h as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        len as isize,
                        v_h.as_ptr(),
                        1,
                        (3 * h) as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
        });
    }
}

/// Applies `f` to `x` in parallel chunks of whole rows of `width`.
fn rows(x: &mut [f32], width: usize, f: impl Fn(&mut [f32]) + Sync + Send) {
    x.par_chunks_mut(ROWS_PER_TASK * width).for_each(f);
}

/// `dst = (accumulate ? dst : 0) + x W^T` with `x` of `l.inp` columns and `dst` of `l.out`.
/// In int8 or bf16 mode the product runs on the layer's int8 or bf16 weights.
fn linear(dst: &mut [f32], accumulate: bool, x: &[f32], l: &Linear, threads: usize) {
    if let Some(q) = &l.int8 {
        return quant::linear(dst, accumulate, x, q);
    }
    if let Some(b) = &l.bf16 {
        return bf16::linear(dst, accumulate, x, b);
    }
    cpu::f32_gemm(dst, accumulate, x, &l.weight, l.out, threads);
}
