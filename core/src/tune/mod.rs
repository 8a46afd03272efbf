//! Downstream tuning on frozen features: linear probe, MLP, NMTune, and the k-NN probe.
//!
//! # Examples
//!
//! NMTune on real features (the 8x8 digits' pixels), evaluated in domain:
//!
//! ```
//! use nml_core::tune::{Method, TuneConfig, tune};
//! use nml_core::{Device, ImageSet, StarterSet};
//!
//! let digits = ImageSet::starter(StarterSet::SklearnDigits)?.pixel_features()?;
//! let train = digits.subset(&(0..600).collect::<Vec<_>>(), "train");
//! let test = digits.subset(&(1200..1797).collect::<Vec<_>>(), "test");
//! let config = TuneConfig { epochs: 5, ..TuneConfig::for_method(Method::Nmtune) };
//! let outcome = tune(&train, &test, &[], &config, &Device::flex(), &mut ())?;
//! assert!(outcome.report.accuracy > 0.8, "{}", outcome.report.accuracy);
//! # Ok::<(), nml_core::NmlError>(())
//! ```

mod config;
mod eval;
mod fit;
mod head;
pub mod knn;
mod persist;
pub mod regularizers;
mod select;

pub use config::{Method, SELECT_VAL_FRACTION, TuneConfig};
pub use eval::{
    Validation, accuracy, accuracy_async, predict, predict_async, transform_features,
    transform_features_async, validation_async,
};
pub use fit::{EpochStats, FitResult, fit, fit_async};
pub use head::{FeatureHead, FeatureHeadConfig, ResidualMlp};
pub use persist::{head_from_bytes, head_to_bytes};
pub use select::{SelectionTrial, grid};

use std::collections::BTreeMap;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::data::FeatureSet;
use crate::error::{NmlError, Result};
use crate::readback::blocking;
use crate::spectrum::{self, GramPrecision, Preprocess, SpectralMetrics, SpectrumReport};
use crate::train::Observer;

/// Whether an evaluation set is the task's own test set or a shifted one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// In domain: the task's test set.
    Id,
    /// Out of domain: the same labels on shifted inputs.
    Ood,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Ood => "ood",
        }
    }
}

/// The spectrum metrics of one evaluation set, before and after the head's transform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpectrumChange {
    pub set: String,
    pub role: Role,
    pub before: SpectrumSummary,
    pub after: SpectrumSummary,
}

/// The scalar metrics of a spectrum (the full spectrum is in `nml spectrum`'s output).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpectrumSummary {
    pub mode: Preprocess,
    #[serde(flatten)]
    pub metrics: SpectralMetrics,
}

impl From<&SpectrumReport> for SpectrumSummary {
    fn from(r: &SpectrumReport) -> Self {
        Self { mode: r.mode, metrics: r.metrics.clone() }
    }
}

/// Everything a tuning run reports. `seconds` and `backend` are filled in by the caller, which
/// owns the clock and the device description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TuneReport {
    pub method: Method,
    /// Accuracy on the test (in-domain) set.
    pub accuracy: f64,
    /// Accuracy on each out-of-domain set, by name.
    pub ood: BTreeMap<String, f64>,
    pub seconds: f64,
    pub backend: String,
    pub seed: u64,
    /// The config that trained the reported head (after selection, when `select` was on).
    pub config: TuneConfig,
    pub train_samples: usize,
    pub val_samples: usize,
    pub best_epoch: Option<usize>,
    pub epochs_run: usize,
    pub selection: Vec<SelectionTrial>,
    pub spectra: Vec<SpectrumChange>,
    pub history: Vec<EpochStats>,
}

/// A finished run: the report and the head that produced it (none for the k-NN probe, which
/// trains nothing).
pub struct TuneOutcome {
    pub report: TuneReport,
    pub head: Option<FeatureHead>,
    pub head_config: Option<FeatureHeadConfig>,
    /// The full spectra behind `report.spectra`'s `after`: the test set's, then each OOD set's,
    /// after the head's transform (empty for a linear probe, which has none).
    pub transformed_spectra: Vec<SpectrumReport>,
}

fn check_compatible(train: &FeatureSet, other: &FeatureSet) -> Result<()> {
    if other.d() != train.d() {
        return Err(NmlError::format(
            other.name(),
            format!(
                "features have {} dimensions but the training set {} has {}",
                other.d(),
                train.name(),
                train.d()
            ),
        ));
    }
    if let Some(i) = other.labels().iter().position(|&l| l as usize >= train.num_classes()) {
        return Err(NmlError::format(
            other.name(),
            format!(
                "label {} at index {i} is not one of the {} classes of {}",
                other.labels()[i],
                train.num_classes(),
                train.name()
            ),
        ));
    }
    Ok(())
}

/// Tunes a head on `train` and evaluates it on `test` and every OOD set: the whole of `nml tune`.
pub fn tune(
    train: &FeatureSet,
    test: &FeatureSet,
    ood: &[(String, FeatureSet)],
    config: &TuneConfig,
    device: &Device,
    observer: &mut dyn Observer<EpochStats>,
) -> Result<TuneOutcome> {
    blocking(tune_async(train, test, ood, config, device, observer))
}

/// [`tune`] for devices that can only be read asynchronously (WebGPU in a browser).
pub async fn tune_async(
    train: &FeatureSet,
    test: &FeatureSet,
    ood: &[(String, FeatureSet)],
    config: &TuneConfig,
    device: &Device,
    observer: &mut dyn Observer<EpochStats>,
) -> Result<TuneOutcome> {
    config.validate()?;
    let config = &config.resolved();
    check_compatible(train, test)?;
    for (_, set) in ood {
        check_compatible(train, set)?;
    }
    // A fraction keeps the full training set's classes, even a class it happens to lose.
    let train_set = train.class_fraction(config.data_fraction, config.seed)?;
    let (fit_set, val_set) = if config.val_fraction > 0.0 {
        let (a, b) = train_set.stratified_split(config.val_fraction, config.seed)?;
        (a, Some(b))
    } else {
        (train_set, None)
    };
    let (fitted, final_config, selection) = if !config.method.trains() {
        (None, config.clone(), Vec::new())
    } else if config.select {
        let val = val_set.as_ref().expect("validated: select needs a validation split");
        let (result, chosen, trials) =
            select::select(&fit_set, val, config, device, observer).await?;
        (Some(result), chosen, trials)
    } else {
        (
            Some(fit_async(&fit_set, val_set.as_ref(), config, device, observer).await?),
            config.clone(),
            Vec::new(),
        )
    };
    let head = fitted.as_ref().map(|r| &r.head);
    let accuracy_id = score(head, &fit_set, test, &final_config, device).await?;
    let mut ood_accuracy = BTreeMap::new();
    let mut spectra = Vec::new();
    let mut transformed_spectra = Vec::new();
    let evaluated = std::iter::once(("test".to_string(), test, Role::Id))
        .chain(ood.iter().map(|(n, s)| (n.clone(), s, Role::Ood)));
    for (name, set, role) in evaluated {
        if role == Role::Ood {
            ood_accuracy
                .insert(name.clone(), score(head, &fit_set, set, &final_config, device).await?);
        }
        let before =
            spectrum::measure_async(set, Preprocess::Paper, GramPrecision::Auto, device).await?;
        let after = match head.filter(|h| h.transform.is_some()) {
            Some(head) => {
                let transformed = transform_features_async(head, set, device).await?;
                let after = spectrum::measure_async(
                    &transformed,
                    Preprocess::Paper,
                    GramPrecision::Auto,
                    device,
                )
                .await?;
                transformed_spectra.push(after.clone());
                after
            }
            None => before.clone(),
        };
        spectra.push(SpectrumChange {
            set: name,
            role,
            before: (&before).into(),
            after: (&after).into(),
        });
    }
    let head_config = final_config.method.trains().then(|| {
        FeatureHeadConfig::new(train.d(), train.num_classes())
            .with_hidden(
                final_config.method.has_transform().then(|| final_config.hidden_mult * train.d()),
            )
            .with_scale_init(final_config.residual_scale_init)
    });
    let (head, best_epoch, history) = match fitted {
        Some(result) => (Some(result.head), result.best_epoch, result.history),
        None => (None, None, Vec::new()),
    };
    let report = TuneReport {
        method: final_config.method,
        accuracy: accuracy_id,
        ood: ood_accuracy,
        seconds: 0.0,
        backend: String::new(),
        seed: final_config.seed,
        train_samples: fit_set.n(),
        val_samples: val_set.as_ref().map_or(0, |v| v.n()),
        best_epoch,
        epochs_run: history.len(),
        selection,
        spectra,
        history,
        config: final_config,
    };
    Ok(TuneOutcome { report, head, head_config, transformed_spectra })
}

/// Accuracy on `set` of the trained head, or without one, of the k-NN vote over `fit_set`.
async fn score(
    head: Option<&FeatureHead>,
    fit_set: &FeatureSet,
    set: &FeatureSet,
    config: &TuneConfig,
    device: &Device,
) -> Result<f64> {
    match head {
        Some(head) => accuracy_async(head, set, device).await,
        None => knn::knn_accuracy_async(fit_set, set, config.neighbours, device).await,
    }
}

#[cfg(test)]
mod tests;
