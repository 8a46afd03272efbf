use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, PaddingConfig2d};
use burn::prelude::Config;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::init::{HostInit, stable_param_ids};
use super::{global_average_pool, norm_in_f32};

/// The ResNets of He et al. (2016) as torchvision builds them: a 7x7 stride-2 stem and a 3x3
/// max pool, four stages of basic (18, 34) or bottleneck (50, 101) blocks at 64-512 planes with
/// the stride on the 3x3 convolution ("v1.5"), global average pooling and a linear classifier.
/// Fields are named as torchvision's, so its checkpoints load through
/// [`PytorchLayout`](super::PytorchLayout).
#[derive(Config, Debug, PartialEq)]
pub struct TorchvisionResNetConfig {
    /// 18, 34, 50 or 101.
    pub depth: usize,
    pub num_classes: usize,
    #[config(default = 3)]
    pub in_channels: usize,
}

/// Blocks in each of the four stages, and whether they are bottlenecks, of a ResNet `depth`.
fn resnet_stages(depth: usize) -> Option<([usize; 4], bool)> {
    match depth {
        18 => Some(([2, 2, 2, 2], false)),
        34 => Some(([3, 4, 6, 3], false)),
        50 => Some(([3, 4, 6, 3], true)),
        101 => Some(([3, 4, 23, 3], true)),
        _ => None,
    }
}

/// Planes of the four stages; a bottleneck stage's output is four times as wide.
const PLANES: [usize; 4] = [64, 128, 256, 512];
const BOTTLENECK_EXPANSION: usize = 4;

/// torchvision's `BasicBlock` (`conv1`, `conv2`, 3x3) or `Bottleneck` (`conv1` 1x1, `conv2`
/// 3x3 with the stride, `conv3` 1x1 to four times the planes), each convolution followed by batch
/// norm, with a projection (`downsample`) on the shortcut when the shape changes.
#[derive(Module, Debug)]
pub struct TorchvisionBlock {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub conv3: Option<Conv2d>,
    pub bn3: Option<BatchNorm>,
    pub downsample: Option<Downsample>,
}

/// torchvision's `downsample` `Sequential(conv1x1, BatchNorm2d)`, whose keys are `downsample.0`
/// and `downsample.1` in its checkpoints.
#[derive(Module, Debug)]
pub struct Downsample {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

#[derive(Module, Debug)]
pub struct TorchvisionResNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub maxpool: MaxPool2d,
    pub layer1: Vec<TorchvisionBlock>,
    pub layer2: Vec<TorchvisionBlock>,
    pub layer3: Vec<TorchvisionBlock>,
    pub layer4: Vec<TorchvisionBlock>,
    pub fc: Linear,
}

impl TorchvisionResNetConfig {
    /// Width of the pooled features: 512 for ResNet-18/34, 2048 for ResNet-50/101.
    pub fn feature_dim(&self) -> usize {
        let (_, bottleneck) = resnet_stages(self.depth).unwrap_or(([0; 4], false));
        PLANES[3] * if bottleneck { BOTTLENECK_EXPANSION } else { 1 }
    }

    /// # Panics
    /// On a depth other than 18, 34, 50 or 101 (configs are validated before they get here).
    pub fn init(&self, seed: u64, device: &Device) -> TorchvisionResNet {
        let (blocks, bottleneck) =
            resnet_stages(self.depth).expect("validated: a depth torchvision has");
        let mut init = HostInit::new(seed);
        let conv1 = init.conv2d([self.in_channels, PLANES[0]], 7, 2, 3, device);
        let mut c_in = PLANES[0];
        let mut stages: Vec<Vec<TorchvisionBlock>> = Vec::with_capacity(4);
        for (stage, (&planes, &count)) in PLANES.iter().zip(&blocks).enumerate() {
            let stage_blocks = (0..count)
                .map(|block| {
                    let stride = if stage > 0 && block == 0 { 2 } else { 1 };
                    let made =
                        TorchvisionBlock::new(c_in, planes, stride, bottleneck, &mut init, device);
                    c_in = made.out_channels();
                    made
                })
                .collect();
            stages.push(stage_blocks);
        }
        let [layer1, layer2, layer3, layer4]: [Vec<TorchvisionBlock>; 4] =
            stages.try_into().unwrap_or_else(|_| unreachable!("four stages"));
        stable_param_ids(TorchvisionResNet {
            conv1,
            bn1: BatchNormConfig::new(PLANES[0]).init(device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1,
            layer2,
            layer3,
            layer4,
            fc: init.linear(c_in, self.num_classes, device),
        })
    }
}

impl TorchvisionBlock {
    fn new(
        c_in: usize,
        planes: usize,
        stride: usize,
        bottleneck: bool,
        init: &mut HostInit,
        device: &Device,
    ) -> Self {
        let bn = |c| BatchNormConfig::new(c).init(device);
        let c_out = if bottleneck { planes * BOTTLENECK_EXPANSION } else { planes };
        let downsample = (stride != 1 || c_in != c_out).then(|| Downsample {
            conv: init.conv2d([c_in, c_out], 1, stride, 0, device),
            bn: bn(c_out),
        });
        if bottleneck {
            Self {
                conv1: init.conv2d([c_in, planes], 1, 1, 0, device),
                bn1: bn(planes),
                conv2: init.conv2d([planes, planes], 3, stride, 1, device),
                bn2: bn(planes),
                conv3: Some(init.conv2d([planes, c_out], 1, 1, 0, device)),
                bn3: Some(bn(c_out)),
                downsample,
            }
        } else {
            Self {
                conv1: init.conv2d([c_in, planes], 3, stride, 1, device),
                bn1: bn(planes),
                conv2: init.conv2d([planes, planes], 3, 1, 1, device),
                bn2: bn(planes),
                conv3: None,
                bn3: None,
                downsample,
            }
        }
    }

    fn out_channels(&self) -> usize {
        let last = self.conv3.as_ref().unwrap_or(&self.conv2);
        last.weight.shape().dims::<4>()[0]
    }

    /// # Shapes
    /// `[B, C_in, H, W]` -> `[B, C_out, H / stride, W / stride]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = relu(norm_in_f32(self.conv1.forward(x.clone()), |h| self.bn1.forward(h)));
        let mut h = norm_in_f32(self.conv2.forward(h), |h| self.bn2.forward(h));
        if let (Some(conv3), Some(bn3)) = (&self.conv3, &self.bn3) {
            h = norm_in_f32(conv3.forward(relu(h)), |h| bn3.forward(h));
        }
        let skip = match &self.downsample {
            Some(d) => norm_in_f32(d.conv.forward(x), |h| d.bn.forward(h)),
            None => x,
        };
        relu(h + skip)
    }
}

impl TorchvisionResNet {
    /// The pooled feature vector of each image.
    ///
    /// # Shapes
    /// `[B, C, H, W]` -> `[B, 512]` (ResNet-18/34) or `[B, 2048]` (ResNet-50/101).
    pub fn embed(&self, images: Tensor<4>) -> Tensor<2> {
        let h = relu(norm_in_f32(self.conv1.forward(images), |h| self.bn1.forward(h)));
        let mut h = self.maxpool.forward(h);
        for block in self.layer1.iter().chain(&self.layer2).chain(&self.layer3).chain(&self.layer4)
        {
            h = block.forward(h);
        }
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
    use burn::module::Module;
    use burn::tensor::TensorData;

    #[test]
    fn parameter_counts_are_torchvisions() {
        // Elements of torchvision's state dicts (1000 classes) without `num_batches_tracked`:
        // its parameters (11,689,512 for resnet18, ...) and the batch norms' running statistics,
        // which Burn counts among a module's parameters.
        let device = Device::flex();
        for (depth, count) in
            [(18, 11_699_112), (34, 21_814_696), (50, 25_610_152), (101, 44_654_504)]
        {
            let model = TorchvisionResNetConfig::new(depth, 1000).init(0, &device);
            assert_eq!(model.num_params(), count, "resnet{depth}");
        }
    }

    #[test]
    fn shapes_and_blocks_follow_the_depth() {
        let device = Device::flex();
        let model = TorchvisionResNetConfig::new(18, 7).init(0, &device);
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![0.25f32; 2 * 3 * 64 * 64], [2, 3, 64, 64]),
            &device,
        );
        assert_eq!(model.embed(x.clone()).dims(), [2, 512]);
        assert_eq!(model.forward(x).dims(), [2, 7]);
        assert_eq!([model.layer1.len(), model.layer4.len()], [2, 2]);
        assert!(model.layer1[0].downsample.is_none() && model.layer2[0].downsample.is_some());
        assert_eq!(TorchvisionResNetConfig::new(50, 7).feature_dim(), 2048);
    }
}
