//! The one training loop behind every head: shuffled mini-batches, AdamW, per-step cosine.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::config::TuneConfig;
use super::head::{FeatureHead, FeatureHeadConfig};
use super::regularizers::{consistency_mse, covariance_penalty, top_k_singular_share_async};
use super::schedule::cosine_lr;
use crate::data::FeatureSet;
use crate::error::{NmlError, Result};
use crate::optim::FusedAdamWConfig;
use crate::readback::{blocking, floats, ints};

/// What one epoch did: mean loss terms over its batches, the learning rate it ended on, and the
/// validation accuracy when there is a validation split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub loss: f64,
    pub ce: f64,
    pub mse: f64,
    pub cov: f64,
    pub svd: f64,
    pub lr: f64,
    pub val_accuracy: Option<f64>,
}

/// Hooks into a running fit: progress display, live curves, a stop button.
/// `S` is what an epoch reports: [`EpochStats`] for heads, `pretrain::EpochRecord` for encoders.
pub trait TrainObserver<S = EpochStats> {
    fn on_epoch(&mut self, _stats: &S) {}
    /// Checked between batches; returning true ends training with the head as it is.
    fn should_stop(&mut self) -> bool {
        false
    }
}

impl<S> TrainObserver<S> for () {}

/// A trained head (in inference mode) and how training went.
pub struct FitResult {
    pub head: FeatureHead,
    pub history: Vec<EpochStats>,
    /// The epoch whose head was kept when early stopping chose one.
    pub best_epoch: Option<usize>,
    pub stopped_by_observer: bool,
}

/// Trains a head on `train` as `config` says; `val` drives early stopping when `patience > 0`.
pub fn fit(
    train: &FeatureSet,
    val: Option<&FeatureSet>,
    config: &TuneConfig,
    device: &Device,
    observer: &mut dyn TrainObserver,
) -> Result<FitResult> {
    blocking(fit_async(train, val, config, device, observer))
}

/// [`fit`] for devices that can only be read asynchronously (WebGPU in a browser).
pub async fn fit_async(
    train: &FeatureSet,
    val: Option<&FeatureSet>,
    config: &TuneConfig,
    device: &Device,
    observer: &mut dyn TrainObserver,
) -> Result<FitResult> {
    config.validate()?;
    if train.n < 2 {
        return Err(NmlError::Invalid(format!("{}: need at least two training samples", train.name)));
    }
    let ad = device.clone().autodiff();
    let hidden = config.method.has_transform().then(|| config.hidden_mult * train.d);
    let mut head = FeatureHeadConfig::new(train.d, train.num_classes)
        .with_hidden(hidden)
        .init(config.seed, &ad);
    let mut optimizer = FusedAdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        .with_epsilon(1e-8)
        .init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let x = train.features_tensor(&ad);
    let y = train.labels_tensor(&ad);

    let batch = config.batch_size.min(train.n);
    // A final batch of one row is dropped: batch norm and the batch covariance need two.
    let batches_per_epoch = train.n / batch + usize::from(train.n % batch >= 2);
    let total_steps = batches_per_epoch * config.epochs;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed.wrapping_add(0x5eed));
    let mut order: Vec<usize> = (0..train.n).collect();
    let mut step = 0;
    let mut history = Vec::with_capacity(config.epochs);
    let mut best: Option<(f64, usize, FeatureHead)> = None;
    let mut stopped_by_observer = false;

    'epochs: for epoch in 1..=config.epochs {
        order.shuffle(&mut rng);
        let zero = || Tensor::<1>::zeros([1], &ad);
        let (mut sum_loss, mut sum_ce, mut sum_mse, mut sum_cov, mut sum_svd) = (zero(), zero(), zero(), zero(), zero());
        let mut batches = 0usize;
        let mut lr = config.lr;
        for chunk in order.chunks(batch) {
            if chunk.len() < 2 {
                continue;
            }
            if observer.should_stop() {
                stopped_by_observer = true;
                break 'epochs;
            }
            let idx: Vec<i64> = chunk.iter().map(|&i| i as i64).collect();
            let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [chunk.len()]), &ad);
            let xb = x.clone().select(0, idx.clone());
            let yb = y.clone().select(0, idx);
            let (z, logits) = head.forward(xb.clone());
            let ce = loss_fn.forward(logits, yb);
            let mut loss = ce.clone();
            if config.w_mse > 0.0 {
                let term = consistency_mse(z.clone(), xb);
                sum_mse = sum_mse + term.clone().detach();
                loss = loss + term.mul_scalar(config.w_mse);
            }
            if config.w_cov > 0.0 {
                let term = covariance_penalty(z.clone());
                sum_cov = sum_cov + term.clone().detach();
                loss = loss + term.mul_scalar(config.w_cov);
            }
            if config.w_svd > 0.0 {
                let term = top_k_singular_share_async(z, config.top_k).await?;
                sum_svd = sum_svd + term.clone().detach();
                loss = loss - term.mul_scalar(config.w_svd);
            }
            sum_ce = sum_ce + ce.detach();
            sum_loss = sum_loss + loss.clone().detach();
            lr = cosine_lr(config.lr, step, total_steps);
            let grads = GradientsParams::from_grads(loss.backward(), &head);
            head = optimizer.step(lr, head, grads);
            step += 1;
            batches += 1;
        }
        // One read per epoch: the device need not wait for the host between batches.
        let sums = floats(Tensor::cat(vec![sum_loss, sum_ce, sum_mse, sum_cov, sum_svd], 0)).await?;
        let per = |i: usize| f64::from(sums[i]) / batches.max(1) as f64;
        let val_accuracy = match val {
            Some(v) => Some(accuracy_async(&head.valid(), v, device).await?),
            None => None,
        };
        let stats = EpochStats {
            epoch,
            loss: per(0),
            ce: per(1),
            mse: per(2),
            cov: per(3),
            svd: per(4),
            lr,
            val_accuracy,
        };
        if !stats.loss.is_finite() {
            return Err(NmlError::Invalid(format!(
                "training diverged at epoch {epoch} (loss {}); lower the learning rate",
                stats.loss
            )));
        }
        observer.on_epoch(&stats);
        history.push(stats);
        if config.patience > 0 {
            let acc = val_accuracy.expect("validated: patience needs a validation split");
            match &best {
                Some((best_acc, _, _)) if acc <= *best_acc => {}
                _ => best = Some((acc, epoch, head.valid())),
            }
            let best_epoch = best.as_ref().map(|b| b.1).unwrap_or(epoch);
            if epoch - best_epoch >= config.patience {
                break;
            }
        }
    }
    let (head, best_epoch) = match best {
        Some((_, epoch, head)) => (head, Some(epoch)),
        None => (head.valid(), None),
    };
    Ok(FitResult {
        head,
        history,
        best_epoch,
        stopped_by_observer,
    })
}

const EVAL_ROWS: usize = 8192;

/// The head's transformed features (Z) of a set, computed in chunks.
pub fn transform_features(head: &FeatureHead, set: &FeatureSet, device: &Device) -> Result<FeatureSet> {
    blocking(transform_features_async(head, set, device))
}

/// [`transform_features`] for devices that can only be read asynchronously (WebGPU in a browser).
pub async fn transform_features_async(head: &FeatureHead, set: &FeatureSet, device: &Device) -> Result<FeatureSet> {
    let mut features = Vec::with_capacity(set.n * set.d);
    for start in (0..set.n).step_by(EVAL_ROWS) {
        let rows = EVAL_ROWS.min(set.n - start);
        let chunk = set.features[start * set.d..(start + rows) * set.d].to_vec();
        let z = head.transform(Tensor::from_data(TensorData::new(chunk, [rows, set.d]), device));
        features.extend(floats(z).await?);
    }
    let mut out = set.clone();
    out.features = features;
    out.name = format!("{} (transformed)", set.name);
    Ok(out)
}

/// Predicted class of every row of a feature matrix (row-major, `d` columns).
pub fn predict(head: &FeatureHead, features: &[f32], d: usize, device: &Device) -> Result<Vec<u32>> {
    blocking(predict_async(head, features, d, device))
}

/// [`predict`] for devices that can only be read asynchronously (WebGPU in a browser).
pub async fn predict_async(head: &FeatureHead, features: &[f32], d: usize, device: &Device) -> Result<Vec<u32>> {
    let n = features.len() / d;
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(EVAL_ROWS) {
        let rows = EVAL_ROWS.min(n - start);
        let chunk = features[start * d..(start + rows) * d].to_vec();
        let (_, logits) = head.forward(Tensor::from_data(TensorData::new(chunk, [rows, d]), device));
        out.extend(ints(logits.argmax(1)).await?.into_iter().map(|c| c as u32));
    }
    Ok(out)
}

/// Share of rows whose predicted class is their label.
pub fn accuracy(head: &FeatureHead, set: &FeatureSet, device: &Device) -> Result<f64> {
    blocking(accuracy_async(head, set, device))
}

/// [`accuracy`] for devices that can only be read asynchronously (WebGPU in a browser).
pub async fn accuracy_async(head: &FeatureHead, set: &FeatureSet, device: &Device) -> Result<f64> {
    let predicted = predict_async(head, &set.features, set.d, device).await?;
    let correct = predicted.iter().zip(&set.labels).filter(|(p, l)| p == l).count();
    Ok(correct as f64 / set.n as f64)
}
