//! AdamW whose update runs as one pass over each parameter on host devices.
//!
//! Burn's AdamW composes about fifteen tensor operations per parameter, each reading and writing
//! the whole tensor; on the CPU backend that made the optimizer step the largest part of an
//! NMTune step (about 8 of 20 ms for the 2.1M parameters of a 512-wide head). Here the same
//! update is one loop over the parameter, its gradient and both moments. On any other device
//! (a GPU) the step is Burn's own AdamW, and the state is Burn's `AdamWState` either way, so
//! recorded optimizer states stay interchangeable.

use burn::optim::{AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer};
use burn::prelude::Config;
use burn::tensor::{DType, Device, Tensor, TensorData};

/// AdamW's hyper-parameters (PyTorch's defaults except the weight decay, which is Burn's).
#[derive(Config, Debug, PartialEq)]
pub struct FusedAdamWConfig {
    #[config(default = 0.9)]
    pub beta_1: f32,
    #[config(default = 0.999)]
    pub beta_2: f32,
    #[config(default = 1e-8)]
    pub epsilon: f32,
    #[config(default = 1e-4)]
    pub weight_decay: f32,
}

impl FusedAdamWConfig {
    /// An optimizer for a whole module.
    pub fn init(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(self.build())
    }

    pub fn build(&self) -> FusedAdamW {
        FusedAdamW {
            config: self.clone(),
            composed: AdamWConfig::new()
                .with_beta_1(self.beta_1)
                .with_beta_2(self.beta_2)
                .with_epsilon(self.epsilon)
                .with_weight_decay(self.weight_decay)
                .build(),
        }
    }
}

/// See the module documentation.
#[derive(Clone)]
pub struct FusedAdamW {
    config: FusedAdamWConfig,
    composed: AdamW,
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
                s.momentum.moment_1.dtype() == DType::F32 && s.momentum.moment_2.dtype() == DType::F32
            });
        if !crate::device::is_host(&device) || !all_f32 {
            return self.composed.step(lr, tensor, grad, state);
        }
        let shape = tensor.shape();
        let mut param = tensor.into_data();
        let grad = grad.into_data();
        let (mut m, mut v, time) = match state {
            Some(s) => (s.momentum.moment_1.into_data(), s.momentum.moment_2.into_data(), s.momentum.time + 1),
            None => {
                let zeros = || TensorData::new(vec![0f32; shape.num_elements()], shape.clone());
                (zeros(), zeros(), 1)
            }
        };
        let c = &self.config;
        // Burn's AdamW in the same order and precision: moments, bias correction in f32,
        // decoupled decay `p (1 - lr wd)`, then `p - lr m_hat / (sqrt(v_hat) + eps)`.
        let correction_1 = 1f32 - c.beta_1.powi(time as i32);
        let correction_2 = 1f32 - c.beta_2.powi(time as i32);
        let decay = (1.0 - lr * f64::from(c.weight_decay)) as f32;
        let lr = lr as f32;
        let update = AdamWUpdate {
            beta_1: c.beta_1,
            beta_2: c.beta_2,
            factor_1: 1.0 - c.beta_1,
            factor_2: 1.0 - c.beta_2,
            correction_1,
            correction_2,
            epsilon: c.epsilon,
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

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;
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
        let config = FusedAdamWConfig::new().with_weight_decay(0.05).with_epsilon(1e-8);
        let start = LinearConfig::new(inputs, outputs).init(&device);
        let initial = params(&start);
        let mut fused_layer = start.clone();
        let mut burn_layer = start;
        let mut fused = config.init();
        let mut reference = AdamWConfig::new().with_weight_decay(0.05).with_epsilon(1e-8).init();
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
}
