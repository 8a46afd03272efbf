use serde::{Deserialize, Serialize};

use crate::error::{NmlError, Result};
use crate::tune::{Method, TuneConfig};

/// How much of the pre-trained encoder a downstream run may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum FinetuneMethod {
    /// LoRA adapters on the encoder's linears (base frozen) and a new linear head.
    Lora,
    /// LoRA with NMTune's covariance and singular-value terms on the encoder's features.
    LoraNmtune,
    /// Every encoder weight trains, at a lower learning rate than the head.
    Ft,
    /// Full fine-tuning with NMTune's covariance and singular-value terms.
    FtNmtune,
}

impl FinetuneMethod {
    pub fn name(self) -> &'static str {
        match self {
            Self::Lora => "lora",
            Self::LoraNmtune => "lora-nmtune",
            Self::Ft => "ft",
            Self::FtNmtune => "ft-nmtune",
        }
    }

    pub fn uses_lora(self) -> bool {
        matches!(self, Self::Lora | Self::LoraNmtune)
    }

    pub fn regularised(self) -> bool {
        matches!(self, Self::LoraNmtune | Self::FtNmtune)
    }
}

impl std::str::FromStr for FinetuneMethod {
    type Err = NmlError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "lora" => Ok(Self::Lora),
            "lora-nmtune" => Ok(Self::LoraNmtune),
            "ft" => Ok(Self::Ft),
            "ft-nmtune" => Ok(Self::FtNmtune),
            other => Err(NmlError::Invalid(format!(
                "unknown method {other:?}; use lora, lora-nmtune, ft or ft-nmtune"
            ))),
        }
    }
}

/// Where LoRA adapters go in a ViT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum LoraTargets {
    /// The transformer blocks' MLP linears (`fc1`, `fc2`): the authors' choice.
    #[default]
    Mlp,
    /// The MLP linears and the attention projections (query, key, value, output).
    MlpAndAttention,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    pub rank: usize,
    /// The update is scaled by `alpha / rank`.
    pub alpha: f64,
    /// Share of input features dropped from the low-rank path while training (one mask per
    /// step, shared by the batch, applied to the rows of the down-projection).
    pub dropout: f64,
    pub targets: LoraTargets,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self { rank: 8, alpha: 16.0, dropout: 0.0, targets: LoraTargets::Mlp }
    }
}

/// Every knob of a LoRA or fine-tuning run. The NMTune weights (`w_cov`, `w_svd`, `top_k`)
/// default to the black-box NMTune's; there is no consistency term and no extra MLP.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneConfig {
    pub method: FinetuneMethod,
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak AdamW learning rate of the head (and of the LoRA adapters); per-step cosine to 0.
    pub lr: f64,
    /// The encoder's learning rate in full fine-tuning, as a share of `lr`.
    pub encoder_lr_ratio: f64,
    pub weight_decay: f64,
    pub w_cov: f64,
    pub w_svd: f64,
    pub top_k: usize,
    pub lora: LoraConfig,
    pub seed: u64,
    /// WiSE-FT: after training, also score the fine-tuned weights mixed with the pre-trained
    /// ones at each of these shares of the fine-tuned model (see [`super::interpolate`]); none by
    /// default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wise_alphas: Vec<f64>,
}

impl FinetuneConfig {
    pub fn for_method(method: FinetuneMethod) -> Self {
        let nmtune = TuneConfig::for_method(Method::Nmtune);
        let regularised = method.regularised();
        Self {
            method,
            epochs: 5,
            batch_size: 64,
            lr: 1e-3,
            encoder_lr_ratio: 0.1,
            weight_decay: 1e-4,
            w_cov: if regularised { nmtune.w_cov } else { 0.0 },
            w_svd: if regularised { nmtune.w_svd } else { 0.0 },
            top_k: nmtune.top_k,
            lora: LoraConfig::default(),
            seed: 0,
            wise_alphas: Vec::new(),
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(NmlError::Invalid(m));
        if self.epochs == 0 || self.batch_size < 2 {
            return bad(format!(
                "epochs must be >= 1 and batch_size >= 2 (got {}, {})",
                self.epochs, self.batch_size
            ));
        }
        let lr_ok = self.lr > 0.0 && self.lr.is_finite();
        let ratio_ok = self.encoder_lr_ratio > 0.0 && self.encoder_lr_ratio <= 1.0;
        if !lr_ok || !ratio_ok {
            return bad(format!(
                "lr must be positive and encoder_lr_ratio in (0, 1] (got {}, {})",
                self.lr, self.encoder_lr_ratio
            ));
        }
        if self.w_cov < 0.0 || self.w_svd < 0.0 || self.weight_decay < 0.0 {
            return bad("weight_decay, w_cov and w_svd must not be negative".into());
        }
        // Written so that a NaN alpha fails too.
        let alpha_ok = self.lora.alpha > 0.0;
        if self.lora.rank == 0 || !(0.0..1.0).contains(&self.lora.dropout) || !alpha_ok {
            return bad(format!(
                "LoRA needs rank >= 1, alpha > 0 and dropout in [0, 1) (got {}, {}, {})",
                self.lora.rank, self.lora.alpha, self.lora.dropout
            ));
        }
        super::wise::validate_alphas(&self.wise_alphas)
    }
}
