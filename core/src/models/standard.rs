use std::fmt;
use std::path::Path;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::pytorch_layout::checkpoint_shapes;
use super::{EfficientNetLiteConfig, Encoder, InputTransform, TorchvisionResNetConfig};
use crate::data::Normalize;
use crate::error::{NmlError, Result};

/// The standard architectures nml builds in the key layout of the PyTorch library they come
/// from, so the checkpoints people have load into them and what nml trains loads back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum StandardModel {
    /// torchvision's `resnet18`.
    Resnet18,
    /// torchvision's `resnet34`.
    Resnet34,
    /// torchvision's `resnet50`.
    Resnet50,
    /// torchvision's `resnet101`.
    Resnet101,
    /// `efficientnet-lite-pytorch`'s `efficientnet-lite0`.
    EfficientnetLite0,
}

impl StandardModel {
    /// The name the PyTorch library gives it, as `--model` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Resnet18 => "resnet18",
            Self::Resnet34 => "resnet34",
            Self::Resnet50 => "resnet50",
            Self::Resnet101 => "resnet101",
            Self::EfficientnetLite0 => "efficientnet-lite0",
        }
    }

    /// Width of its pooled features.
    pub fn feature_dim(self) -> usize {
        match self.resnet_depth() {
            Some(depth) => TorchvisionResNetConfig::new(depth, 1).feature_dim(),
            None => EfficientNetLiteConfig::new(1).feature_dim(),
        }
    }

    /// The input its published ImageNet weights expect: 224 pixels, normalised by ImageNet's
    /// statistics (the ResNets) or as `(x - 127) / 128` (EfficientNet-Lite, as TensorFlow
    /// trained it).
    pub fn imagenet_input(self) -> InputTransform {
        match self {
            Self::EfficientnetLite0 => {
                InputTransform { image_size: 224, normalize: Some(Normalize::centered_bytes()) }
            }
            _ => InputTransform::imagenet(224),
        }
    }

    /// The model for images of `in_channels` channels and `num_classes` classes, initialised
    /// from `seed` on the host.
    pub fn init(
        self,
        in_channels: usize,
        num_classes: usize,
        seed: u64,
        device: &Device,
    ) -> Encoder {
        match self.resnet_depth() {
            Some(depth) => Encoder::TorchvisionResNet(
                TorchvisionResNetConfig::new(depth, num_classes)
                    .with_in_channels(in_channels)
                    .init(seed, device),
            ),
            None => Encoder::EfficientNetLite(
                EfficientNetLiteConfig::new(num_classes)
                    .with_in_channels(in_channels)
                    .init(seed, device),
            ),
        }
    }

    /// The model with the weights of a PyTorch checkpoint (`.pth`, `.pt`, `.bin` or
    /// `.safetensors` in the library's key layout): its class count and input channels are
    /// read from the checkpoint's classifier and stem.
    pub fn load_pytorch(self, path: &Path, device: &Device) -> Result<Encoder> {
        let name = path.display().to_string();
        let keys = self.stem_and_classifier_keys();
        let shapes = checkpoint_shapes(path, &keys)?;
        let found = |i: usize| {
            shapes[i].clone().ok_or_else(|| {
                let key = keys[i];
                NmlError::format(&name, format!("has no `{key}`: not a {} checkpoint", self.name()))
            })
        };
        let (stem, head) = (found(0)?, found(1)?);
        let (Some(&in_channels), Some(&num_classes)) = (stem.get(1), head.first()) else {
            return Err(NmlError::format(
                &name,
                format!("`{}` {stem:?} or `{}` {head:?} has too few dimensions", keys[0], keys[1]),
            ));
        };
        if !matches!(in_channels, 1 | 3) || num_classes == 0 {
            return Err(NmlError::format(
                &name,
                format!(
                    "a stem for {in_channels} channels and a head for {num_classes} classes: not an image classifier nml can use"
                ),
            ));
        }
        let mut encoder = self.init(in_channels, num_classes, 0, device);
        encoder.load_pytorch(path)?;
        Ok(encoder)
    }

    /// The PyTorch keys of the first convolution's and the classifier's weights.
    fn stem_and_classifier_keys(self) -> [&'static str; 2] {
        match self {
            Self::EfficientnetLite0 => ["_conv_stem.weight", "_fc.weight"],
            _ => ["conv1.weight", "fc.weight"],
        }
    }

    fn resnet_depth(self) -> Option<usize> {
        match self {
            Self::Resnet18 => Some(18),
            Self::Resnet34 => Some(34),
            Self::Resnet50 => Some(50),
            Self::Resnet101 => Some(101),
            Self::EfficientnetLite0 => None,
        }
    }
}

impl fmt::Display for StandardModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
