//! Supervised pre-training of an image encoder on labels corrupted by the core's noise
//! generators, with per-epoch checkpoints a run can resume from exactly.

mod augment;
pub mod checkpoint;
mod config;
pub mod contrastive;
#[cfg(feature = "multi-device")]
mod multi_device;

pub use augment::{AugmentConfig, DeviceImages, Normalize, draw_crops, image_batch};
pub use config::{ModelShape, Objective, OptimizerChoice, PretrainConfig};
#[cfg(feature = "multi-device")]
pub use multi_device::{CaptionedImages, LabelledImages, pretrain_multi_device, unfinished_multi_device_epochs};

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
use crate::models::{Encoder, ResNetConfig, VitConfig, compute_copy};
use crate::readback::{blocking, floats};
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
    pub model: Encoder,
    pub config: PretrainConfig,
    pub num_classes: usize,
    pub history: Vec<EpochRecord>,
    /// Realised share of training labels the noise changed.
    pub noise_rate: f64,
    /// Epochs this call trained (0 when a finished checkpoint was reused).
    pub epochs_trained: usize,
}

impl PretrainConfig {
    /// The encoder this config describes, initialised from `seed` on the host.
    pub fn init_encoder(&self, num_classes: usize, seed: u64, device: &Device) -> Encoder {
        match &self.model {
            ModelShape::Resnet { widths, blocks_per_stage } => Encoder::ResNet(
                ResNetConfig::new(widths.clone(), num_classes).with_blocks_per_stage(*blocks_per_stage).init(seed, device),
            ),
            &ModelShape::Vit { patch_size, dim, depth, heads, mlp_ratio } => Encoder::Vit(
                VitConfig::new(self.image_size, patch_size, dim, depth, heads, num_classes).with_mlp_ratio(mlp_ratio).init(seed, device),
            ),
        }
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

/// Pre-trains an encoder on `images`: on noisy labels (supervised) or on noisy captions built
/// from the labels' class names (contrastive), as `config.objective` says. With `run_dir`, a
/// checkpoint is written after every epoch; an existing checkpoint of the same config is resumed
/// (or, when finished, simply loaded), and one of another config is an error rather than
/// silently overwritten.
pub fn pretrain(
    images: &ImageSet,
    config: &PretrainConfig,
    run_dir: Option<&Path>,
    device: &Device,
    observer: &mut dyn TrainObserver<EpochRecord>,
) -> Result<Pretrained> {
    match &config.objective {
        Objective::Supervised => pretrain_supervised(images, config, run_dir, device, observer),
        Objective::Contrastive { templates, class_names, .. } => {
            let captions = contrastive::class_captions(&images.labels, templates, class_names, config.seed)?;
            pretrain_contrastive(images, &captions, config, run_dir, device, observer)
        }
    }
}

fn pretrain_supervised(
    images: &ImageSet,
    config: &PretrainConfig,
    run_dir: Option<&Path>,
    device: &Device,
    observer: &mut dyn TrainObserver<EpochRecord>,
) -> Result<Pretrained> {
    config.validate()?;
    let num_classes = images.num_classes;
    let (train, noise_rate) = noisy_training_set(images, config)?;
    let ad = device.clone().autodiff();
    let model = config.init_encoder(num_classes, config.seed, &ad);
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let run = Run { n: train.n, config, num_classes, vocabulary: Vec::new(), run_dir, device: &ad };
    let compute = |model: &Encoder| compute_copy(model, config.precision);
    let on_device = DeviceImages::upload(&train, &ad);
    let (model, history, epochs_trained) = run.train(model, observer, compute, |model: &Encoder, chunk: &[usize], rng: &mut ChaCha8Rng| {
        let x = on_device.batch(chunk, Some((&config.augment, rng)));
        let labels: Vec<i64> = chunk.iter().map(|&i| i64::from(train.labels[i])).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [chunk.len()]), &ad);
        let logits = model.forward(x);
        let correct = logits.clone().argmax(1).reshape([chunk.len()]).equal(y.clone()).int().sum();
        (loss_fn.forward(logits, y), correct)
    })?;
    Ok(Pretrained { model, config: config.clone(), num_classes, history, noise_rate, epochs_trained })
}

/// Contrastive pre-training on given captions (one per image; e.g. from a caption file), a
/// share `caption_noise` of them swapped between pairs. The recorded "train accuracy" is the
/// share of images whose own caption scored highest in their batch.
pub fn pretrain_contrastive(
    images: &ImageSet,
    captions: &[String],
    config: &PretrainConfig,
    run_dir: Option<&Path>,
    device: &Device,
    observer: &mut dyn TrainObserver<EpochRecord>,
) -> Result<Pretrained> {
    config.validate()?;
    let Objective::Contrastive { embed_dim, max_words, caption_noise, .. } = config.objective else {
        return Err(NmlError::Invalid("pretrain_contrastive needs a contrastive objective".into()));
    };
    if captions.len() != images.n {
        return Err(NmlError::Invalid(format!("{} captions for {} images in {}", captions.len(), images.n, images.name)));
    }
    let (tokens, noise_rate, vocabulary) = noisy_caption_tokens(captions, caption_noise, max_words, config.seed)?;
    let train = images.resized(config.image_size, config.image_size);
    let ad = device.clone().autodiff();
    let image_tower = config.init_encoder(images.num_classes, config.seed, &ad);
    let model = contrastive::ContrastiveModel::new(image_tower, config.model.feature_dim(), embed_dim, vocabulary.size(), config.seed, &ad);
    let run = Run { n: train.n, config, num_classes: images.num_classes, vocabulary: vocabulary.words(), run_dir, device: &ad };
    // Only the image tower computes in reduced precision; the text tower is a small embedding.
    let compute = |model: &contrastive::ContrastiveModel| contrastive::ContrastiveModel { image: compute_copy(&model.image, config.precision), ..model.clone() };
    let on_device = DeviceImages::upload(&train, &ad);
    let (model, history, epochs_trained) = run.train(model, observer, compute, |model: &contrastive::ContrastiveModel, chunk: &[usize], rng: &mut ChaCha8Rng| {
        let x = on_device.batch(chunk, Some((&config.augment, rng)));
        let ids: Vec<i64> = chunk.iter().flat_map(|&i| tokens[i].iter().copied()).collect();
        let t = Tensor::<2, Int>::from_data(TensorData::new(ids, [chunk.len(), max_words]), &ad);
        model.loss(x, t)
    })?;
    Ok(Pretrained { model: model.image, config: config.clone(), num_classes: images.num_classes, history, noise_rate, epochs_trained })
}

/// Each image's caption after swapping a share `caption_noise` of them between pairs, as word
/// ids over the captions' vocabulary, with the realised share of swapped captions.
fn noisy_caption_tokens(captions: &[String], caption_noise: f64, max_words: usize, seed: u64) -> Result<(Vec<Vec<i64>>, f64, contrastive::Vocabulary)> {
    let (caption_of, changed) = crate::noise::swap_captions(captions.len(), caption_noise, seed)?;
    let rate = changed.iter().filter(|&&c| c).count() as f64 / captions.len().max(1) as f64;
    let vocabulary = contrastive::Vocabulary::build(captions);
    let tokens = caption_of.iter().map(|&c| vocabulary.encode(&captions[c], max_words)).collect();
    Ok((tokens, rate, vocabulary))
}

/// The epoch loop every objective shares: seeded shuffles, per-step cosine, checkpoints,
/// resuming.
struct Run<'a> {
    n: usize,
    config: &'a PretrainConfig,
    num_classes: usize,
    vocabulary: Vec<String>,
    run_dir: Option<&'a Path>,
    device: &'a Device,
}

impl Run<'_> {
    /// Trains `model` with `batch` giving each batch's loss and its count of correct items,
    /// computed on `compute(model)` (the model itself, or its mixed-precision copy); returns
    /// the model (inference mode), the whole history, and the epochs trained now.
    fn train<M: Module>(
        &self,
        mut model: M,
        observer: &mut dyn TrainObserver<EpochRecord>,
        compute: impl Fn(&M) -> M,
        mut batch: impl FnMut(&M, &[usize], &mut ChaCha8Rng) -> (Tensor<1>, Tensor<1, Int>),
    ) -> Result<(M, Vec<EpochRecord>, usize)> {
        let config = self.config;
        if self.n < 2 {
            return Err(NmlError::Invalid("need at least two training images".into()));
        }
        config.precision.check(self.device)?;
        let loss_scale = config.precision.loss_scale();
        let mut optim = optimizer(&config.optimizer);
        let mut history = Vec::new();
        if let Some(dir) = self.run_dir {
            std::fs::create_dir_all(dir).map_err(|e| NmlError::Io { path: dir.to_path_buf(), source: e })?;
            if let Some((bytes, meta)) = checkpoint::find(dir)? {
                let name = dir.join(checkpoint::MODEL_FILE).display().to_string();
                if meta.config != *config || meta.num_classes != self.num_classes || meta.vocabulary != self.vocabulary {
                    return Err(NmlError::format(name, "holds a run of another config; choose another directory or delete it"));
                }
                crate::store::load_module(&mut model, &bytes, &name)?;
                if meta.epochs_done < config.epochs {
                    optim = checkpoint::load_optimizer(dir, meta.epochs_done, optim)?;
                }
                history = meta.history;
            }
        }
        let first_epoch = history.len() + 1;
        let batch_size = config.batch_size.min(self.n);
        let batches_per_epoch = self.n / batch_size + usize::from(self.n % batch_size >= 2);
        let total_steps = batches_per_epoch * config.epochs;
        for epoch in first_epoch..=config.epochs {
            let started = Instant::now();
            let mut rng = epoch_rng(config.seed, epoch);
            let mut order: Vec<usize> = (0..self.n).collect();
            order.shuffle(&mut rng);
            let mut step = (epoch - 1) * batches_per_epoch;
            let mut sum_loss = Tensor::<1>::zeros([1], self.device);
            let mut correct = Tensor::<1, Int>::zeros([1], self.device);
            let (mut seen, mut batches, mut lr) = (0usize, 0usize, config.optimizer.lr());
            for chunk in order.chunks(batch_size) {
                if chunk.len() < 2 {
                    continue;
                }
                let (loss, hits) = batch(&compute(&model), chunk, &mut rng);
                correct = correct + hits;
                sum_loss = sum_loss + loss.clone().detach();
                lr = cosine_lr(config.optimizer.lr(), step, total_steps);
                // AdamW's step is invariant to the gradients' scale, so the scaled loss needs
                // no unscaling (config validation keeps f16 to AdamW).
                let loss = if loss_scale == 1.0 { loss } else { loss.mul_scalar(loss_scale) };
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
            if let Some(dir) = self.run_dir {
                let meta = CheckpointMeta {
                    config: config.clone(),
                    num_classes: self.num_classes,
                    epochs_done: epoch,
                    history: history.clone(),
                    vocabulary: self.vocabulary.clone(),
                };
                // `valid()` folds the last batch's pending batch-norm statistics into the saved ones.
                checkpoint::save(dir, &model.valid(), &optim, &meta)?;
            }
            if observer.should_stop() {
                break;
            }
        }
        let epochs_trained = history.len() + 1 - first_epoch;
        Ok((model.valid(), history, epochs_trained))
    }
}

/// Loads a finished (or partial) pre-training run's image encoder for extraction.
/// A model exported by `nml tune --export` (fine-tuned, adapters merged) loads too: its
/// encoder, with the pre-trained checkpoint's metadata.
pub fn load_model(path: &Path, device: &Device) -> Result<(Encoder, CheckpointMeta)> {
    let bytes = crate::io::read_file(path)?;
    let name = path.display().to_string();
    if crate::finetune::read_finetune_meta(&bytes, &name)?.is_some() {
        let (model, meta) = crate::finetune::load_merged(&bytes, &name, device)?;
        return Ok((model.encoder, CheckpointMeta { config: PretrainConfig { image_size: meta.image_size, ..meta.base.config }, ..meta.base }));
    }
    let meta = checkpoint::read_meta(&bytes, &name)?;
    meta.config.validate().map_err(|e| NmlError::format(&name, e.to_string()))?;
    let encoder = meta.config.init_encoder(meta.num_classes, 0, device);
    let model = match meta.config.objective {
        Objective::Supervised => {
            let mut model = encoder;
            crate::store::load_module(&mut model, &bytes, &name)?;
            model
        }
        Objective::Contrastive { embed_dim, .. } => {
            let feature_dim = meta.config.model.feature_dim();
            let vocabulary = meta.vocabulary.len() + 1;
            let mut model = contrastive::ContrastiveModel::new(encoder, feature_dim, embed_dim, vocabulary, 0, device);
            crate::store::load_module(&mut model, &bytes, &name)?;
            model.image
        }
    };
    Ok((model, meta))
}

const EXTRACT_BATCH: usize = 256;

/// The encoder's features of every image (resampled to the model's input size), with the
/// images' labels: what downstream heads are tuned on.
pub fn extract(model: &Encoder, images: &ImageSet, image_size: usize, name: &str, device: &Device) -> Result<FeatureSet> {
    let set = images.resized(image_size, image_size);
    let mut features = Vec::new();
    let mut d = 0;
    let all: Vec<usize> = (0..set.n).collect();
    for chunk in all.chunks(EXTRACT_BATCH) {
        let pixels = image_batch(&set, chunk, None);
        let x = Tensor::<4>::from_data(TensorData::new(pixels, [chunk.len(), 1, image_size, image_size]), device);
        let f = model.embed(x);
        d = f.dims()[1];
        features.extend(blocking(floats(f))?);
    }
    let labels = set.labels.iter().map(|&l| i64::from(l)).collect();
    FeatureSet::new(name, features, d, labels, Some(set.num_classes))
}

#[cfg(test)]
mod tests;
