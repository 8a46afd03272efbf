use serde::{Deserialize, Serialize};

use crate::data::AugmentConfig;
use crate::error::{NmlError, Result};
use crate::models::{
    ComputePrecision, Encoder, InputTransform, ResNetConfig, StandardModel, VitConfig,
};
use crate::noise::LabelNoise;
use crate::train::OptimizerConfig;

/// The encoder's architecture and size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ModelShape {
    /// Channels of each ResNet stage (the last is the feature dimension).
    Resnet { widths: Vec<usize>, blocks_per_stage: usize },
    /// A ViT on `patch_size` patches; `dim` is the feature dimension.
    Vit { patch_size: usize, dim: usize, depth: usize, heads: usize, mlp_ratio: usize },
    /// A standard architecture at real size, in its PyTorch library's key layout.
    Standard { model: StandardModel },
}

impl ModelShape {
    /// Width of the encoder's feature vector.
    pub fn feature_dim(&self) -> usize {
        match self {
            Self::Resnet { widths, .. } => widths.last().copied().unwrap_or(0),
            Self::Vit { dim, .. } => *dim,
            Self::Standard { model } => model.feature_dim(),
        }
    }

    /// A small ViT for 28 x 28 (or 14 x 14) images: 7-pixel patches, 64 wide, 4 blocks.
    pub fn small_vit() -> Self {
        Self::Vit { patch_size: 7, dim: 64, depth: 4, heads: 4, mlp_ratio: 4 }
    }
}

/// What pre-training optimises.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Objective {
    /// Cross-entropy on the (noisy) class labels.
    #[default]
    Supervised,
    /// CLIP-style image-text contrastive learning on captions built from the class names.
    Contrastive {
        /// Width of the shared image-text space.
        embed_dim: usize,
        /// Caption templates; `{}` becomes the class name.
        templates: Vec<String>,
        /// Class names by class index (empty: the index itself).
        class_names: Vec<String>,
        /// Longest caption, in words.
        max_words: usize,
        /// Share of pairs whose caption is swapped with another pair's.
        caption_noise: f64,
    },
}

impl Objective {
    /// Contrastive pre-training on digits: "a photo of the digit seven" and the like.
    pub fn digit_captions(caption_noise: f64) -> Self {
        let names =
            ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
        Self::Contrastive {
            embed_dim: 64,
            templates: [
                "a photo of the digit {}",
                "a handwritten {}",
                "the number {}",
                "a picture of a {}",
            ]
            .map(String::from)
            .to_vec(),
            class_names: names.map(String::from).to_vec(),
            max_words: 8,
            caption_noise,
        }
    }
}

/// Everything that decides a pre-training run on noisy labels or noisy captions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    pub model: ModelShape,
    #[serde(default)]
    pub objective: Objective,
    /// Images are resampled to this square size before training and extraction.
    pub image_size: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerConfig,
    /// Corruption applied to the training labels once, before training (`None`: clean).
    pub noise: Option<LabelNoise>,
    pub augment: AugmentConfig,
    pub seed: u64,
    /// f32, or mixed precision (bf16 / f16 compute on f32 weights) where the backend has it.
    #[serde(default)]
    pub precision: ComputePrecision,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            model: ModelShape::Resnet { widths: vec![16, 32, 64], blocks_per_stage: 1 },
            objective: Objective::Supervised,
            image_size: 28,
            epochs: 5,
            batch_size: 128,
            optimizer: OptimizerConfig::Adamw { lr: 2e-3, weight_decay: 5e-4 },
            noise: None,
            augment: AugmentConfig::default(),
            seed: 0,
            precision: ComputePrecision::F32,
        }
    }
}

impl PretrainConfig {
    /// The encoder this config describes for images of `in_channels` channels and
    /// `num_classes` classes, initialised from `seed` on the host.
    pub fn init_encoder(
        &self,
        in_channels: usize,
        num_classes: usize,
        seed: u64,
        device: &burn::tensor::Device,
    ) -> Encoder {
        match &self.model {
            ModelShape::Resnet { widths, blocks_per_stage } => Encoder::ResNet(
                ResNetConfig::new(widths.clone(), num_classes)
                    .with_blocks_per_stage(*blocks_per_stage)
                    .with_in_channels(in_channels)
                    .init(seed, device),
            ),
            &ModelShape::Vit { patch_size, dim, depth, heads, mlp_ratio } => Encoder::Vit(
                VitConfig::new(self.image_size, patch_size, dim, depth, heads, num_classes)
                    .with_mlp_ratio(mlp_ratio)
                    .with_in_channels(in_channels)
                    .init(seed, device),
            ),
            ModelShape::Standard { model } => {
                model.init(in_channels, self.image_size, num_classes, seed, device)
            }
        }
    }

    /// How the trained encoder is fed: at `image_size`, normalised as in training.
    pub fn input(&self) -> InputTransform {
        InputTransform { image_size: self.image_size, normalize: self.augment.normalize.clone() }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(NmlError::Invalid(m));
        match &self.model {
            ModelShape::Resnet { widths, blocks_per_stage } => {
                if widths.is_empty() || widths.contains(&0) || *blocks_per_stage == 0 {
                    return bad(
                        "a ResNet needs at least one stage, one block, and non-zero widths".into(),
                    );
                }
            }
            &ModelShape::Vit { patch_size, dim, depth, heads, mlp_ratio } => {
                if patch_size == 0 || !self.image_size.is_multiple_of(patch_size) {
                    return bad(format!(
                        "ViT patches ({patch_size}) must tile the image ({})",
                        self.image_size
                    ));
                }
                if depth == 0 || heads == 0 || mlp_ratio == 0 || dim % heads != 0 {
                    return bad(format!(
                        "a ViT needs depth, heads and mlp_ratio >= 1 and heads dividing dim (got dim {dim}, heads {heads})"
                    ));
                }
            }
            ModelShape::Standard { model } => model.check_image_size(self.image_size)?,
        }
        if self.epochs == 0 || self.batch_size < 2 || self.image_size < 4 {
            return bad(format!(
                "epochs must be >= 1, batch_size >= 2 and image_size >= 4 (got {}, {}, {})",
                self.epochs, self.batch_size, self.image_size
            ));
        }
        if let Objective::Contrastive { embed_dim, templates, max_words, caption_noise, .. } =
            &self.objective
            && (*embed_dim == 0
                || templates.is_empty()
                || *max_words == 0
                || !(0.0..=1.0).contains(caption_noise))
        {
            return bad("contrastive pre-training needs embed_dim and max_words >= 1, a template, and caption_noise in [0, 1]".into());
        }
        if self.precision == ComputePrecision::F16 && !self.optimizer.is_scale_invariant() {
            return bad(
                "f16 needs loss scaling, which nml pairs with AdamW only; use bf16 with SGD".into(),
            );
        }
        self.augment.validate()?;
        self.optimizer.validate()
    }

    /// The noise ratio this run was asked for: the caption noise of a contrastive run, else the
    /// label noise (0 for clean runs and transition matrices).
    pub fn noise_ratio(&self) -> f64 {
        if let Objective::Contrastive { caption_noise, .. } = &self.objective {
            return *caption_noise;
        }
        match &self.noise {
            Some(
                LabelNoise::Symmetric { ratio }
                | LabelNoise::SymmetricAll { ratio }
                | LabelNoise::PairFlip { ratio, .. },
            ) => *ratio,
            _ => 0.0,
        }
    }
}
