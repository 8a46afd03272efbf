//! Supervised pre-training of an image encoder on labels corrupted by the core's noise
//! generators, with per-epoch checkpoints a run can resume from exactly.

mod augment;
pub mod checkpoint;
mod config;

pub use augment::{AugmentConfig, image_batch};
pub use config::{OptimizerChoice, PretrainConfig};

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig, momentum::MomentumConfig, decay::WeightDecayConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::data::{FeatureSet, ImageSet};
use crate::error::{NmlError, Result};
use crate::models::{ResNet, ResNetConfig};
use crate::tune::TrainObserver;
use crate::tune::cosine_lr;
use checkpoint::CheckpointMeta;

/// One finished pre-training epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    /// Mean cross-entropy against the (noisy) training labels.
    pub loss: f64,
    /// Share of training images whose prediction matched their (noisy) label.
    pub train_accuracy: f64,
    pub lr: f64,
    pub seconds: f64,
}

/// A trained encoder and how it got there.
pub struct Pretrained {
    pub model: ResNet,
    pub config: PretrainConfig,
    pub num_classes: usize,
    pub history: Vec<EpochRecord>,
    /// Realised share of training labels the noise changed.
    pub noise_rate: f64,
    /// Epochs this call trained (0 when a finished checkpoint was reused).
    pub epochs_trained: usize,
}

impl PretrainConfig {
    pub fn model_config(&self, num_classes: usize) -> ResNetConfig {
        ResNetConfig::new(self.widths.clone(), num_classes).with_blocks_per_stage(self.blocks_per_stage)
    }
}

fn optimizer(choice: &OptimizerChoice) -> ModuleOptimizer {
    match *choice {
        OptimizerChoice::Adamw { weight_decay, .. } => AdamWConfig::new().with_weight_decay(weight_decay as f32).init(),
        OptimizerChoice::Sgd { momentum, weight_decay, .. } => SgdConfig::new()
            .with_momentum(Some(MomentumConfig::new().with_momentum(momentum)))
            .with_weight_decay(Some(WeightDecayConfig::new(weight_decay as f32)))
            .init(),
    }
}

/// The stream of shuffles and crops of one epoch: a pure function of the seed and the epoch, so a
/// resumed run draws exactly what an uninterrupted one would.
fn epoch_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Training images resampled to the run's size, with their noisy labels.
pub fn noisy_training_set(images: &ImageSet, config: &PretrainConfig) -> Result<(ImageSet, f64)> {
    let mut set = images.resized(config.image_size, config.image_size);
    let mut rate = 0.0;
    if let Some(noise) = &config.noise {
        let noisy = noise.apply(&images.labels, images.num_classes, config.seed)?;
        rate = noisy.rate();
        set.labels = noisy.labels;
    }
    Ok((set, rate))
}

/// Pre-trains a ResNet on `images` with noisy labels. With `run_dir`, a checkpoint is written
/// after every epoch; an existing checkpoint of the same config is resumed (or, when finished,
/// simply loaded), and one of another config is an error rather than silently overwritten.
pub fn pretrain(
    images: &ImageSet,
    config: &PretrainConfig,
    run_dir: Option<&Path>,
    device: &Device,
    observer: &mut dyn TrainObserver<EpochRecord>,
) -> Result<Pretrained> {
    config.validate()?;
    let num_classes = images.num_classes;
    let (train, noise_rate) = noisy_training_set(images, config)?;
    if train.n < 2 {
        return Err(NmlError::Invalid(format!("{}: need at least two training images", images.name)));
    }
    let ad = device.clone().autodiff();
    let model_config = config.model_config(num_classes);
    let mut model = model_config.init(config.seed, &ad);
    let mut optim = optimizer(&config.optimizer);
    let mut history = Vec::new();
    if let Some(dir) = run_dir {
        std::fs::create_dir_all(dir).map_err(|e| NmlError::Io { path: dir.to_path_buf(), source: e })?;
        if let Some((bytes, meta)) = checkpoint::find(dir)? {
            let name = dir.join(checkpoint::MODEL_FILE).display().to_string();
            if meta.config != *config || meta.num_classes != num_classes {
                return Err(NmlError::format(
                    name,
                    "holds a run of another config; choose another directory or delete it",
                ));
            }
            crate::store::load_module(&mut model, &bytes, &name)?;
            if meta.epochs_done < config.epochs {
                optim = checkpoint::load_optimizer(dir, meta.epochs_done, optim)?;
            }
            history = meta.history;
        }
    }
    let first_epoch = history.len() + 1;
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let batch = config.batch_size.min(train.n);
    let batches_per_epoch = train.n / batch + usize::from(train.n % batch >= 2);
    let total_steps = batches_per_epoch * config.epochs;
    let side = config.image_size;

    for epoch in first_epoch..=config.epochs {
        let started = Instant::now();
        let mut rng = epoch_rng(config.seed, epoch);
        let mut order: Vec<usize> = (0..train.n).collect();
        order.shuffle(&mut rng);
        let mut step = (epoch - 1) * batches_per_epoch;
        let mut sum_loss = Tensor::<1>::zeros([1], &ad);
        let mut correct = Tensor::<1, Int>::zeros([1], &ad);
        let (mut seen, mut batches, mut lr) = (0usize, 0usize, config.optimizer.lr());
        for chunk in order.chunks(batch) {
            if chunk.len() < 2 {
                continue;
            }
            let pixels = image_batch(&train, chunk, Some((&config.augment, &mut rng)));
            let x = Tensor::<4>::from_data(TensorData::new(pixels, [chunk.len(), 1, side, side]), &ad);
            let labels: Vec<i64> = chunk.iter().map(|&i| i64::from(train.labels[i])).collect();
            let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [chunk.len()]), &ad);
            let logits = model.forward(x);
            correct = correct + logits.clone().argmax(1).reshape([chunk.len()]).equal(y.clone()).int().sum();
            let loss = loss_fn.forward(logits, y);
            sum_loss = sum_loss + loss.clone().detach();
            lr = cosine_lr(config.optimizer.lr(), step, total_steps);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            step += 1;
            batches += 1;
            seen += chunk.len();
        }
        let record = EpochRecord {
            epoch,
            loss: f64::from(sum_loss.into_scalar::<f32>()) / batches.max(1) as f64,
            train_accuracy: correct.into_scalar::<i64>() as f64 / seen.max(1) as f64,
            lr,
            seconds: started.elapsed().as_secs_f64(),
        };
        if !record.loss.is_finite() {
            return Err(NmlError::Invalid(format!("pre-training diverged at epoch {epoch}; lower the learning rate")));
        }
        observer.on_epoch(&record);
        history.push(record);
        if let Some(dir) = run_dir {
            let meta = CheckpointMeta { config: config.clone(), num_classes, epochs_done: epoch, history: history.clone() };
            // `valid()` folds the last batch's pending batch-norm statistics into the saved ones.
            checkpoint::save(dir, &model.valid(), &optim, &meta)?;
        }
        if observer.should_stop() {
            break;
        }
    }
    let epochs_trained = history.len() + 1 - first_epoch;
    Ok(Pretrained { model: model.valid(), config: config.clone(), num_classes, history, noise_rate, epochs_trained })
}

/// Loads a finished (or partial) pre-training run's model for extraction.
pub fn load_model(path: &Path, device: &Device) -> Result<(ResNet, CheckpointMeta)> {
    let bytes = crate::io::read_file(path)?;
    let name = path.display().to_string();
    let meta = checkpoint::read_meta(&bytes, &name)?;
    let mut model = meta.config.model_config(meta.num_classes).init(0, device);
    crate::store::load_module(&mut model, &bytes, &name)?;
    Ok((model, meta))
}

const EXTRACT_BATCH: usize = 256;

/// The encoder's features of every image (resampled to the model's input size), with the
/// images' labels: what downstream heads are tuned on.
pub fn extract(model: &ResNet, images: &ImageSet, image_size: usize, name: &str, device: &Device) -> Result<FeatureSet> {
    let set = images.resized(image_size, image_size);
    let mut features = Vec::new();
    let mut d = 0;
    let all: Vec<usize> = (0..set.n).collect();
    for chunk in all.chunks(EXTRACT_BATCH) {
        let pixels = image_batch(&set, chunk, None);
        let x = Tensor::<4>::from_data(TensorData::new(pixels, [chunk.len(), 1, image_size, image_size]), device);
        let f = model.embed(x);
        d = f.dims()[1];
        features.extend(f.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| NmlError::Backend(format!("{e:?}")))?);
    }
    let labels = set.labels.iter().map(|&l| i64::from(l)).collect();
    FeatureSet::new(name, features, d, labels, Some(set.num_classes))
}

#[cfg(test)]
mod tests;
