use super::{global_average_pool, norm_in_f32};
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig, Linear};
use burn::prelude::Config;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::init::{HostInit, stable_param_ids};

/// A ResNet for small images (grey or RGB): a 3x3 stem, stages of basic blocks (the first block of
/// every stage after the first halves the resolution), global average pooling to the feature
/// vector, and a linear classifier on it.
#[derive(Config, Debug, PartialEq)]
pub struct ResNetConfig {
    #[config(default = 1)]
    pub in_channels: usize,
    /// Channels of each stage; the feature dimension is the last one.
    pub widths: Vec<usize>,
    /// Basic blocks in every stage.
    #[config(default = 1)]
    pub blocks_per_stage: usize,
    pub num_classes: usize,
}

/// `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, the shortcut a strided 1x1
/// convolution with batch norm when the shape changes.
#[derive(Module, Debug)]
pub struct BasicBlock {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub shortcut: Option<Projection>,
}

#[derive(Module, Debug)]
pub struct Projection {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

impl BasicBlock {
    fn new(c_in: usize, c_out: usize, stride: usize, init: &mut HostInit, device: &Device) -> Self {
        let shortcut = (stride != 1 || c_in != c_out).then(|| Projection {
            conv: init.conv2d([c_in, c_out], 1, stride, 0, device),
            bn: BatchNormConfig::new(c_out).init(device),
        });
        Self {
            conv1: init.conv2d([c_in, c_out], 3, stride, 1, device),
            bn1: BatchNormConfig::new(c_out).init(device),
            conv2: init.conv2d([c_out, c_out], 3, 1, 1, device),
            bn2: BatchNormConfig::new(c_out).init(device),
            shortcut,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = relu(norm_in_f32(self.conv1.forward(x.clone()), |h| self.bn1.forward(h)));
        let h = norm_in_f32(self.conv2.forward(h), |h| self.bn2.forward(h));
        let skip = match &self.shortcut {
            Some(p) => norm_in_f32(p.conv.forward(x), |h| p.bn.forward(h)),
            None => x,
        };
        relu(h + skip)
    }
}

#[derive(Module, Debug)]
pub struct ResNet {
    pub stem: Conv2d,
    pub stem_bn: BatchNorm,
    pub blocks: Vec<BasicBlock>,
    pub classifier: Linear,
}

impl ResNetConfig {
    pub fn feature_dim(&self) -> usize {
        *self.widths.last().expect("validated: at least one stage")
    }

    pub fn init(&self, seed: u64, device: &Device) -> ResNet {
        assert!(
            !self.widths.is_empty() && self.blocks_per_stage > 0,
            "a ResNet needs a stage and a block"
        );
        let mut init = HostInit::new(seed);
        let first = self.widths[0];
        let stem = init.conv2d([self.in_channels, first], 3, 1, 1, device);
        let mut blocks = Vec::new();
        let mut c_in = first;
        for (stage, &width) in self.widths.iter().enumerate() {
            for block in 0..self.blocks_per_stage {
                let stride = if stage > 0 && block == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(c_in, width, stride, &mut init, device));
                c_in = width;
            }
        }
        stable_param_ids(ResNet {
            stem,
            stem_bn: BatchNormConfig::new(first).init(device),
            blocks,
            classifier: init.linear(c_in, self.num_classes, device),
        })
    }
}

impl ResNet {
    /// The feature vector of each image (`[B, C, H, W]` -> `[B, D]`): what `nml extract` exports.
    pub fn embed(&self, images: Tensor<4>) -> Tensor<2> {
        let mut h = relu(norm_in_f32(self.stem.forward(images), |h| self.stem_bn.forward(h)));
        for block in &self.blocks {
            h = block.forward(h);
        }
        global_average_pool(h)
    }

    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.classifier.forward(self.embed(images))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn config() -> ResNetConfig {
        ResNetConfig::new(vec![8, 16], 10)
    }

    #[test]
    fn shapes_follow_the_config() {
        let device = Device::flex();
        let model = config().init(0, &device);
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![0.5f32; 2 * 28 * 28], [2, 1, 28, 28]),
            &device,
        );
        assert_eq!(model.embed(x.clone()).dims(), [2, 16]);
        assert_eq!(model.forward(x).dims(), [2, 10]);
        // stem, two blocks, one projection (the stride-2 stage), classifier
        assert_eq!(model.blocks.len(), 2);
        assert!(model.blocks[0].shortcut.is_none() && model.blocks[1].shortcut.is_some());
    }

    #[test]
    fn same_seed_same_weights_other_seed_other_weights() {
        let device = Device::flex();
        let w = |seed| model_weights(&config().init(seed, &device));
        assert_eq!(w(3), w(3));
        assert_ne!(w(3), w(4));
    }

    fn model_weights(model: &ResNet) -> Vec<f32> {
        model.stem.weight.val().into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }
}
