//! The one training loop. Head tuning, pre-training and fine-tuning all run through [`train`]:
//! seeded mini-batches, the per-step cosine schedule, loss sums kept on the device and read once
//! an epoch, f16 loss scaling, data parallelism over several devices, the divergence error,
//! observers, and checkpoints a run resumes from exactly. What a step computes is the caller's
//! closure; everything around it is here, so a recipe means the same thing everywhere.

mod checkpoint;
mod optim;
mod schedule;

pub use checkpoint::{RunDir, model_bytes, read_meta};
pub use optim::{FusedAdamW, Optimize, OptimizerConfig, SplitOptimizer};
pub use schedule::cosine_lr;

use web_time::Instant;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Int, Tensor};
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;

use crate::error::{NmlError, Result};
use crate::readback::{floats, ints};

/// Hooks into a running loop: progress display, live curves, a stop button. `R` is what an
/// epoch reports (the heads' `EpochStats`, pre-training's `EpochRecord`, fine-tuning's
/// `FinetuneEpoch`).
pub trait Observer<R> {
    fn on_epoch(&mut self, _record: &R) {}
    /// Asked before every batch and after every epoch; true ends training with the model as it
    /// is (a partial epoch is neither reported nor checkpointed).
    fn should_stop(&mut self) -> bool {
        false
    }
}

impl<R> Observer<R> for () {}

/// How each epoch's order of samples is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shuffle {
    /// A fresh stream for every epoch, a pure function of the seed and the epoch: a resumed run
    /// draws exactly what an uninterrupted one would.
    PerEpoch { seed: u64 },
    /// One stream for the whole run; every epoch reshuffles the previous epoch's order.
    Continuing { seed: u64 },
}

/// The shape of a run: how many samples, epochs and batches, and the schedule.
#[derive(Clone, Debug)]
pub struct Plan {
    pub samples: usize,
    pub epochs: usize,
    /// At most `samples`. A last batch of one sample is skipped: batch norm and the batch
    /// covariance need two.
    pub batch_size: usize,
    /// Peak learning rate; the schedule is a per-step cosine from it to zero.
    pub lr: f64,
    pub shuffle: Shuffle,
    /// The loss is multiplied by this before the backward pass (f16 loss scaling), 1 otherwise.
    /// Only scale-invariant optimisers (AdamW) may train with a scale other than 1.
    pub loss_scale: f64,
    /// Data parallelism: every batch is split across these devices in order, each part runs on a
    /// replica there, and the gradients meet on the model's own device, where one optimiser step
    /// follows. Empty (or one device): the model's device alone.
    pub devices: Vec<Device>,
}

impl Plan {
    pub fn new(
        samples: usize,
        epochs: usize,
        batch_size: usize,
        lr: f64,
        shuffle: Shuffle,
    ) -> Self {
        Self {
            samples,
            epochs,
            batch_size: batch_size.min(samples),
            lr,
            shuffle,
            loss_scale: 1.0,
            devices: Vec::new(),
        }
    }

    pub fn with_loss_scale(mut self, scale: f64) -> Self {
        self.loss_scale = scale;
        self
    }

    pub fn with_devices(mut self, devices: Vec<Device>) -> Self {
        self.devices = devices;
        self
    }

    /// Steps in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let batch = self.batch_size.max(1);
        self.samples / batch + usize::from(self.samples % batch >= 2)
    }

    /// The batches of `epoch` (from 1) of a [`Shuffle::PerEpoch`] plan, in the order [`train`]
    /// steps through them: what a loader that prepares batches ahead of the loop needs. A plan
    /// with a continuing shuffle has no such list until the epochs before are drawn.
    pub fn epoch_batches(&self, epoch: usize) -> Result<Vec<Vec<usize>>> {
        let Shuffle::PerEpoch { seed } = self.shuffle else {
            return Err(NmlError::Invalid(
                "batches can be listed ahead only for per-epoch shuffles".into(),
            ));
        };
        let (_, order) = shuffled(seed, epoch, self.samples);
        Ok(self.batches_of(&order).map(<[usize]>::to_vec).collect())
    }

    /// The batches of one epoch's `order` that are stepped on.
    fn batches_of<'a>(&self, order: &'a [usize]) -> impl Iterator<Item = &'a [usize]> {
        order.chunks(self.batch_size.max(1)).filter(|chunk| chunk.len() >= 2)
    }

    fn check(&self) -> Result<()> {
        if self.samples < 2 {
            return Err(NmlError::Invalid("need at least two training samples".into()));
        }
        if self.batch_size < 2 || self.epochs == 0 {
            return Err(NmlError::Invalid(format!(
                "need a batch size of at least 2 and at least one epoch (got {}, {})",
                self.batch_size, self.epochs
            )));
        }
        if self.devices.len() > 1 && self.batch_size < 2 * self.devices.len() {
            return Err(NmlError::Invalid(format!(
                "a batch of {} cannot be split over {} devices (each part needs two samples)",
                self.batch_size,
                self.devices.len()
            )));
        }
        Ok(())
    }
}

/// The random stream of one epoch of a [`Shuffle::PerEpoch`] run, and the epoch's order of
/// samples drawn from it first.
fn shuffled(seed: u64, epoch: usize, samples: usize) -> (ChaCha8Rng, Vec<usize>) {
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut order: Vec<usize> = (0..samples).collect();
    order.shuffle(&mut rng);
    (rng, order)
}

/// What one step computed on its batch.
pub struct StepLoss {
    /// The objective to minimise (before loss scaling).
    pub loss: Tensor<1>,
    /// Parts of the loss worth reporting; each epoch reports their means over its batches.
    pub terms: Vec<Tensor<1>>,
    /// How many of the batch's samples the model got right, where that means something.
    pub correct: Option<Tensor<1, Int>>,
    /// How many samples the step saw, where a loader left some of the batch out (a file that
    /// did not decode); `None`: the whole batch.
    pub samples: Option<usize>,
}

impl StepLoss {
    pub fn new(loss: Tensor<1>) -> Self {
        Self { loss, terms: Vec::new(), correct: None, samples: None }
    }

    pub fn with_terms(mut self, terms: Vec<Tensor<1>>) -> Self {
        self.terms = terms;
        self
    }

    pub fn with_correct(mut self, correct: Tensor<1, Int>) -> Self {
        self.correct = Some(correct);
        self
    }

    pub fn with_samples(mut self, samples: usize) -> Self {
        self.samples = Some(samples);
        self
    }
}

/// One finished epoch as the loop measured it, handed to the caller to make its record from.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochSums {
    pub epoch: usize,
    /// Mean loss over the epoch's batches.
    pub loss: f64,
    /// Mean of each of [`StepLoss::terms`] over the epoch's batches.
    pub terms: Vec<f64>,
    /// Share of samples counted correct, when the steps count.
    pub accuracy: Option<f64>,
    /// The learning rate of the epoch's last step.
    pub lr: f64,
    pub seconds: f64,
}

/// Whether training goes on after an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// The model after training and what happened.
pub struct Trained<M, R> {
    /// In training mode, as the last step left it; take `valid()` for inference.
    pub model: M,
    /// Every epoch of the run, the resumed ones included.
    pub history: Vec<R>,
    /// Epochs this call trained.
    pub epochs_trained: usize,
    /// Whether the observer ended training.
    pub stopped: bool,
}

/// Saves the state of a run after each epoch, for resuming (see [`RunDir`]).
pub type Checkpoint<'a, M, O, R> = &'a mut dyn FnMut(&M, &O, &[R]) -> Result<()>;

/// Trains `model` for the epochs of `plan` after those in `history` (empty for a fresh run;
/// a resumed run passes the epochs it finished and a model and optimiser restored to them).
///
/// Each step calls `step` on the batch's sample indices with the epoch's random stream (for
/// augmentation or dropout) and differentiates the loss it returns; `end_epoch` turns the
/// epoch's sums into the caller's record (validating, keeping the best model, ...) and may stop
/// the run. A loss that is not finite ends the run with [`NmlError::Diverged`].
#[allow(clippy::too_many_arguments)]
pub async fn train<M, O, R>(
    mut model: M,
    plan: &Plan,
    optimizer: &mut O,
    mut history: Vec<R>,
    mut step: impl AsyncFnMut(&M, &[usize], &mut ChaCha8Rng) -> Result<StepLoss>,
    mut end_epoch: impl AsyncFnMut(&M, EpochSums) -> Result<(R, Flow)>,
    observer: &mut dyn Observer<R>,
    mut checkpoint: Option<Checkpoint<'_, M, O, R>>,
) -> Result<Trained<M, R>>
where
    M: Module,
    O: Optimize<M>,
{
    plan.check()?;
    let first_epoch = history.len() + 1;
    let batches_per_epoch = plan.batches_per_epoch();
    let total_steps = batches_per_epoch * plan.epochs;
    let mut continuing = match plan.shuffle {
        Shuffle::Continuing { seed } => {
            Some((ChaCha8Rng::seed_from_u64(seed), (0..plan.samples).collect::<Vec<usize>>()))
        }
        Shuffle::PerEpoch { .. } => None,
    };
    if continuing.is_some() && first_epoch > 1 {
        return Err(NmlError::Invalid("only a run with per-epoch shuffles can be resumed".into()));
    }
    let mut stopped = false;
    'epochs: for epoch in first_epoch..=plan.epochs {
        let started = Instant::now();
        let mut fresh = None;
        let (rng, order): (&mut ChaCha8Rng, &[usize]) = match (&mut continuing, plan.shuffle) {
            (Some((rng, order)), _) => {
                order.shuffle(rng);
                (rng, order)
            }
            (None, Shuffle::PerEpoch { seed } | Shuffle::Continuing { seed }) => {
                let (rng, order) = fresh.insert(shuffled(seed, epoch, plan.samples));
                (rng, order)
            }
        };
        let main = model_device(&model);
        let first_step = (epoch - 1) * batches_per_epoch;
        let mut sum_loss = Tensor::<1>::zeros([1], &main);
        let mut sum_terms: Vec<Tensor<1>> = Vec::new();
        let mut sum_correct: Option<Tensor<1, Int>> = None;
        let (mut seen, mut batches, mut lr) = (0usize, 0usize, plan.lr);
        for (global_step, chunk) in (first_step..).zip(plan.batches_of(order)) {
            if observer.should_stop() {
                stopped = true;
                break 'epochs;
            }
            let (step_loss, grads) = if plan.devices.len() > 1 {
                parallel_step(&model, chunk, &plan.devices, plan.loss_scale, rng, &mut step).await?
            } else {
                let out = step(&model, chunk, rng).await?;
                let scaled = scaled(out.loss.clone(), plan.loss_scale);
                let grads = GradientsParams::from_grads(scaled.backward(), &model);
                (out, grads)
            };
            sum_loss = sum_loss + step_loss.loss.detach();
            if sum_terms.is_empty() {
                sum_terms =
                    step_loss.terms.iter().map(|_| Tensor::<1>::zeros([1], &main)).collect();
            }
            for (sum, term) in sum_terms.iter_mut().zip(step_loss.terms) {
                *sum = sum.clone() + term.detach();
            }
            if let Some(correct) = step_loss.correct {
                sum_correct = Some(match sum_correct {
                    Some(sum) => sum + correct,
                    None => correct,
                });
            }
            lr = cosine_lr(plan.lr, global_step, total_steps);
            model = optimizer.step(lr, model, grads);
            batches += 1;
            seen += step_loss.samples.unwrap_or(chunk.len());
        }
        // One read per epoch: the device need not wait for the host between batches.
        let sums = floats(Tensor::cat([vec![sum_loss], sum_terms].concat(), 0)).await?;
        let per_batch = |v: f32| f64::from(v) / batches.max(1) as f64;
        let accuracy = match sum_correct {
            Some(correct) => Some(ints(correct).await?[0] as f64 / seen.max(1) as f64),
            None => None,
        };
        let sums = EpochSums {
            epoch,
            loss: per_batch(sums[0]),
            terms: sums[1..].iter().map(|&v| per_batch(v)).collect(),
            accuracy,
            lr,
            seconds: started.elapsed().as_secs_f64(),
        };
        if !sums.loss.is_finite() {
            return Err(NmlError::Diverged { epoch, loss: sums.loss });
        }
        let (record, flow) = end_epoch(&model, sums).await?;
        observer.on_epoch(&record);
        history.push(record);
        if let Some(save) = checkpoint.as_mut() {
            save(&model, optimizer, &history)?;
        }
        if flow == Flow::Stop {
            break;
        }
        if observer.should_stop() {
            stopped = true;
            break;
        }
    }
    let epochs_trained = history.len() + 1 - first_epoch;
    Ok(Trained { model, history, epochs_trained, stopped })
}

fn scaled(loss: Tensor<1>, scale: f64) -> Tensor<1> {
    // An unscaled loss is left as it is, not multiplied by 1, so f32 runs keep their bits.
    if scale == 1.0 { loss } else { loss.mul_scalar(scale) }
}

/// The device a module's parameters live on (the CPU backend for a module without any).
fn model_device<M: Module>(model: &M) -> Device {
    model.devices().into_iter().next().unwrap_or_else(Device::flex)
}

/// The parts of a batch that a data-parallel step gives to each of `devices` devices, in
/// order (the whole batch for one device).
pub fn device_parts(chunk: &[usize], devices: usize) -> std::slice::Chunks<'_, usize> {
    chunk.chunks(chunk.len().div_ceil(devices.max(1)).max(1))
}

/// One step split over `devices`: part `i` of the batch runs on a replica on device `i`, its
/// loss weighted by the part's share of the batch, so the summed gradient is the batch mean's.
/// Parts are taken in order and draw from `rng` in order, so augmentation sees the same stream
/// as on one device.
async fn parallel_step<M: Module>(
    model: &M,
    chunk: &[usize],
    devices: &[Device],
    loss_scale: f64,
    rng: &mut ChaCha8Rng,
    step: &mut impl AsyncFnMut(&M, &[usize], &mut ChaCha8Rng) -> Result<StepLoss>,
) -> Result<(StepLoss, GradientsParams)> {
    let main = model_device(model);
    let mut accumulator = GradientsAccumulator::<M>::new();
    let mut total: Option<StepLoss> = None;
    for (part, device) in device_parts(chunk, devices.len()).zip(devices) {
        let replica = if *device == main { model.clone() } else { model.clone().fork(device) };
        let out = step(&replica, part, rng).await?;
        let share = part.len() as f64 / chunk.len() as f64;
        let grads = GradientsParams::from_grads(
            scaled(out.loss.clone().mul_scalar(share), loss_scale).backward(),
            &replica,
        );
        accumulator.accumulate(model, grads.to_device(&main, &replica));
        let to_main = |t: Tensor<1>| t.detach().mul_scalar(share).to_device(&main);
        let part_loss = StepLoss {
            loss: to_main(out.loss),
            terms: out.terms.into_iter().map(to_main).collect(),
            correct: out.correct.map(|c| c.to_device(&main)),
            samples: Some(out.samples.unwrap_or(part.len())),
        };
        total = Some(match total {
            None => part_loss,
            Some(sum) => StepLoss {
                loss: sum.loss + part_loss.loss,
                terms: sum.terms.into_iter().zip(part_loss.terms).map(|(a, b)| a + b).collect(),
                correct: match (sum.correct, part_loss.correct) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                },
                samples: sum.samples.zip(part_loss.samples).map(|(a, b)| a + b),
            },
        });
    }
    Ok((total.expect("a batch has at least one part"), accumulator.grads()))
}

#[cfg(test)]
mod tests {
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::TensorData;

    use super::*;
    use crate::readback::blocking;

    fn weights(layer: &Linear) -> Vec<f32> {
        layer.weight.val().into_data().try_to_vec::<f32>().unwrap()
    }

    /// Regression of a linear layer onto fixed targets, trained through the loop with `plan`.
    fn fit(plan: &Plan, lr_scale: f64) -> (Linear, Vec<EpochSums>) {
        use rand::RngExt;
        let device = Device::flex().autodiff();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x: Vec<f32> = (0..40 * 6).map(|_| rng.random::<f32>() - 0.5).collect();
        let y: Vec<f32> =
            x.chunks(6).flat_map(|r| [r[0] + r[1], r[2] - r[3], r[4] * 2.0 + r[5]]).collect();
        let model = crate::models::HostInit::new(1).linear(6, 3, &device);
        let mut optimizer =
            OptimizerConfig::Sgd { lr: plan.lr * lr_scale, momentum: 0.0, weight_decay: 0.0 }
                .init();
        let step =
            async |model: &Linear, chunk: &[usize], _: &mut ChaCha8Rng| -> Result<StepLoss> {
                let device = model.weight.val().device();
                let rows = |v: &[f32], d: usize| {
                    let picked: Vec<f32> =
                        chunk.iter().flat_map(|&i| v[i * d..(i + 1) * d].to_vec()).collect();
                    Tensor::<2>::from_data(TensorData::new(picked, [chunk.len(), d]), &device)
                };
                let error = (model.forward(rows(&x, 6)) - rows(&y, 3)).square().mean();
                Ok(StepLoss::new(error.clone()).with_terms(vec![error.clone().mul_scalar(2.0)]))
            };
        let end_epoch = async |_: &Linear, sums: EpochSums| -> Result<(EpochSums, Flow)> {
            Ok((sums, Flow::Continue))
        };
        let trained = blocking(train(
            model,
            plan,
            &mut optimizer,
            Vec::new(),
            step,
            end_epoch,
            &mut (),
            None,
        ))
        .unwrap();
        (trained.model, trained.history)
    }

    /// A batch split over two replicas gives the gradient of the whole batch: the same weights
    /// as one device, to rounding, and the same reported loss and terms.
    #[test]
    fn data_parallel_steps_equal_one_device() {
        let plan = Plan::new(40, 3, 16, 0.05, Shuffle::PerEpoch { seed: 4 });
        let devices = vec![Device::flex().autodiff(), Device::flex().autodiff()];
        let (one, one_history) = fit(&plan, 1.0);
        let (two, two_history) = fit(&plan.clone().with_devices(devices), 1.0);
        for (a, b) in weights(&one).iter().zip(&weights(&two)) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        for (a, b) in one_history.iter().zip(&two_history) {
            assert!((a.loss - b.loss).abs() < 1e-5 * a.loss.max(1.0), "{a:?} vs {b:?}");
            assert!(
                (a.terms[0] - 2.0 * a.loss).abs() < 1e-5
                    && (b.terms[0] - 2.0 * b.loss).abs() < 1e-5
            );
        }
        // 40 samples in batches of 16: two full batches and one of 8, all counted.
        assert_eq!(plan.batches_per_epoch(), 3);
    }

    /// The batches a plan lists ahead are the ones the loop steps through, epoch by epoch.
    #[test]
    fn listed_batches_are_the_ones_trained_on() {
        let plan = Plan::new(23, 3, 5, 0.01, Shuffle::PerEpoch { seed: 7 });
        let device = Device::flex().autodiff();
        let model = LinearConfig::new(2, 1).init(&device);
        let mut optimizer =
            OptimizerConfig::Sgd { lr: 0.01, momentum: 0.0, weight_decay: 0.0 }.init();
        let mut seen = Vec::new();
        let step =
            async |model: &Linear, chunk: &[usize], _: &mut ChaCha8Rng| -> Result<StepLoss> {
                seen.push(chunk.to_vec());
                let x = Tensor::<2>::ones([chunk.len(), 2], &model.weight.val().device());
                Ok(StepLoss::new(model.forward(x).mean()))
            };
        let end_epoch = async |_: &Linear, sums: EpochSums| -> Result<(usize, Flow)> {
            Ok((sums.epoch, Flow::Continue))
        };
        blocking(train(model, &plan, &mut optimizer, Vec::new(), step, end_epoch, &mut (), None))
            .unwrap();
        let listed: Vec<Vec<usize>> =
            (1..=3).flat_map(|epoch| plan.epoch_batches(epoch).unwrap()).collect();
        // 23 in batches of 5: four full batches and one of 3 an epoch.
        assert_eq!((listed.len(), listed[4].len()), (15, 3));
        assert_eq!(seen, listed);
        assert_ne!(listed[0], listed[5], "each epoch draws its own order");
        let continuing = Plan { shuffle: Shuffle::Continuing { seed: 7 }, ..plan };
        assert!(continuing.epoch_batches(1).is_err());
    }

    #[test]
    fn a_loss_that_explodes_is_reported_with_its_epoch() {
        let plan = Plan::new(40, 5, 8, 1.0, Shuffle::PerEpoch { seed: 0 });
        let device = Device::flex().autodiff();
        let model = LinearConfig::new(2, 1).init(&device);
        let mut optimizer =
            OptimizerConfig::Sgd { lr: 1.0, momentum: 0.0, weight_decay: 0.0 }.init();
        let step =
            async |model: &Linear, chunk: &[usize], _: &mut ChaCha8Rng| -> Result<StepLoss> {
                let x = Tensor::<2>::ones([chunk.len(), 2], &model.weight.val().device())
                    .mul_scalar(1e3);
                Ok(StepLoss::new(model.forward(x).powf_scalar(4.0).mean()))
            };
        let end_epoch = async |_: &Linear, sums: EpochSums| -> Result<(usize, Flow)> {
            Ok((sums.epoch, Flow::Continue))
        };
        let err = blocking(train(
            model,
            &plan,
            &mut optimizer,
            Vec::new(),
            step,
            end_epoch,
            &mut (),
            None,
        ))
        .err()
        .unwrap();
        assert!(matches!(err, NmlError::Diverged { epoch: 1, .. }), "{err}");
        assert!(err.to_string().contains("diverged at epoch 1"), "{err}");
    }

    /// An observer that stops after the first epoch's report ends the run there.
    #[test]
    fn an_observer_stops_the_run() {
        struct StopAfterOne(usize);
        impl Observer<EpochSums> for StopAfterOne {
            fn on_epoch(&mut self, _: &EpochSums) {
                self.0 += 1;
            }
            fn should_stop(&mut self) -> bool {
                self.0 >= 1
            }
        }
        let plan = Plan::new(20, 4, 5, 0.01, Shuffle::Continuing { seed: 1 });
        let device = Device::flex().autodiff();
        let model = LinearConfig::new(2, 1).init(&device);
        let mut optimizer = OptimizerConfig::Adamw { lr: 0.01, weight_decay: 0.0 }.init();
        let step =
            async |model: &Linear, chunk: &[usize], _: &mut ChaCha8Rng| -> Result<StepLoss> {
                Ok(StepLoss::new(
                    model
                        .forward(Tensor::<2>::ones([chunk.len(), 2], &model.weight.val().device()))
                        .mean(),
                ))
            };
        let end_epoch = async |_: &Linear, sums: EpochSums| -> Result<(EpochSums, Flow)> {
            Ok((sums, Flow::Continue))
        };
        let trained = blocking(train(
            model,
            &plan,
            &mut optimizer,
            Vec::new(),
            step,
            end_epoch,
            &mut StopAfterOne(0),
            None,
        ))
        .unwrap();
        assert_eq!((trained.history.len(), trained.epochs_trained, trained.stopped), (1, 1, true));
    }
}
