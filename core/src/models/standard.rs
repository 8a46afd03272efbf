use std::fmt;
use std::path::Path;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::pytorch_layout::checkpoint_shapes;
use super::{
    EfficientNetLiteConfig, Encoder, InputTransform, TimmVitConfig, TorchvisionResNetConfig,
};
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
    /// timm's `vit_tiny_patch16_224`.
    VitTi16,
    /// timm's `vit_small_patch16_224`.
    VitS16,
    /// timm's `vit_base_patch16_224`.
    VitB16,
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
            Self::VitTi16 => "vit-ti16",
            Self::VitS16 => "vit-s16",
            Self::VitB16 => "vit-b16",
        }
    }

    /// Width of its pooled features.
    pub fn feature_dim(self) -> usize {
        match (self.resnet_depth(), self.vit_config(1)) {
            (Some(depth), _) => TorchvisionResNetConfig::new(depth, 1).feature_dim(),
            (_, Some(vit)) => vit.dim,
            _ => EfficientNetLiteConfig::new(1).feature_dim(),
        }
    }

    /// Width of the image-text space of CLIP-style pre-training with this image tower: CLIP's
    /// own for the towers it was released with (1024 for ResNet-50, 512 for ResNet-101 and
    /// ViT-B/16), else the feature width up to 512.
    pub fn clip_embed_dim(self) -> usize {
        match self {
            Self::Resnet50 => 1024,
            Self::Resnet101 | Self::VitB16 => 512,
            other => other.feature_dim().min(512),
        }
    }

    /// The ViTs need a multiple of their 16-pixel patches; the convolutional models take any
    /// size.
    pub fn check_image_size(self, image_size: usize) -> Result<()> {
        match self.vit_config(1) {
            Some(vit) if image_size == 0 || !image_size.is_multiple_of(vit.patch_size) => {
                Err(NmlError::Invalid(format!(
                    "{} takes images of a multiple of {} pixels, not {image_size}",
                    self.name(),
                    vit.patch_size
                )))
            }
            _ => Ok(()),
        }
    }

    /// The input its published ImageNet weights expect: 224 pixels, normalised by ImageNet's
    /// statistics (the ResNets), as `(x - 127) / 128` (EfficientNet-Lite, as TensorFlow
    /// trained it) or as `(x - 0.5) / 0.5` (timm's ViT weights, its default configuration).
    pub fn imagenet_input(self) -> InputTransform {
        let normalize = match self {
            Self::EfficientnetLite0 => Normalize::centered_bytes(),
            Self::VitTi16 | Self::VitS16 | Self::VitB16 => Normalize::inception(),
            _ => Normalize::imagenet(),
        };
        InputTransform { image_size: 224, normalize: Some(normalize) }
    }

    /// The model for images of `in_channels` channels and `image_size` pixels (which only the
    /// ViTs' position embeddings depend on; see [`StandardModel::check_image_size`]) and
    /// `num_classes` classes, initialised from `seed` on the host.
    pub fn init(
        self,
        in_channels: usize,
        image_size: usize,
        num_classes: usize,
        seed: u64,
        device: &Device,
    ) -> Encoder {
        match (self.resnet_depth(), self.vit_config(num_classes)) {
            (Some(depth), _) => Encoder::TorchvisionResNet(
                TorchvisionResNetConfig::new(depth, num_classes)
                    .with_in_channels(in_channels)
                    .init(seed, device),
            ),
            (_, Some(vit)) => Encoder::TimmVit(
                vit.with_in_channels(in_channels).with_image_size(image_size).init(seed, device),
            ),
            _ => Encoder::EfficientNetLite(
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
        let keys = self.shape_keys();
        let shapes = checkpoint_shapes(path, keys)?;
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
        let image_size = match shapes.get(2).cloned().flatten() {
            // A ViT's position embeddings, `[1, 1 + patches, dim]`, give its image size.
            Some(positions) => self.vit_image_size(&positions).ok_or_else(|| {
                NmlError::format(
                    &name,
                    format!("`pos_embed` {positions:?} does not hold a square grid of patches"),
                )
            })?,
            None => 224,
        };
        let mut encoder = self.init(in_channels, image_size, num_classes, 0, device);
        encoder.load_pytorch(path)?;
        Ok(encoder)
    }

    /// The PyTorch keys of the first convolution's and the classifier's weights, and for a ViT
    /// of its position embeddings.
    fn shape_keys(self) -> &'static [&'static str] {
        match self {
            Self::EfficientnetLite0 => &["_conv_stem.weight", "_fc.weight"],
            Self::VitTi16 | Self::VitS16 | Self::VitB16 => {
                &["patch_embed.proj.weight", "head.weight", "pos_embed"]
            }
            _ => &["conv1.weight", "fc.weight"],
        }
    }

    /// The image size of a ViT whose position embeddings have `shape`.
    fn vit_image_size(self, shape: &[usize]) -> Option<usize> {
        let vit = self.vit_config(1)?;
        let &[1, tokens, _] = shape else { return None };
        let side = (tokens.checked_sub(1)? as f64).sqrt().round() as usize;
        (side > 0 && side * side + 1 == tokens).then_some(side * vit.patch_size)
    }

    fn vit_config(self, num_classes: usize) -> Option<TimmVitConfig> {
        match self {
            Self::VitTi16 => Some(TimmVitConfig::tiny(num_classes)),
            Self::VitS16 => Some(TimmVitConfig::small(num_classes)),
            Self::VitB16 => Some(TimmVitConfig::base(num_classes)),
            _ => None,
        }
    }

    fn resnet_depth(self) -> Option<usize> {
        match self {
            Self::Resnet18 => Some(18),
            Self::Resnet34 => Some(34),
            Self::Resnet50 => Some(50),
            Self::Resnet101 => Some(101),
            Self::EfficientnetLite0 | Self::VitTi16 | Self::VitS16 | Self::VitB16 => None,
        }
    }
}

impl fmt::Display for StandardModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CLIP's widths where CLIP released the tower, the feature width up to 512 elsewhere.
    #[test]
    fn clip_spaces_follow_clip_where_it_has_the_tower() {
        let widths = [
            (StandardModel::Resnet18, 512),
            (StandardModel::Resnet50, 1024),
            (StandardModel::Resnet101, 512),
            (StandardModel::VitTi16, 192),
            (StandardModel::VitS16, 384),
            (StandardModel::VitB16, 512),
            (StandardModel::EfficientnetLite0, 512),
        ];
        for (model, width) in widths {
            assert_eq!(model.clip_embed_dim(), width, "{}", model.name());
        }
    }
}
