//! Choosing NMTune's regulariser weights and MLP width on a validation split.

use serde::{Deserialize, Serialize};

use super::config::TuneConfig;
use super::eval::accuracy_async;
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
    pub val_accuracy: f64,
}

/// Multipliers of the configured regulariser weights, and MLP widths (times D), tried in this
/// order; the configured point comes first so ties keep it.
const WEIGHT_SCALES: [f64; 4] = [1.0, 0.0, 0.1, 10.0];
const WIDTHS: [usize; 2] = [4, 1];

pub fn grid(base: &TuneConfig) -> Vec<TuneConfig> {
    let mut out = Vec::new();
    for &width in &WIDTHS {
        for &scale in &WEIGHT_SCALES {
            let mut c = base.clone();
            c.hidden_mult = if width == 4 { base.hidden_mult } else { width };
            c.w_mse = base.w_mse * scale;
            c.w_cov = base.w_cov * scale;
            c.w_svd = base.w_svd * scale;
            c.select = false;
            if !out.contains(&c) {
                out.push(c);
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
    let mut best: Option<(f64, FitResult, TuneConfig)> = None;
    for config in grid(base) {
        let result = fit_async(train, Some(val), &config, device, observer).await?;
        let val_accuracy = accuracy_async(&result.head, val, device).await?;
        trials.push(SelectionTrial {
            w_mse: config.w_mse,
            w_cov: config.w_cov,
            w_svd: config.w_svd,
            hidden_mult: config.hidden_mult,
            val_accuracy,
        });
        let stopped = result.stopped_by_observer;
        if best.as_ref().is_none_or(|(acc, _, _)| val_accuracy > *acc) {
            best = Some((val_accuracy, result, config));
        }
        if stopped {
            break;
        }
    }
    let (_, result, config) = best.expect("the grid is never empty");
    Ok((result, config, trials))
}
