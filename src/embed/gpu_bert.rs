//! The BERT forward pass of [`super::gpu::GpuEmbedder`], in candle ops on any candle device (the
//! CUDA device in a `cuda` build; the tests run it on candle's CPU device).
//!
//! Mixed precision, as the CPU's bf16 mode: the matrix products (QKV, attention, output, FFN) take
//! their inputs in the compute dtype (float32, float16 or bf16; cuBLAS sums in float32), while the
//! residual stream, LayerNorm, softmax, GELU and biases stay in float32. Running the whole of
//! candle-transformers' stock `BertModel` in half precision instead loses too much: in bf16 its
//! residual stream keeps 8 bits of mantissa (min cosine 0.995 to float32 on the golden
//! sentences), and its attention mask, `f32::MIN` cast to the dtype, is -inf in float16 and bf16,
//! so `0 * -inf` makes every position NaN.

use super::model::BertConfig as Config;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder};

/// A linear layer: weight transposed to (in, out) in the compute dtype, bias in float32.
struct Linear {
    weight_t: Tensor,
    bias: Tensor,
}

impl Linear {
    fn load(vb: &VarBuilder, name: &str, dtype: DType) -> candle_core::Result<Linear> {
        let w = vb.get_unchecked_dtype(&format!("{name}.weight"), DType::F32)?;
        let b = vb.get_unchecked_dtype(&format!("{name}.bias"), DType::F32)?;
        Ok(Linear { weight_t: w.t()?.contiguous()?.to_dtype(dtype)?, bias: b })
    }

    /// Several linear layers with one input as one product (QKV): weights side by side.
    fn fused(parts: Vec<Linear>) -> candle_core::Result<Linear> {
        let w: Vec<&Tensor> = parts.iter().map(|l| &l.weight_t).collect();
        let b: Vec<&Tensor> = parts.iter().map(|l| &l.bias).collect();
        Ok(Linear { weight_t: Tensor::cat(&w, 1)?, bias: Tensor::cat(&b, 0)? })
    }

    /// `x`: (tokens, in) in the compute dtype; returns (tokens, out) in float32.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.weight_t)?.to_dtype(DType::F32)?.broadcast_add(&self.bias)
    }
}

struct Layer {
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
}

/// BERT's encoder and input embeddings, ready on one device.
pub struct GpuBert {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
    /// The matrix products' input dtype.
    dtype: DType,
}

fn layer_norm(vb: &VarBuilder, name: &str, eps: f64) -> candle_core::Result<LayerNorm> {
    let w = vb.get_unchecked_dtype(&format!("{name}.weight"), DType::F32)?;
    let b = vb.get_unchecked_dtype(&format!("{name}.bias"), DType::F32)?;
    Ok(LayerNorm::new(w, b, eps))
}

fn embedding(vb: &VarBuilder, name: &str, dim: usize) -> candle_core::Result<Embedding> {
    Ok(Embedding::new(vb.get_unchecked_dtype(&format!("{name}.weight"), DType::F32)?, dim))
}

impl GpuBert {
    /// Loads the weights of `vb` (float32 tensors, names without or with a `bert.` prefix) onto
    /// its device; the linear layers' weights in `dtype`.
    pub fn load(vb: VarBuilder, c: &Config, dtype: DType) -> candle_core::Result<GpuBert> {
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") { vb.pp("bert") } else { vb };
        let h = c.hidden_size;
        let e = vb.pp("embeddings");
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let qkv = ["query", "key", "value"]
                .into_iter()
                .map(|p| Linear::load(&l, &format!("attention.self.{p}"), dtype))
                .collect::<candle_core::Result<Vec<_>>>()?;
            layers.push(Layer {
                qkv: Linear::fused(qkv)?,
                attn_out: Linear::load(&l, "attention.output.dense", dtype)?,
                attn_norm: layer_norm(&l, "attention.output.LayerNorm", c.layer_norm_eps)?,
                up: Linear::load(&l, "intermediate.dense", dtype)?,
                down: Linear::load(&l, "output.dense", dtype)?,
                out_norm: layer_norm(&l, "output.LayerNorm", c.layer_norm_eps)?,
            });
        }
        Ok(GpuBert {
            words: embedding(&e, "word_embeddings", h)?,
            positions: embedding(&e, "position_embeddings", h)?,
            token_types: embedding(&e, "token_type_embeddings", h)?,
            embed_norm: layer_norm(&e, "LayerNorm", c.layer_norm_eps)?,
            layers,
            heads: c.num_attention_heads,
            hidden: h,
            dtype,
        })
    }

    /// Hidden states (n, len, hidden) in float32 of `ids` (n, len) u32, token type 0; `mask`:
    /// (n, 1, 1, len) float32, 0 at real tokens and a large negative number at padding.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (n, len) = ids.dims2()?;
        let (h, heads) = (self.hidden, self.heads);
        let d = h / heads;
        let positions = Tensor::arange(0u32, len as u32, ids.device())?;
        let x = (self.words.forward(ids)? + self.token_types.forward(&ids.zeros_like()?)?)?
            .broadcast_add(&self.positions.forward(&positions)?)?;
        let mut x = self.embed_norm.forward(&x)?.reshape((n * len, h))?;
        let scale = 1.0 / (d as f64).sqrt();
        // (tokens, h) -> (n, heads, len, d), contiguous, in the compute dtype.
        let split = |t: Tensor| t.reshape((n, len, heads, d))?.transpose(1, 2)?.contiguous();
        for l in &self.layers {
            let qkv = l.qkv.forward(&x.to_dtype(self.dtype)?)?.to_dtype(self.dtype)?;
            let q = split(qkv.narrow(1, 0, h)?)?;
            let k = split(qkv.narrow(1, h, h)?)?;
            let v = split(qkv.narrow(1, 2 * h, h)?)?;
            let scores = (q.matmul(&k.t()?)?.to_dtype(DType::F32)? * scale)?.broadcast_add(mask)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(self.dtype)?;
            let ctx = probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((n * len, h))?;
            x = l.attn_norm.forward(&(l.attn_out.forward(&ctx)? + &x)?)?;
            let up = l.up.forward(&x.to_dtype(self.dtype)?)?.gelu_erf()?.to_dtype(self.dtype)?;
            x = l.out_norm.forward(&(l.down.forward(&up)? + &x)?)?;
        }
        x.reshape((n, len, h))
    }
}

/// The additive attention mask of a padded batch, (n, 1, 1, longest) float32: 0 at each sequence's
/// tokens, `f32::MIN` at padding (softmax then gives padding exactly 0).
pub fn additive_mask(lens: &[usize], longest: usize, device: &Device) -> candle_core::Result<Tensor> {
    let mut mask = vec![f32::MIN; lens.len() * longest];
    for (i, &len) in lens.iter().enumerate() {
        mask[i * longest..i * longest + len].fill(0.0);
    }
    Tensor::from_vec(mask, (lens.len(), 1, 1, longest), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_is_zero_at_tokens_and_lowest_at_padding() {
        let m = additive_mask(&[2, 3], 3, &Device::Cpu).unwrap();
        assert_eq!(m.dims(), &[2, 1, 1, 3]);
        assert_eq!(m.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![0.0, 0.0, f32::MIN, 0.0, 0.0, 0.0]);
        // Softmax over a padded row: padding gets exactly 0, the tokens share 1, nothing is NaN.
        let p = candle_nn::ops::softmax_last_dim(
            &(Tensor::new(&[[1f32, 2.0, 3.0]], &Device::Cpu).unwrap()
                + m.get(0).unwrap().flatten_all().unwrap().unsqueeze(0).unwrap())
            .unwrap(),
        )
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
        assert_eq!(p[0][2], 0.0);
        assert!((p[0][0] + p[0][1] - 1.0).abs() < 1e-6 && p[0].iter().all(|x| x.is_finite()));
    }
}
