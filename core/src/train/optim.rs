//! The one optimiser constructor, [`OptimizerConfig::init`], and the AdamW it builds.
//!
//! Burn's AdamW composes about fifteen tensor operations per parameter, each reading and writing
//! the whole tensor; on the CPU backend that made the optimiser step the largest part of an
//! NMTune step (about 8 of 20 ms for the 2.1M parameters of a 512-wide head). [`FusedAdamW`]
//! runs the same update as one pass over each parameter on host devices, and is Burn's own
//! AdamW on any other device (a GPU); its state is Burn's `AdamWState` either way, so recorded
//! optimiser states stay interchangeable.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, GradientsParams, LearningRate,
    ModuleOptimizer, Optimizer, SgdConfig,
};
use burn::tensor::{DType, Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{NmlError, Result};

/// AdamW's first-moment decay (PyTorch's default).
pub const ADAMW_BETA_1: f32 = 0.9;
/// AdamW's second-moment decay (PyTorch's default).
pub const ADAMW_BETA_2: f32 = 0.999;
/// AdamW's epsilon (PyTorch's default).
pub const ADAMW_EPSILON: f32 = 1e-8;

/// An optimiser and its settings; both follow the loop's per-step cosine from `lr` to zero.
/// Every training run in nml builds its optimiser here, so `adamw` means one update everywhere:
/// PyTorch's defaults for the betas and epsilon, decoupled weight decay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OptimizerConfig {
    Adamw { lr: f64, weight_decay: f64 },
    Sgd { lr: f64, momentum: f64, weight_decay: f64 },
}

impl OptimizerConfig {
    /// The peak learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            Self::Adamw { lr, .. } | Self::Sgd { lr, .. } => *lr,
        }
    }

    /// Whether the update ignores the gradients' scale, so a scaled loss (f16) needs no unscaling.
    pub fn is_scale_invariant(&self) -> bool {
        matches!(self, Self::Adamw { .. })
    }

    pub fn validate(&self) -> Result<()> {
        let (lr, decay) = match *self {
            Self::Adamw { lr, weight_decay } | Self::Sgd { lr, weight_decay, .. } => {
                (lr, weight_decay)
            }
        };
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(NmlError::Invalid(format!("learning rate must be positive, got {lr}")));
        }
        if !(decay >= 0.0 && decay.is_finite()) {
            return Err(NmlError::Invalid(format!(
                "weight decay must be a non-negative number, got {decay}"
            )));
        }
        if let Self::Sgd { momentum, .. } = *self
            && !(0.0..1.0).contains(&momentum)
        {
            return Err(NmlError::Invalid(format!(
                "SGD momentum must be in [0, 1), got {momentum}"
            )));
        }
        Ok(())
    }

    /// The optimiser for a whole module.
    pub fn init(&self) -> ModuleOptimizer {
        match *self {
            Self::Adamw { weight_decay, .. } => {
                ModuleOptimizer::from(FusedAdamW::new(weight_decay as f32))
            }
            Self::Sgd { momentum, weight_decay, .. } => SgdConfig::new()
                .with_momentum(Some(MomentumConfig::new().with_momentum(momentum)))
                .with_weight_decay(Some(WeightDecayConfig::new(weight_decay as f32)))
                .init(),
        }
    }
}

/// AdamW as one pass over each f32 parameter on host devices, Burn's composed AdamW elsewhere
/// (see the module documentation); built by [`OptimizerConfig::init`].
#[derive(Clone)]
pub struct FusedAdamW {
    weight_decay: f32,
    composed: AdamW,
}

impl FusedAdamW {
    fn new(weight_decay: f32) -> Self {
        let composed = AdamWConfig::new()
            .with_beta_1(ADAMW_BETA_1)
            .with_beta_2(ADAMW_BETA_2)
            .with_epsilon(ADAMW_EPSILON)
            .with_weight_decay(weight_decay)
            .build();
        Self { weight_decay, composed }
    }
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let device = tensor.device();
        let all_f32 = tensor.dtype() == DType::F32
            && grad.dtype() == DType::F32
            && state.as_ref().is_none_or(|s| {
                s.momentum.moment_1.dtype() == DType::F32
                    && s.momentum.moment_2.dtype() == DType::F32
            });
        if !crate::device::is_host(&device) || !all_f32 {
            return self.composed.step(lr, tensor, grad, state);
        }
        let shape = tensor.shape();
        let mut param = tensor.into_data();
        let grad = grad.into_data();
        let (mut m, mut v, time) = match state {
            Some(s) => (
                s.momentum.moment_1.into_data(),
                s.momentum.moment_2.into_data(),
                s.momentum.time + 1,
            ),
            None => {
                let zeros = || TensorData::new(vec![0f32; shape.num_elements()], shape.clone());
                (zeros(), zeros(), 1)
            }
        };
        // Burn's AdamW in the same order and precision: moments, bias correction in f32,
        // decoupled decay `p (1 - lr wd)`, then `p - lr m_hat / (sqrt(v_hat) + eps)`.
        let (beta_1, beta_2) = (ADAMW_BETA_1, ADAMW_BETA_2);
        let correction_1 = 1f32 - beta_1.powi(time as i32);
        let correction_2 = 1f32 - beta_2.powi(time as i32);
        let decay = (1.0 - lr * f64::from(self.weight_decay)) as f32;
        let lr = lr as f32;
        let update = AdamWUpdate {
            beta_1,
            beta_2,
            factor_1: 1.0 - beta_1,
            factor_2: 1.0 - beta_2,
            correction_1,
            correction_2,
            epsilon: ADAMW_EPSILON,
            decay,
            lr,
        };
        update.apply(
            param.as_mut_slice::<f32>().expect("dtype checked above"),
            grad.as_slice::<f32>().expect("dtype checked above"),
            m.as_mut_slice::<f32>().expect("dtype checked above"),
            v.as_mut_slice::<f32>().expect("dtype checked above"),
        );
        let back = |data: TensorData| Tensor::<D>::from_data(data, &device);
        let state = AdamWState::new(AdaptiveMomentumState::new(time, back(m), back(v)));
        (back(param), Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <AdamW as Optimizer>::to_device(state, device)
    }
}

/// One AdamW step's scalars, applied element by element.
struct AdamWUpdate {
    beta_1: f32,
    beta_2: f32,
    factor_1: f32,
    factor_2: f32,
    correction_1: f32,
    correction_2: f32,
    epsilon: f32,
    decay: f32,
    lr: f32,
}

/// Elements per parallel chunk: below this a parameter is updated on the calling thread, where
/// handing work to other threads would cost more than the update.
#[cfg(not(target_arch = "wasm32"))]
const PARALLEL_CHUNK: usize = 1 << 16;

impl AdamWUpdate {
    /// The update on one run of elements, in the widest vectors the CPU has: the body is
    /// compiled once per instruction set and the one to run is picked at run time, since a
    /// baseline x86-64 build would otherwise use 4-lane SSE for this division- and
    /// square-root-bound loop.
    fn apply_serial(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F, checked just above.
                return unsafe { self.apply_avx512(p, g, m, v) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, checked just above.
                return unsafe { self.apply_avx2(p, g, m, v) };
            }
        }
        self.apply_portable(p, g, m, v);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn apply_avx512(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        self.apply_portable(p, g, m, v);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn apply_avx2(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        self.apply_portable(p, g, m, v);
    }

    /// Burn's AdamW per element, with the bias corrections as reciprocals (one division left).
    #[inline(always)]
    fn apply_portable(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        let (inverse_1, inverse_2) = (1.0 / self.correction_1, 1.0 / self.correction_2);
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m = *m * self.beta_1 + g * self.factor_1;
            *v = *v * self.beta_2 + g * g * self.factor_2;
            let delta = (*m * inverse_1) / ((*v * inverse_2).sqrt() + self.epsilon);
            *p = *p * self.decay - delta * self.lr;
        }
    }

    /// The update over whole slices; large parameters are split across the thread pool (the
    /// update is memory-bound, and a 512 x 2048 weight with its moments is 16 MB).
    fn apply(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        #[cfg(not(target_arch = "wasm32"))]
        if p.len() > PARALLEL_CHUNK {
            use rayon::prelude::*;
            p.par_chunks_mut(PARALLEL_CHUNK)
                .zip(g.par_chunks(PARALLEL_CHUNK))
                .zip(m.par_chunks_mut(PARALLEL_CHUNK))
                .zip(v.par_chunks_mut(PARALLEL_CHUNK))
                .for_each(|(((p, g), m), v)| self.apply_serial(p, g, m, v));
            return;
        }
        self.apply_serial(p, g, m, v);
    }
}

/// What the training loop steps: an optimiser over a whole model, with its state as bytes for
/// checkpoints.
pub trait Optimize<M> {
    fn step(&mut self, lr: LearningRate, model: M, grads: GradientsParams) -> M;
    fn state_bytes(&self) -> Result<Vec<u8>>;
    /// Restores a state written by [`Optimize::state_bytes`]; `name` is used in messages.
    fn load_state(&mut self, bytes: Vec<u8>, name: &str) -> Result<()>;
}

impl<M: Module> Optimize<M> for ModuleOptimizer {
    fn step(&mut self, lr: LearningRate, model: M, grads: GradientsParams) -> M {
        ModuleOptimizer::step(self, lr, model, grads)
    }

    fn state_bytes(&self) -> Result<Vec<u8>> {
        let bytes = self.into_bytes().map_err(|e| {
            NmlError::Invalid(format!("cannot serialise the optimiser state: {e:?}"))
        })?;
        Ok(bytes.to_vec())
    }

    fn load_state(&mut self, bytes: Vec<u8>, name: &str) -> Result<()> {
        *self =
            self.clone().from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes)).map_err(|e| {
                NmlError::format(name, format!("cannot load the optimiser state: {e:?}"))
            })?;
        Ok(())
    }
}

/// Two optimisers over two parts of a model that train at different rates (a pre-trained
/// encoder and a new head): `split` takes the model apart, `join` puts it back, and the second
/// part's learning rate is `ratio` times the first's.
pub struct SplitOptimizer<M, A, B> {
    pub first: ModuleOptimizer,
    pub second: ModuleOptimizer,
    pub ratio: f64,
    pub split: fn(M) -> (A, B),
    pub join: fn(A, B) -> M,
}

impl<M, A: Module, B: Module> Optimize<M> for SplitOptimizer<M, A, B> {
    fn step(&mut self, lr: LearningRate, model: M, mut grads: GradientsParams) -> M {
        let (a, b) = (self.split)(model);
        let grads_a = take_grads(&mut grads, &a);
        let a = self.first.step(lr, a, grads_a);
        let b = self.second.step(lr * self.ratio, b, grads);
        (self.join)(a, b)
    }

    fn state_bytes(&self) -> Result<Vec<u8>> {
        let (a, b) =
            (Optimize::<A>::state_bytes(&self.first)?, Optimize::<B>::state_bytes(&self.second)?);
        let mut out = (a.len() as u64).to_le_bytes().to_vec();
        out.extend(a);
        out.extend(b);
        Ok(out)
    }

    fn load_state(&mut self, bytes: Vec<u8>, name: &str) -> Result<()> {
        let bad = || NmlError::format(name, "not the state of two optimisers");
        let len =
            u64::from_le_bytes(bytes.get(..8).ok_or_else(bad)?.try_into().expect("eight bytes"))
                as usize;
        let rest = &bytes[8..];
        let (a, b) = (rest.get(..len).ok_or_else(bad)?, &rest[len.min(rest.len())..]);
        Optimize::<A>::load_state(&mut self.first, a.to_vec(), name)?;
        Optimize::<B>::load_state(&mut self.second, b.to_vec(), name)
    }
}

/// Moves the gradients of `module`'s parameters out of `grads`.
fn take_grads<M: Module>(grads: &mut GradientsParams, module: &M) -> GradientsParams {
    struct Take<'a> {
        from: &'a mut GradientsParams,
        into: GradientsParams,
    }
    impl ModuleVisitor for Take<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.from.remove::<D>(param.id) {
                self.into.register(param.id, grad);
            }
        }
    }
    let mut take = Take { from: grads, into: GradientsParams::new() };
    module.visit(&mut take);
    take.into
}

#[cfg(test)]
mod tests {
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Distribution;

    use super::*;

    fn params(layer: &Linear) -> Vec<f32> {
        let mut out: Vec<f32> = layer.weight.val().into_data().try_to_vec().unwrap();
        out.extend(layer.bias.as_ref().unwrap().val().into_data().try_to_vec::<f32>().unwrap());
        out
    }

    /// Five steps with changing inputs and learning rates: the fused update and Burn's AdamW
    /// (run on the same host device through `AdamWConfig`) end on the same parameters, both for
    /// a small layer (updated serially) and one whose weight is split across threads.
    #[test]
    fn fused_steps_match_burns_adamw() {
        for (inputs, outputs) in [(7, 5), (300, 301)] {
            assert_eq!(outputs * inputs > PARALLEL_CHUNK, inputs == 300);
            fused_steps_match_burns_adamw_for(inputs, outputs);
        }
    }

    fn fused_steps_match_burns_adamw_for(inputs: usize, outputs: usize) {
        let device = Device::flex().autodiff();
        let start = LinearConfig::new(inputs, outputs).init(&device);
        let initial = params(&start);
        let mut fused_layer = start.clone();
        let mut burn_layer = start;
        let mut fused = OptimizerConfig::Adamw { lr: 1e-2, weight_decay: 0.05 }.init();
        let mut reference =
            AdamWConfig::new().with_weight_decay(0.05).with_epsilon(ADAMW_EPSILON).init();
        for step in 0..5 {
            let x = Tensor::<2>::random([9, inputs], Distribution::Normal(0.0, 1.0), &device);
            let lr = 1e-2 / (1.0 + step as f64);
            let loss = |layer: &Linear| layer.forward(x.clone()).square().mean();
            let grads = GradientsParams::from_grads(loss(&fused_layer).backward(), &fused_layer);
            fused_layer = fused.step(lr, fused_layer, grads);
            let grads = GradientsParams::from_grads(loss(&burn_layer).backward(), &burn_layer);
            burn_layer = reference.step(lr, burn_layer, grads);
        }
        let (a, b) = (params(&fused_layer.valid()), params(&burn_layer.valid()));
        assert!(a.iter().zip(&initial).all(|(x, y)| x != y), "every parameter should have moved");
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-6 * y.abs().max(1.0), "fused {x} vs Burn {y}");
        }
    }

    #[derive(Module, Debug)]
    struct Pair {
        first: Linear,
        second: Linear,
    }

    /// The split optimiser moves the second part at `ratio` times the first's rate: with plain
    /// SGD both parts move by exactly lr times (or ratio lr times) their gradients, and its state
    /// round-trips through bytes.
    #[test]
    fn split_optimizer_steps_each_part_at_its_rate() {
        let device = Device::flex().autodiff();
        let pair = Pair {
            first: LinearConfig::new(3, 2).init(&device),
            second: LinearConfig::new(2, 1).init(&device),
        };
        let x = Tensor::<2>::random([4, 3], Distribution::Normal(0.0, 1.0), &device);
        let loss = pair.second.forward(pair.first.forward(x)).sum();
        let mut grads = loss.backward();
        let g_first: Vec<f32> =
            pair.first.weight.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let g_second: Vec<f32> =
            pair.second.weight.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let grads = GradientsParams::from_module(&mut grads, &pair);
        let sgd = OptimizerConfig::Sgd { lr: 0.1, momentum: 0.0, weight_decay: 0.0 };
        let mut optim = SplitOptimizer {
            first: sgd.init(),
            second: sgd.init(),
            ratio: 0.25,
            split: |p: Pair| (p.first, p.second),
            join: |first, second| Pair { first, second },
        };
        let before = (params(&pair.first), params(&pair.second));
        let after = optim.step(0.1, pair, grads);
        let moved =
            |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<f32>>();
        let (m1, m2) =
            (moved(&before.0, &params(&after.first)), moved(&before.1, &params(&after.second)));
        for (m, g) in m1.iter().zip(&g_first) {
            assert!((m - 0.1 * g).abs() < 1e-6, "{m} vs {}", 0.1 * g);
        }
        for (m, g) in m2.iter().zip(&g_second) {
            assert!((m - 0.025 * g).abs() < 1e-6, "{m} vs {}", 0.025 * g);
        }
        let bytes = Optimize::<Pair>::state_bytes(&optim).unwrap();
        Optimize::<Pair>::load_state(&mut optim, bytes, "state").unwrap();
        assert!(
            Optimize::<Pair>::load_state(&mut optim, vec![1, 2], "bad")
                .unwrap_err()
                .to_string()
                .contains("bad")
        );
    }
}
