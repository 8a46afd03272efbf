use burn::module::{Module, Param};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, Relu};
use burn::prelude::Config;
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

/// Shape of a head on D-dimensional features.
#[derive(Config, Debug, PartialEq)]
pub struct FeatureHeadConfig {
    pub d: usize,
    pub num_classes: usize,
    /// Hidden width of the residual MLP; `None` gives a linear probe.
    #[config(default = "None")]
    pub hidden: Option<usize>,
    /// The residual MLP's output scale `s` at the start (1 in the paper; 0 starts as a probe).
    #[config(default = 1.0)]
    pub scale_init: f64,
}

/// NMTune's feature transform: `Z = s * MLP(F) + F`, with
/// `MLP = Linear(D, H) -> BatchNorm -> ReLU -> Linear(H, D)` and a learnable per-dimension
/// scale `s` (initialised to [`FeatureHeadConfig::scale_init`], 1 in the paper).
#[derive(Module, Debug)]
pub struct ResidualMlp {
    pub up: Linear,
    pub norm: BatchNorm,
    pub activation: Relu,
    pub down: Linear,
    pub scale: Param<Tensor<1>>,
}

impl ResidualMlp {
    pub fn forward(&self, f: Tensor<2>) -> Tensor<2> {
        let h = self.activation.forward(self.norm.forward(self.up.forward(f.clone())));
        let delta = self.down.forward(h);
        delta * self.scale.val().unsqueeze::<2>() + f
    }
}

/// A classifier on frozen features, optionally behind NMTune's residual MLP.
#[derive(Module, Debug)]
pub struct FeatureHead {
    pub transform: Option<ResidualMlp>,
    pub classifier: Linear,
}

/// A linear layer initialised as PyTorch's default, `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for weight
/// and bias, drawn on the host from `rng` so every backend (and the browser) starts from the
/// same numbers.
fn linear(d_in: usize, d_out: usize, rng: &mut ChaCha8Rng, device: &Device) -> Linear {
    let bound = 1.0 / (d_in as f32).sqrt();
    let mut draw = |count: usize| -> Vec<f32> {
        (0..count).map(|_| (rng.random::<f32>() * 2.0 - 1.0) * bound).collect()
    };
    let weight = Tensor::<2>::from_data(TensorData::new(draw(d_in * d_out), [d_in, d_out]), device);
    let bias = Tensor::<1>::from_data(TensorData::new(draw(d_out), [d_out]), device);
    let mut layer = LinearConfig::new(d_in, d_out).init(device);
    layer.weight = Param::from_tensor(weight);
    layer.bias = Some(Param::from_tensor(bias));
    layer
}

impl FeatureHeadConfig {
    pub fn init(&self, seed: u64, device: &Device) -> FeatureHead {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let transform = self.hidden.map(|hidden| ResidualMlp {
            up: linear(self.d, hidden, &mut rng, device),
            norm: BatchNormConfig::new(hidden).init(device),
            activation: Relu::new(),
            down: linear(hidden, self.d, &mut rng, device),
            scale: Param::from_tensor(Tensor::full([self.d], self.scale_init, device)),
        });
        FeatureHead { transform, classifier: linear(self.d, self.num_classes, &mut rng, device) }
    }
}

impl FeatureHead {
    /// The features the classifier sees: `Z` for NMTune/MLP, `F` itself for a linear probe.
    pub fn transform(&self, f: Tensor<2>) -> Tensor<2> {
        match &self.transform {
            Some(mlp) => mlp.forward(f),
            None => f,
        }
    }

    /// `(Z, logits)`.
    pub fn forward(&self, f: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let z = self.transform(f);
        let logits = self.classifier.forward(z.clone());
        (z, logits)
    }
}
