//! What a pre-training run directory records beside the weights: the config, the finished
//! epochs and, for contrastive runs, the text tower's words.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{EpochRecord, PretrainConfig};
use crate::error::Result;
use crate::train::RunDir;

/// The safetensors header entry of a pre-training checkpoint.
pub const META_KEY: &str = "nml.pretrain";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub config: PretrainConfig,
    pub num_classes: usize,
    /// Channels of the training images (1 grey, 3 RGB). Left out for grey runs, so checkpoints
    /// written before colour images existed read (and compare) as they were.
    #[serde(default = "grey", skip_serializing_if = "is_grey")]
    pub in_channels: usize,
    /// Epochs finished; the run is complete when this equals `config.epochs`.
    pub epochs_done: usize,
    pub history: Vec<EpochRecord>,
    /// The text tower's words, for contrastive runs (the embedding's size depends on them).
    #[serde(default)]
    pub vocabulary: Vec<String>,
}

fn grey() -> usize {
    1
}

fn is_grey(channels: &usize) -> bool {
    *channels == 1
}

/// The metadata of the run saved in `dir`, if there is one.
pub fn saved_run(dir: &Path) -> Result<Option<CheckpointMeta>> {
    Ok(RunDir::new(dir, META_KEY).saved::<CheckpointMeta>()?.map(|(_, meta)| meta))
}

/// Whether `dir` holds a finished run of `config` (every epoch done), which pre-training would
/// load rather than train.
pub fn finished_run(dir: &Path, config: &PretrainConfig) -> Result<bool> {
    Ok(saved_run(dir)?.is_some_and(|m| m.config == *config && m.epochs_done == config.epochs))
}
