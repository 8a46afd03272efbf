//! Pre-training an image encoder on labels corrupted by the core's noise generators
//! (supervised), or CLIP-style on captions of which a share is swapped (contrastive), through the
//! one training loop: per-epoch checkpoints a run resumes from exactly, on one device or split
//! over several.

mod config;
mod contrastive;
mod device_images;
mod run_dir;

pub use config::{ModelShape, Objective, PretrainConfig};
pub use contrastive::class_captions;
pub use device_images::DeviceImages;
pub use run_dir::{CheckpointMeta, META_KEY, saved_run};

use std::path::Path;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::ImageSet;
use crate::error::{NmlError, Result};
use crate::models::{ContrastiveModel, Encoder, compute_copy};
use crate::readback::blocking;
use crate::train::{self, EpochSums, Flow, Observer, Plan, RunDir, Shuffle, StepLoss};

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
    /// Realised share of training labels (or captions) the noise changed.
    pub noise_rate: f64,
    /// Epochs this call trained (0 when a finished checkpoint was reused).
    pub epochs_trained: usize,
}

/// Pre-trains an encoder on `images` as `config.objective` says: on noisy labels (supervised) or
/// on noisy captions built from the labels' class names (contrastive). With `run_dir`, a
/// checkpoint is written after every epoch; an existing checkpoint of the same config is resumed
/// (or, when finished, simply loaded), and one of another config is an error rather than
/// silently overwritten.
pub fn pretrain(
    images: &ImageSet,
    config: &PretrainConfig,
    run_dir: Option<&Path>,
    device: &Device,
    observer: &mut dyn Observer<EpochRecord>,
) -> Result<Pretrained> {
    run(images, None, config, run_dir, std::slice::from_ref(device), observer)
}

/// [`pretrain`] with every batch split over `devices` (data parallel; the first holds the model
/// and the optimiser). The run directory is the same as a one-device run's, so either may resume
/// the other.
pub fn pretrain_data_parallel(
    images: &ImageSet,
    config: &PretrainConfig,
    run_dir: Option<&Path>,
    devices: &[Device],
    observer: &mut dyn Observer<EpochRecord>,
) -> Result<Pretrained> {
    if devices.is_empty() {
        return Err(NmlError::Invalid(
            "data-parallel pre-training needs at least one device".into(),
        ));
    }
    run(images, None, config, run_dir, devices, observer)
}

/// Contrastive pre-training on given captions (one per image, e.g. from a caption file), a
/// share `caption_noise` of them swapped between pairs. The recorded "train accuracy" is the
/// share of images whose own caption scored highest in their batch.
pub fn pretrain_contrastive(
    images: &ImageSet,
    captions: &[String],
    config: &PretrainConfig,
    run_dir: Option<&Path>,
    device: &Device,
    observer: &mut dyn Observer<EpochRecord>,
) -> Result<Pretrained> {
    if !matches!(config.objective, Objective::Contrastive { .. }) {
        return Err(NmlError::Invalid("captions need a contrastive objective".into()));
    }
    if captions.len() != images.n() {
        return Err(NmlError::Invalid(format!(
            "{} captions for {} images in {}",
            captions.len(),
            images.n(),
            images.name()
        )));
    }
    run(images, Some(captions), config, run_dir, std::slice::from_ref(device), observer)
}

/// Training images resampled to the run's size, with their noisy labels and the realised rate.
pub fn noisy_training_set(images: &ImageSet, config: &PretrainConfig) -> Result<(ImageSet, f64)> {
    let set = images.resized(config.image_size, config.image_size);
    match &config.noise {
        Some(noise) => {
            let noisy = noise.apply(images.labels(), images.num_classes(), config.seed)?;
            let rate = noisy.rate();
            Ok((set.with_labels(noisy.labels)?, rate))
        }
        None => Ok((set, 0.0)),
    }
}

fn run(
    images: &ImageSet,
    captions: Option<&[String]>,
    config: &PretrainConfig,
    run_dir: Option<&Path>,
    devices: &[Device],
    observer: &mut dyn Observer<EpochRecord>,
) -> Result<Pretrained> {
    config.validate()?;
    for device in devices {
        config.precision.check(device)?;
    }
    let devices: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
    let ad = devices[0].clone();
    let (num_classes, in_channels) = (images.num_classes(), images.channels());
    let run_dir = run_dir.map(|dir| RunDir::new(dir, META_KEY));
    let plan = Plan::new(
        images.n(),
        config.epochs,
        config.batch_size,
        config.optimizer.lr(),
        Shuffle::PerEpoch { seed: config.seed },
    )
    .with_loss_scale(config.precision.loss_scale())
    .with_devices(if devices.len() > 1 { devices.clone() } else { Vec::new() });
    let image_tower = config.init_encoder(in_channels, num_classes, config.seed, &ad);
    let parallel = devices.len() > 1;
    match &config.objective {
        Objective::Supervised => {
            let (train, noise_rate) = noisy_training_set(images, config)?;
            let on_device = DeviceImages::upload(&train, &ad);
            let loss_fn = CrossEntropyLossConfig::new().init(&ad);
            let step = async |model: &Encoder,
                              chunk: &[usize],
                              rng: &mut ChaCha8Rng|
                   -> Result<StepLoss> {
                let device = model_device(model, &ad);
                let x = replica_batch(&on_device, chunk, config, rng, &device, parallel)?;
                let labels: Vec<i64> =
                    chunk.iter().map(|&i| i64::from(train.labels()[i])).collect();
                let y =
                    Tensor::<1, Int>::from_data(TensorData::new(labels, [chunk.len()]), &device);
                let logits = compute_copy(model, config.precision).forward(x);
                let correct =
                    logits.clone().argmax(1).reshape([chunk.len()]).equal(y.clone()).int().sum();
                Ok(StepLoss::new(loss_fn.forward(logits, y)).with_correct(correct))
            };
            let (model, history, epochs_trained) = fit(
                image_tower,
                &plan,
                config,
                [in_channels, num_classes],
                Vec::new(),
                run_dir.as_ref(),
                step,
                observer,
            )?;
            Ok(Pretrained {
                model,
                config: config.clone(),
                num_classes,
                history,
                noise_rate,
                epochs_trained,
            })
        }
        Objective::Contrastive { embed_dim, templates, class_names, max_words, caption_noise } => {
            let built;
            let captions = match captions {
                Some(c) => c,
                None => {
                    built = class_captions(images.labels(), templates, class_names, config.seed)?;
                    &built
                }
            };
            let (tokens, noise_rate, vocabulary) = contrastive::noisy_caption_tokens(
                captions,
                *caption_noise,
                *max_words,
                config.seed,
            )?;
            let train = images.resized(config.image_size, config.image_size);
            let model = ContrastiveModel::new(
                image_tower,
                config.model.feature_dim(),
                *embed_dim,
                vocabulary.size(),
                config.seed,
                &ad,
            );
            let on_device = DeviceImages::upload(&train, &ad);
            let max_words = *max_words;
            let step = async |model: &ContrastiveModel,
                              chunk: &[usize],
                              rng: &mut ChaCha8Rng|
                   -> Result<StepLoss> {
                let device = model_device(model, &ad);
                let x = replica_batch(&on_device, chunk, config, rng, &device, parallel)?;
                let ids: Vec<i64> = chunk.iter().flat_map(|&i| tokens[i].iter().copied()).collect();
                let t = Tensor::<2, Int>::from_data(
                    TensorData::new(ids, [chunk.len(), max_words]),
                    &device,
                );
                // Only the image tower computes in reduced precision; the text tower is a small embedding.
                let compute = ContrastiveModel {
                    image: compute_copy(&model.image, config.precision),
                    ..model.clone()
                };
                let (loss, correct) = compute.loss(x, t);
                Ok(StepLoss::new(loss).with_correct(correct))
            };
            let (model, history, epochs_trained) = fit(
                model,
                &plan,
                config,
                [in_channels, num_classes],
                vocabulary.words(),
                run_dir.as_ref(),
                step,
                observer,
            )?;
            Ok(Pretrained {
                model: model.image,
                config: config.clone(),
                num_classes,
                history,
                noise_rate,
                epochs_trained,
            })
        }
    }
}

/// The augmented batch of `chunk`, on the replica's `device` when training is split over
/// several devices (the images live on the first).
fn replica_batch(
    images: &DeviceImages,
    chunk: &[usize],
    config: &PretrainConfig,
    rng: &mut ChaCha8Rng,
    device: &Device,
    parallel: bool,
) -> Result<Tensor<4>> {
    let x = images.batch(chunk, config.augment.normalize.as_ref(), Some((&config.augment, rng)))?;
    Ok(if parallel { x.to_device(device) } else { x })
}

/// The device a replica's parameters are on.
fn model_device<M: Module>(model: &M, fallback: &Device) -> Device {
    model.devices().into_iter().next().unwrap_or_else(|| fallback.clone())
}

/// Trains `model` through the loop, resuming from and checkpointing into `run_dir`; returns the
/// model in inference mode, the whole history and the epochs trained now.
#[allow(clippy::too_many_arguments)]
fn fit<M: Module>(
    mut model: M,
    plan: &Plan,
    config: &PretrainConfig,
    [in_channels, num_classes]: [usize; 2],
    vocabulary: Vec<String>,
    run_dir: Option<&RunDir>,
    step: impl AsyncFnMut(&M, &[usize], &mut ChaCha8Rng) -> Result<StepLoss>,
    observer: &mut dyn Observer<EpochRecord>,
) -> Result<(M, Vec<EpochRecord>, usize)> {
    let mut optim = config.optimizer.init();
    let mut history = Vec::new();
    if let Some(dir) = run_dir
        && let Some((bytes, meta)) = dir.saved::<CheckpointMeta>()?
    {
        let name = dir.model_path().display().to_string();
        if meta.config != *config
            || meta.num_classes != num_classes
            || meta.in_channels != in_channels
            || meta.vocabulary != vocabulary
        {
            return Err(NmlError::format(
                name,
                "holds a run of another config; choose another directory or delete it",
            ));
        }
        crate::store::load_module(&mut model, &bytes, &name)?;
        if meta.epochs_done < config.epochs {
            dir.load_optimizer::<M, _>(meta.epochs_done, &mut optim)?;
        }
        history = meta.history;
    }
    let end_epoch = async |_: &M, sums: EpochSums| -> Result<(EpochRecord, Flow)> {
        let record = EpochRecord {
            epoch: sums.epoch,
            loss: sums.loss,
            train_accuracy: sums.accuracy.unwrap_or(0.0),
            lr: sums.lr,
            seconds: sums.seconds,
        };
        Ok((record, Flow::Continue))
    };
    let mut save = |model: &M, optim: &ModuleOptimizer, history: &[EpochRecord]| -> Result<()> {
        let Some(dir) = run_dir else { return Ok(()) };
        let meta = CheckpointMeta {
            config: config.clone(),
            num_classes,
            in_channels,
            epochs_done: history.len(),
            history: history.to_vec(),
            vocabulary: vocabulary.clone(),
        };
        // `valid()` folds the last batch's pending batch-norm statistics into the saved ones.
        dir.save(&model.valid(), optim, &meta, history.len())
    };
    let trained = blocking(train::train(
        model,
        plan,
        &mut optim,
        history,
        step,
        end_epoch,
        observer,
        Some(&mut save),
    ))?;
    Ok((trained.model.valid(), trained.history, trained.epochs_trained))
}

#[cfg(test)]
mod tests;
