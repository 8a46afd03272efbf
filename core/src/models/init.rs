use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

/// Draws every initial weight on the host from one seeded stream, so a model starts from the
/// same numbers on every backend (and in the browser), and a resumed run can rebuild it exactly.
pub struct HostInit {
    rng: ChaCha8Rng,
}

impl HostInit {
    pub fn new(seed: u64) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    fn uniform(&mut self, count: usize, bound: f32) -> Vec<f32> {
        (0..count).map(|_| (self.rng.random::<f32>() * 2.0 - 1.0) * bound).collect()
    }

    /// Kaiming-uniform for ReLU networks: `U(-sqrt(6 / fan_in), sqrt(6 / fan_in))`, no bias
    /// (batch norm follows every convolution).
    pub fn conv2d(
        &mut self,
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        padding: usize,
        device: &Device,
    ) -> Conv2d {
        let padding = PaddingConfig2d::Explicit(padding, padding, padding, padding);
        self.kaiming_conv2d(channels, kernel, stride, padding, 1, device)
    }

    /// As [`HostInit::conv2d`], padded as TensorFlow's "SAME" (the output `ceil(input /
    /// stride)`, the odd pixel of padding at the bottom and right: asymmetric at stride 2) and in
    /// `groups` groups (`groups` = channels: depthwise).
    pub fn tf_same_conv2d(
        &mut self,
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        groups: usize,
        device: &Device,
    ) -> Conv2d {
        self.kaiming_conv2d(channels, kernel, stride, PaddingConfig2d::Same, groups, device)
    }

    fn kaiming_conv2d(
        &mut self,
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        padding: PaddingConfig2d,
        groups: usize,
        device: &Device,
    ) -> Conv2d {
        let [c_in, c_out] = channels;
        let fan_in = c_in / groups * kernel * kernel;
        let weight = self.uniform(c_out * fan_in, (6.0 / fan_in as f32).sqrt());
        let mut conv = Conv2dConfig::new(channels, [kernel, kernel])
            .with_stride([stride, stride])
            .with_padding(padding)
            .with_groups(groups)
            .with_bias(false)
            .init(device);
        conv.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(weight, [c_out, c_in / groups, kernel, kernel]),
            device,
        ));
        conv
    }

    /// A tensor drawn from `U(-bound, bound)`.
    pub fn tensor<const D: usize>(
        &mut self,
        shape: [usize; D],
        bound: f32,
        device: &Device,
    ) -> Tensor<D> {
        let count = shape.iter().product();
        Tensor::from_data(TensorData::new(self.uniform(count, bound), shape), device)
    }

    /// A convolution with a bias, both `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` (PyTorch's default):
    /// the ViT's patch embedding, which no batch norm follows.
    pub fn conv2d_with_bias(
        &mut self,
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        device: &Device,
    ) -> Conv2d {
        let [c_in, c_out] = channels;
        let bound = 1.0 / ((c_in * kernel * kernel) as f32).sqrt();
        let mut conv = Conv2dConfig::new(channels, [kernel, kernel])
            .with_stride([stride, stride])
            .init(device);
        conv.weight = Param::from_tensor(self.tensor([c_out, c_in, kernel, kernel], bound, device));
        conv.bias = Some(Param::from_tensor(self.tensor([c_out], bound, device)));
        conv
    }

    /// PyTorch's default linear init: weight and bias `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
    pub fn linear(&mut self, d_in: usize, d_out: usize, device: &Device) -> Linear {
        let bound = 1.0 / (d_in as f32).sqrt();
        let weight = self.uniform(d_in * d_out, bound);
        let bias = self.uniform(d_out, bound);
        let mut layer = LinearConfig::new(d_in, d_out).init(device);
        layer.weight =
            Param::from_tensor(Tensor::from_data(TensorData::new(weight, [d_in, d_out]), device));
        layer.bias =
            Some(Param::from_tensor(Tensor::from_data(TensorData::new(bias, [d_out]), device)));
        layer
    }
}

/// Numbers a module's parameters in visiting order. Optimiser state is keyed by parameter id, so
/// a model rebuilt from its config (to resume a run) must get the ids the saved state refers to.
pub fn stable_param_ids<M: burn::module::Module>(module: M) -> M {
    struct Renumber(u64);
    impl burn::module::ModuleMapper for Renumber {
        fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.id = burn::module::ParamId::from(self.0);
            self.0 += 1;
            param
        }
    }
    // Far from small counters, so ids of other modules in the process do not collide.
    module.map(&mut Renumber(0x6e6d_6c00_0000_0000))
}
