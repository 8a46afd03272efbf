//! Choosing a head's recipe on a validation split: NMTune's regulariser weights and MLP width,
//! and settings that let the residual MLP fall back towards the linear probe it sits on.

use serde::{Deserialize, Serialize};

use super::config::{Method, TuneConfig};
use super::eval::{Validation, validation_async};
use super::fit::{EpochStats, FitResult, fit_async};
use crate::data::FeatureSet;
use crate::error::Result;
use crate::train::Observer;
use burn::tensor::Device;

/// One point of the grid and the validation accuracy it reached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelectionTrial {
    pub w_mse: f64,
    pub w_cov: f64,
    pub w_svd: f64,
    pub hidden_mult: usize,
    #[serde(default = "one")]
    pub residual_scale_init: f64,
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default)]
    pub lr: f64,
    /// The epoch whose head was kept (best on validation).
    #[serde(default)]
    pub best_epoch: Option<usize>,
    pub val_accuracy: f64,
    /// Mean cross-entropy on the validation split: the lower wins a tie of accuracy.
    #[serde(default)]
    pub val_loss: Option<f64>,
}

fn one() -> f64 {
    1.0
}

/// Multipliers of the configured regulariser weights and MLP widths (times D) of the paper's
/// half of the grid; the configured point comes first.
const WEIGHT_SCALES: [f64; 4] = [1.0, 0.0, 0.1, 10.0];
const NARROW_WIDTH: usize = 1;
/// The fallback half's stronger weight decay: this many times the configured one, at least
/// [`STRONG_WEIGHT_DECAY_FLOOR`].
const STRONG_WEIGHT_DECAY_FACTOR: f64 = 100.0;
const STRONG_WEIGHT_DECAY_FLOOR: f64 = 1e-2;

/// The grid `select` searches, in order. The best validation accuracy wins, a tie goes to the
/// lower validation cross-entropy (a small split scores many points alike), then to the
/// earlier point:
///
/// 1. the configured recipe with its regulariser weights scaled by 1, 0, 0.1 and 10, at the
///    configured MLP width and at 1 x D;
/// 2. settings that can fall back towards the linear probe: the residual scale starting at 0
///    (the head starts as a probe on the features and the MLP must earn its way in), at both
///    widths, with the configured and a much stronger weight decay, at the configured learning
///    rate and at the probe's.
///
/// Every point keeps its epoch with the best validation score, by the same rule (it trains the
/// configured epochs, or stops after the configured patience).
pub fn grid(base: &TuneConfig) -> Vec<TuneConfig> {
    let keep_best_epoch = if base.patience > 0 { base.patience } else { base.epochs };
    let point = |width: usize, scale: f64| TuneConfig {
        hidden_mult: width,
        w_mse: base.w_mse * scale,
        w_cov: base.w_cov * scale,
        w_svd: base.w_svd * scale,
        patience: keep_best_epoch,
        select: false,
        ..base.clone()
    };
    let widths = [base.hidden_mult, NARROW_WIDTH];
    let mut out: Vec<TuneConfig> = Vec::new();
    let mut push = |c: TuneConfig| {
        if !out.contains(&c) {
            out.push(c);
        }
    };
    for &width in &widths {
        for &scale in &WEIGHT_SCALES {
            push(point(width, scale));
        }
    }
    let strong_decay =
        (base.weight_decay * STRONG_WEIGHT_DECAY_FACTOR).max(STRONG_WEIGHT_DECAY_FLOOR);
    let probe_lr = TuneConfig::for_method(Method::Lp).lr;
    for &width in &widths {
        for weight_decay in [base.weight_decay, strong_decay] {
            for lr in [base.lr, probe_lr] {
                push(TuneConfig {
                    residual_scale_init: 0.0,
                    weight_decay,
                    lr,
                    ..point(width, 1.0)
                });
            }
        }
    }
    out
}

/// Trains every grid point on `train`, scores it on `val`, and returns the best fit with its
/// config and all trials.
pub async fn select(
    train: &FeatureSet,
    val: &FeatureSet,
    base: &TuneConfig,
    device: &Device,
    observer: &mut dyn Observer<EpochStats>,
) -> Result<(FitResult, TuneConfig, Vec<SelectionTrial>)> {
    let mut trials = Vec::new();
    let mut best: Option<(Validation, FitResult, TuneConfig)> = None;
    for config in grid(base) {
        let result = fit_async(train, Some(val), &config, device, observer).await?;
        let score = match result.validation {
            Some(score) => score,
            None => validation_async(&result.head, val, device).await?,
        };
        trials.push(SelectionTrial {
            w_mse: config.w_mse,
            w_cov: config.w_cov,
            w_svd: config.w_svd,
            hidden_mult: config.hidden_mult,
            residual_scale_init: config.residual_scale_init,
            weight_decay: config.weight_decay,
            lr: config.lr,
            best_epoch: result.best_epoch,
            val_accuracy: score.accuracy,
            val_loss: Some(score.loss),
        });
        let stopped = result.stopped_by_observer;
        if best.as_ref().is_none_or(|(best_score, _, _)| score.better_than(best_score)) {
            best = Some((score, result, config));
        }
        if stopped {
            break;
        }
    }
    let (_, result, config) = best.expect("the grid is never empty");
    Ok((result, config, trials))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_starts_with_the_papers_recipe_and_can_fall_back_to_the_probe() {
        let base = TuneConfig { select: true, ..TuneConfig::for_method(Method::Nmtune) };
        let points = grid(&base);
        assert_eq!(points.len(), 16);
        let first = &points[0];
        assert_eq!(
            TuneConfig { patience: 0, select: true, ..first.clone() },
            base,
            "the paper's recipe first, only keeping its best epoch"
        );
        assert!(points.iter().all(|c| c.patience == base.epochs && !c.select));
        assert!(points.iter().any(|c| c.w_mse == 0.0 && c.hidden_mult == 1));
        let fallback: Vec<_> = points.iter().filter(|c| c.residual_scale_init == 0.0).collect();
        assert_eq!(fallback.len(), 8);
        assert!(fallback.iter().any(|c| c.weight_decay == 1e-2 && c.lr == 0.01));
        // MLP's regulariser weights are all zero: its scaled points collapse into one.
        let mlp = TuneConfig { select: true, ..TuneConfig::for_method(Method::Mlp) };
        assert_eq!(grid(&mlp).len(), 2 + 8);
    }
}
