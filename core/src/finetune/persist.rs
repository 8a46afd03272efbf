//! Fine-tuned models on disk. `trained_bytes` keeps only what trained: the LoRA adapters and the
//! head (a file a fraction of the encoder's size), or everything after full fine-tuning.
//! `merged_bytes` folds the adapters into their base weights and writes the whole model, which
//! `load_merged` (and so `nml extract`) reads back.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::{FinetuneConfig, Finetuner};
use crate::error::{NmlError, Result};
use crate::models::HostInit;
use crate::pretrain::CheckpointMeta;
use crate::store::{load_module, metadata_entry, module_bytes_matching};

pub const FINETUNE_META_KEY: &str = "nml.finetune";

/// The tensor paths LoRA trains: each adapter's two factors, and the head.
const ADAPTERS_AND_HEAD: &str = r"(\.lora\.[ab]$)|(^head\.)";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FinetuneMeta {
    pub config: FinetuneConfig,
    /// The pre-trained checkpoint's metadata (its architecture and pre-training config).
    pub base: CheckpointMeta,
    /// Classes of the downstream task (the head's outputs).
    pub num_classes: usize,
    pub image_size: usize,
    /// True when the file holds the whole model with adapters merged.
    pub merged: bool,
}

fn meta_entry(meta: &FinetuneMeta) -> [(&'static str, String); 1] {
    [(FINETUNE_META_KEY, serde_json::to_string(meta).expect("plain data"))]
}

/// The trained parameters only: adapters and head for LoRA, encoder and head otherwise.
pub fn trained_bytes(model: &Finetuner, meta: &FinetuneMeta) -> Result<Vec<u8>> {
    let meta = FinetuneMeta { merged: false, ..meta.clone() };
    let pattern = meta.config.method.uses_lora().then_some(ADAPTERS_AND_HEAD);
    module_bytes_matching(model, &meta_entry(&meta), pattern)
}

/// The whole model with every adapter merged into its base weight.
pub fn merged_bytes(model: Finetuner, meta: &FinetuneMeta) -> Result<Vec<u8>> {
    let meta = FinetuneMeta { merged: true, ..meta.clone() };
    module_bytes_matching(&model.merged(), &meta_entry(&meta), None)
}

/// The metadata of a fine-tuned model file, if it is one.
pub fn read_finetune_meta(bytes: &[u8], name: &str) -> Result<Option<FinetuneMeta>> {
    metadata_entry(bytes, name, FINETUNE_META_KEY)?
        .map(|json| {
            serde_json::from_str(&json).map_err(|e| {
                NmlError::format(name, format!("bad `{FINETUNE_META_KEY}` metadata: {e}"))
            })
        })
        .transpose()
}

/// A merged fine-tuned model written by [`merged_bytes`].
pub fn load_merged(bytes: &[u8], name: &str, device: &Device) -> Result<(Finetuner, FinetuneMeta)> {
    let meta = read_finetune_meta(bytes, name)?.ok_or_else(|| {
        NmlError::format(
            name,
            format!("not a fine-tuned model (no `{FINETUNE_META_KEY}` metadata)"),
        )
    })?;
    if !meta.merged {
        return Err(NmlError::format(
            name,
            "holds only the trained parameters (from `nml tune --save`); export the whole model with `nml tune --export`",
        ));
    }
    meta.base.config.validate().map_err(|e| NmlError::format(name, e.to_string()))?;
    let encoder =
        meta.base.config.init_encoder(meta.base.in_channels, meta.base.num_classes, 0, device);
    let head =
        HostInit::new(0).linear(meta.base.config.model.feature_dim(), meta.num_classes, device);
    let mut model = Finetuner { encoder, head };
    load_module(&mut model, bytes, name)?;
    Ok((model, meta))
}
