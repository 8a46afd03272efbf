//! Training a head on features: NMTune's losses as the step of the one training loop.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::config::TuneConfig;
use super::eval::{Validation, validation_async};
use super::head::{FeatureHead, FeatureHeadConfig};
use super::regularizers::{consistency_mse, covariance_penalty, top_k_singular_share_async};
use crate::data::FeatureSet;
use crate::error::{NmlError, Result};
use crate::readback::blocking;
use crate::train::{self, EpochSums, Flow, Observer, OptimizerConfig, Plan, Shuffle, StepLoss};

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
    /// Mean cross-entropy on the validation split, which breaks ties of accuracy.
    #[serde(default)]
    pub val_loss: Option<f64>,
}

/// A trained head (in inference mode) and how training went.
pub struct FitResult {
    pub head: FeatureHead,
    pub history: Vec<EpochStats>,
    /// The epoch whose head was kept when early stopping chose one.
    pub best_epoch: Option<usize>,
    /// That head's score on the validation split.
    pub validation: Option<Validation>,
    pub stopped_by_observer: bool,
}

/// Trains a head on `train` as `config` says; `val` drives early stopping when `patience > 0`.
pub fn fit(
    train: &FeatureSet,
    val: Option<&FeatureSet>,
    config: &TuneConfig,
    device: &Device,
    observer: &mut dyn Observer<EpochStats>,
) -> Result<FitResult> {
    blocking(fit_async(train, val, config, device, observer))
}

/// [`fit`] for devices that can only be read asynchronously (WebGPU in a browser).
pub async fn fit_async(
    train: &FeatureSet,
    val: Option<&FeatureSet>,
    config: &TuneConfig,
    device: &Device,
    observer: &mut dyn Observer<EpochStats>,
) -> Result<FitResult> {
    config.validate()?;
    if train.n() < 2 {
        return Err(NmlError::Invalid(format!(
            "{}: need at least two training samples",
            train.name()
        )));
    }
    let ad = device.clone().autodiff();
    let hidden = config.method.has_transform().then(|| config.hidden_mult * train.d());
    let head = FeatureHeadConfig::new(train.d(), train.num_classes())
        .with_hidden(hidden)
        .with_scale_init(config.residual_scale_init)
        .init(config.seed, &ad);
    let mut optimizer =
        OptimizerConfig::Adamw { lr: config.lr, weight_decay: config.weight_decay }.init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let x = train.features_tensor(&ad);
    let y = train.labels_tensor(&ad);
    let plan = Plan::new(
        train.n(),
        config.epochs,
        config.batch_size,
        config.lr,
        Shuffle::Continuing { seed: config.seed.wrapping_add(0x5eed) },
    );
    let zero = || Tensor::<1>::zeros([1], &ad);
    let step = async |head: &FeatureHead, chunk: &[usize], _: &mut _| -> Result<StepLoss> {
        let idx: Vec<i64> = chunk.iter().map(|&i| i as i64).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [chunk.len()]), &ad);
        let xb = x.clone().select(0, idx.clone());
        let yb = y.clone().select(0, idx);
        let (z, logits) = head.forward(xb.clone());
        let ce = loss_fn.forward(logits, yb);
        let mut loss = ce.clone();
        let (mut mse, mut cov, mut svd) = (zero(), zero(), zero());
        if config.w_mse > 0.0 {
            mse = consistency_mse(z.clone(), xb);
            loss = loss + mse.clone().mul_scalar(config.w_mse);
        }
        if config.w_cov > 0.0 {
            cov = covariance_penalty(z.clone());
            loss = loss + cov.clone().mul_scalar(config.w_cov);
        }
        if config.w_svd > 0.0 {
            svd = top_k_singular_share_async(z, config.top_k).await?;
            loss = loss - svd.clone().mul_scalar(config.w_svd);
        }
        Ok(StepLoss::new(loss).with_terms(vec![ce, mse, cov, svd]))
    };
    let mut best: Option<(Validation, usize, FeatureHead)> = None;
    let end_epoch = async |head: &FeatureHead, sums: EpochSums| -> Result<(EpochStats, Flow)> {
        let validation = match val {
            Some(v) => Some(validation_async(&head.valid(), v, device).await?),
            None => None,
        };
        let stats = EpochStats {
            epoch: sums.epoch,
            loss: sums.loss,
            ce: sums.terms[0],
            mse: sums.terms[1],
            cov: sums.terms[2],
            svd: sums.terms[3],
            lr: sums.lr,
            val_accuracy: validation.map(|v| v.accuracy),
            val_loss: validation.map(|v| v.loss),
        };
        let mut flow = Flow::Continue;
        if config.patience > 0 {
            let score = validation.expect("validated: patience needs a validation split");
            if best.as_ref().is_none_or(|(best_score, _, _)| score.better_than(best_score)) {
                best = Some((score, sums.epoch, head.valid()));
            }
            let best_epoch = best.as_ref().map_or(sums.epoch, |b| b.1);
            if sums.epoch - best_epoch >= config.patience {
                flow = Flow::Stop;
            }
        }
        Ok((stats, flow))
    };
    let trained =
        train::train(head, &plan, &mut optimizer, Vec::new(), step, end_epoch, observer, None)
            .await?;
    let (head, best_epoch, validation) = match best {
        Some((score, epoch, head)) => (head, Some(epoch), Some(score)),
        None => (trained.model.valid(), None, None),
    };
    Ok(FitResult {
        head,
        history: trained.history,
        best_epoch,
        validation,
        stopped_by_observer: trained.stopped,
    })
}
