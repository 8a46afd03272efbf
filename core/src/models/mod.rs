//! Image encoders pre-trained on noisy labels, and the host-seeded initialisers they share.

mod init;
mod precision;
mod resnet;
mod vit;

pub use init::{HostInit, stable_param_ids};
pub use precision::{Precision, compute_copy, norm_in_f32, to_dtype};
pub use resnet::{BasicBlock, ResNet, ResNetConfig};
pub use vit::{Vit, VitBlock, VitConfig, VitMlp};

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{DType, Tensor};

/// Any of the encoders, so training, checkpoints and extraction take one type.
#[derive(Module, Debug)]
pub enum Encoder {
    ResNet(ResNet),
    Vit(Vit),
}

impl Encoder {
    /// Features of a batch of images, `[B, C, H, W]` -> `[B, D]`, in f32 whatever precision
    /// the encoder's weights are in (see [`compute_copy`]).
    pub fn embed(&self, images: Tensor<4>) -> Tensor<2> {
        let images = to_dtype(images, self.compute_dtype());
        let features = match self {
            Self::ResNet(m) => m.embed(images),
            Self::Vit(m) => m.embed(images),
        };
        to_dtype(features, DType::F32)
    }

    /// Class logits, in f32.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let classifier = self.classifier();
        let features = to_dtype(self.embed(images), classifier.weight.val().dtype());
        to_dtype(classifier.forward(features), DType::F32)
    }

    fn classifier(&self) -> &Linear {
        match self {
            Self::ResNet(m) => &m.classifier,
            Self::Vit(m) => &m.classifier,
        }
    }

    /// The float type the encoder's first layer computes in.
    fn compute_dtype(&self) -> DType {
        match self {
            Self::ResNet(m) => m.stem.weight.val().dtype(),
            Self::Vit(m) => m.patch_embedding.weight.val().dtype(),
        }
    }
}
