use serde::{Deserialize, Serialize};

use super::augment::AugmentConfig;
use crate::error::{NmlError, Result};
use crate::noise::LabelNoise;

/// The optimiser of a pre-training run; both follow a per-step cosine from `lr` to zero.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OptimizerChoice {
    Adamw { lr: f64, weight_decay: f64 },
    Sgd { lr: f64, momentum: f64, weight_decay: f64 },
}

impl OptimizerChoice {
    pub fn lr(&self) -> f64 {
        match self {
            Self::Adamw { lr, .. } | Self::Sgd { lr, .. } => *lr,
        }
    }
}

/// Everything that decides a supervised pre-training run on noisy labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    /// Channels of each ResNet stage (the last is the feature dimension).
    pub widths: Vec<usize>,
    pub blocks_per_stage: usize,
    /// Images are resampled to this square size before training and extraction.
    pub image_size: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerChoice,
    /// Corruption applied to the training labels once, before training (`None`: clean).
    pub noise: Option<LabelNoise>,
    pub augment: AugmentConfig,
    pub seed: u64,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            widths: vec![16, 32, 64],
            blocks_per_stage: 1,
            image_size: 28,
            epochs: 5,
            batch_size: 128,
            optimizer: OptimizerChoice::Adamw { lr: 2e-3, weight_decay: 5e-4 },
            noise: None,
            augment: AugmentConfig::default(),
            seed: 0,
        }
    }
}

impl PretrainConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(NmlError::Invalid(m));
        if self.widths.is_empty() || self.widths.contains(&0) || self.blocks_per_stage == 0 {
            return bad("the model needs at least one stage, one block, and non-zero widths".into());
        }
        if self.epochs == 0 || self.batch_size < 2 || self.image_size < 4 {
            return bad(format!(
                "epochs must be >= 1, batch_size >= 2 and image_size >= 4 (got {}, {}, {})",
                self.epochs, self.batch_size, self.image_size
            ));
        }
        let lr = self.optimizer.lr();
        if !(lr > 0.0 && lr.is_finite()) {
            return bad(format!("learning rate must be positive, got {lr}"));
        }
        Ok(())
    }

    /// The noise ratio this run was asked for (0 for clean runs and transition matrices).
    pub fn noise_ratio(&self) -> f64 {
        match &self.noise {
            Some(LabelNoise::Symmetric { ratio } | LabelNoise::SymmetricAll { ratio } | LabelNoise::PairFlip { ratio, .. }) => *ratio,
            _ => 0.0,
        }
    }
}
