//! Image encoders pre-trained on noisy labels, and the host-seeded initialisers they share.

mod init;
mod resnet;
mod vit;

pub use init::{HostInit, stable_param_ids};
pub use resnet::{BasicBlock, ResNet, ResNetConfig};
pub use vit::{Vit, VitBlock, VitConfig, VitMlp};

use burn::module::Module;
use burn::tensor::Tensor;

/// Any of the encoders, so training, checkpoints and extraction take one type.
#[derive(Module, Debug)]
pub enum Encoder {
    ResNet(ResNet),
    Vit(Vit),
}

impl Encoder {
    /// Features of a batch of images, `[B, C, H, W]` -> `[B, D]`.
    pub fn embed(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Self::ResNet(m) => m.embed(images),
            Self::Vit(m) => m.embed(images),
        }
    }

    /// Class logits.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Self::ResNet(m) => m.forward(images),
            Self::Vit(m) => m.forward(images),
        }
    }
}
