use serde::{Deserialize, Serialize};

use crate::data::Normalize;

/// What an encoder is fed: images resampled to `image_size` square (with the encoder's
/// channels), scaled to [0, 1] and normalised by `normalize`. It belongs to the trained model,
/// so extraction and fine-tuning feed the encoder as its training did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputTransform {
    pub image_size: usize,
    pub normalize: Option<Normalize>,
}

impl InputTransform {
    /// Images of `image_size` pixels scaled to [0, 1], not normalised.
    pub fn new(image_size: usize) -> Self {
        Self { image_size, normalize: None }
    }

    /// The input of torchvision's and timm's ImageNet models: `image_size` pixels normalised by
    /// ImageNet's statistics.
    pub fn imagenet(image_size: usize) -> Self {
        Self { image_size, normalize: Some(Normalize::imagenet()) }
    }
}
