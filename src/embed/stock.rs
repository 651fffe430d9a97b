//! The stock candle-transformers `BertModel` forward pass on padded batches: the reference the
//! fused forward ([`super::bert`]) is checked against, and the benchmark baseline.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};

use super::model::{ModelFolder, Pooling};
use crate::error::{ErrorKind, Result, VdbError};

/// candle-transformers' BERT on the CPU.
pub struct StockBert {
    model: BertModel,
}

fn embed_error(e: candle_core::Error) -> VdbError {
    VdbError::new(ErrorKind::Embed, format!("candle forward pass failed: {e}"))
}

impl StockBert {
    pub fn load(folder: &ModelFolder) -> Result<StockBert> {
        let file = folder.dir.join("config.json");
        let config: Config = serde_json::from_str(&folder.config_json).map_err(|e| {
            VdbError::new(ErrorKind::Model, format!("model file {}: {e}", file.display())).with_file(&file)
        })?;
        let vb = VarBuilder::from_tensors(folder.weights.clone(), DType::F32, &Device::Cpu);
        let model = BertModel::load(vb, &config).map_err(|e| {
            let file = folder.dir.join("model.safetensors");
            VdbError::new(ErrorKind::Model, format!("model file {}: {e}", file.display())).with_file(&file)
        })?;
        Ok(StockBert { model })
    }

    /// Pooled, unnormalised vectors of `seqs` (padded to the longest, masked), written row by row
    /// into `out` (`seqs.len() * hidden_size`).
    pub fn pooled(&self, seqs: &[&[u32]], pooling: Pooling, out: &mut [f32]) -> Result<()> {
        let (n, longest) = (seqs.len(), seqs.iter().map(|s| s.len()).max().unwrap_or(0));
        let mut ids = vec![0u32; n * longest];
        let mut mask = vec![0u32; n * longest];
        for (i, seq) in seqs.iter().enumerate() {
            ids[i * longest..i * longest + seq.len()].copy_from_slice(seq);
            mask[i * longest..i * longest + seq.len()].fill(1);
        }
        let run = || -> candle_core::Result<Vec<f32>> {
            let ids = Tensor::from_vec(ids, (n, longest), &Device::Cpu)?;
            let mask = Tensor::from_vec(mask, (n, longest), &Device::Cpu)?;
            let hidden = self.model.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
            let pooled = match pooling {
                Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
                Pooling::Mean => {
                    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
                    summed.broadcast_div(&mask.sum(1)?)?
                }
            };
            pooled.flatten_all()?.to_vec1::<f32>()
        };
        out.copy_from_slice(&run().map_err(embed_error)?);
        Ok(())
    }
}
