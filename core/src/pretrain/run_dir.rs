//! A run directory's checkpoint: the model weights (safetensors, with the config and the
//! finished epochs as metadata) and the optimiser state beside it, both written atomically.
//! The optimiser file carries the epoch in its name and is written first, so a checkpoint never
//! points at a missing or newer optimiser state.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};

use super::config::PretrainConfig;
use super::EpochRecord;
use crate::error::{NmlError, Result};
use crate::io::{read_file, write_atomic};

const META_KEY: &str = "nml.pretrain";
pub const MODEL_FILE: &str = "model.safetensors";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub config: PretrainConfig,
    pub num_classes: usize,
    /// Epochs finished; the run is complete when this equals `config.epochs`.
    pub epochs_done: usize,
    pub history: Vec<EpochRecord>,
    /// The text tower's words, for contrastive runs (the embedding's size depends on them).
    #[serde(default)]
    pub vocabulary: Vec<String>,
}

fn optimizer_file(dir: &Path, epoch: usize) -> PathBuf {
    dir.join(format!("optimizer-epoch{epoch}.bpk"))
}

pub fn model_bytes<M: Module>(model: &M, meta: &CheckpointMeta) -> Result<Vec<u8>> {
    crate::store::module_bytes(model, &[(META_KEY, serde_json::to_string(meta).expect("plain data"))])
}

pub fn save<M: Module>(dir: &Path, model: &M, optimizer: &ModuleOptimizer, meta: &CheckpointMeta) -> Result<()> {
    let opt_path = optimizer_file(dir, meta.epochs_done);
    let opt_bytes = optimizer
        .into_bytes()
        .map_err(|e| NmlError::Invalid(format!("cannot serialise the optimiser state: {e:?}")))?;
    write_atomic(&opt_path, &opt_bytes)?;
    write_atomic(&dir.join(MODEL_FILE), &model_bytes(model, meta)?)?;
    if meta.epochs_done > 1 {
        // The previous epoch's state is no longer referenced.
        let _ = std::fs::remove_file(optimizer_file(dir, meta.epochs_done - 1));
    }
    Ok(())
}

/// The metadata of a model file written by [`save`] or [`model_bytes`].
pub fn read_meta(bytes: &[u8], name: &str) -> Result<CheckpointMeta> {
    let json = crate::store::metadata_entry(bytes, name, META_KEY)?
        .ok_or_else(|| NmlError::format(name, "not an nml checkpoint (no `nml.pretrain` metadata)"))?;
    serde_json::from_str(&json).map_err(|e| NmlError::format(name, format!("bad `nml.pretrain` metadata: {e}")))
}

/// The saved model file of a run directory and its metadata, if there is one.
pub fn find(dir: &Path) -> Result<Option<(Vec<u8>, CheckpointMeta)>> {
    let path = dir.join(MODEL_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = read_file(&path)?;
    let meta = read_meta(&bytes, &path.display().to_string())?;
    Ok(Some((bytes, meta)))
}

pub fn load_optimizer(dir: &Path, epoch: usize, optimizer: ModuleOptimizer) -> Result<ModuleOptimizer> {
    let path = optimizer_file(dir, epoch);
    let bytes = read_file(&path)?;
    optimizer
        .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| NmlError::format(&path.display().to_string(), format!("cannot load the optimiser state: {e:?}")))
}
