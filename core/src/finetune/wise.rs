//! WiSE-FT (Wortsman et al., *Robust fine-tuning of zero-shot models*, CVPR 2022): the
//! fine-tuned weights interpolated with the pre-trained ones, `θ(α) = (1 − α)·θ₀ + α·θ₁`, as
//! the authors' `wise_ft.py` does, and each `α` scored in and out of domain. The pre-trained
//! end's head is a linear probe on the frozen encoder's features (nml's encoders have no
//! zero-shot head), so `α = 0` is that probe and `α = 1` the fine-tuned model.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::FeatureSet;
use crate::error::{NmlError, Result};
use crate::tune::{self, Method, TuneConfig};

/// One mixing weight's scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WisePoint {
    /// The fine-tuned model's share: 0 is the pre-trained encoder with its linear probe, 1 the
    /// fine-tuned model.
    pub alpha: f64,
    pub accuracy: f64,
    pub ood: BTreeMap<String, f64>,
}

/// Checks mixing weights as a user gives them: each in `[0, 1]`, none twice.
pub fn validate_alphas(alphas: &[f64]) -> Result<()> {
    for (i, &a) in alphas.iter().enumerate() {
        if !(0.0..=1.0).contains(&a) {
            return Err(NmlError::Invalid(format!("WiSE-FT alpha must be in [0, 1], got {a}")));
        }
        if alphas[..i].contains(&a) {
            return Err(NmlError::Invalid(format!("WiSE-FT alpha {a} is given twice")));
        }
    }
    Ok(())
}

/// The linear probe the pre-trained end of the interpolation carries: trained on the frozen
/// encoder's `features` by the linear probe's default recipe at `seed`.
pub fn probe_head(features: &FeatureSet, seed: u64, device: &Device) -> Result<Linear> {
    let config = TuneConfig { seed, ..TuneConfig::for_method(Method::Lp) };
    Ok(tune::fit(features, None, &config, device, &mut ())?.head.classifier)
}

/// Every float tensor of a module, flattened, in visiting order, with its shape.
struct Collect(Vec<(Vec<usize>, Tensor<1>)>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        let dims = value.dims().to_vec();
        let n: usize = dims.iter().product();
        self.0.push((dims, value.reshape([n])));
    }
}

/// Replaces each float tensor `t` by `(1 − α)·start + α·t`, `start` taken in visiting order.
struct Mix {
    start: std::vec::IntoIter<(Vec<usize>, Tensor<1>)>,
    alpha: f64,
    index: usize,
    mismatch: Option<String>,
}

impl ModuleMapper for Mix {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, end, mapper) = param.consume();
        let index = self.index;
        self.index += 1;
        let dims = end.dims();
        let mixed = match self.start.next() {
            Some((start_dims, start)) if start_dims == dims => {
                let start = start.to_device(&end.device()).reshape(dims);
                start.mul_scalar(1.0 - self.alpha) + end.mul_scalar(self.alpha)
            }
            found => {
                self.mismatch.get_or_insert_with(|| match found {
                    Some((start_dims, _)) => format!(
                        "tensor {index} is {dims:?} after fine-tuning but {start_dims:?} before"
                    ),
                    None => format!("tensor {index} exists only after fine-tuning"),
                });
                end
            }
        };
        Param::from_mapped_value(id, mixed, mapper)
    }
}

/// `(1 − alpha)·start + alpha·end`, tensor by tensor (parameters and running statistics alike,
/// as a state dict holds them). Both must have the same structure: merge LoRA adapters into
/// `end` first.
///
/// # Examples
///
/// ```
/// use burn::nn::LinearConfig;
/// use nml_core::Device;
/// use nml_core::finetune::interpolate;
///
/// let device = Device::flex();
/// let start = LinearConfig::new(3, 2).init(&device);
/// let end = LinearConfig::new(3, 2).init(&device);
/// let half = interpolate(&start, end.clone(), 0.5)?;
/// let expected = (start.weight.val() + end.weight.val()) / 2.0;
/// let gap = (half.weight.val() - expected).abs().max().into_scalar::<f32>();
/// assert!(gap < 1e-6);
/// # Ok::<(), nml_core::NmlError>(())
/// ```
pub fn interpolate<M: Module>(start: &M, end: M, alpha: f64) -> Result<M> {
    let mut collect = Collect(Vec::new());
    start.visit(&mut collect);
    let total = collect.0.len();
    let mut mix = Mix { start: collect.0.into_iter(), alpha, index: 0, mismatch: None };
    let mixed = end.map(&mut mix);
    let mismatch = mix.mismatch.or_else(|| {
        (mix.index != total)
            .then(|| format!("{total} tensors before fine-tuning but {} after", mix.index))
    });
    match mismatch {
        Some(why) => Err(NmlError::Invalid(format!(
            "WiSE-FT needs the pre-trained and fine-tuned models to have the same tensors: {why}"
        ))),
        None => Ok(mixed),
    }
}

/// Scores of `start` (the pre-trained model) mixed into `end` at each of `alphas`, each mix
/// scored by `score` (in-domain accuracy and out-of-domain accuracies by name).
pub fn sweep_alphas<M: Module>(
    start: &M,
    end: &M,
    alphas: &[f64],
    mut score: impl FnMut(&M) -> Result<(f64, BTreeMap<String, f64>)>,
) -> Result<Vec<WisePoint>> {
    validate_alphas(alphas)?;
    alphas
        .iter()
        .map(|&alpha| {
            let (accuracy, ood) = score(&interpolate(start, end.clone(), alpha)?)?;
            Ok(WisePoint { alpha, accuracy, ood })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;

    fn weights(l: &Linear) -> Vec<f32> {
        l.weight.val().into_data().try_to_vec().unwrap()
    }

    #[test]
    fn the_ends_are_the_two_models_and_the_middle_is_their_mean() {
        let device = Device::flex();
        let start = LinearConfig::new(4, 3).init(&device);
        let end = LinearConfig::new(4, 3).init(&device);
        assert_eq!(weights(&interpolate(&start, end.clone(), 0.0).unwrap()), weights(&start));
        assert_eq!(weights(&interpolate(&start, end.clone(), 1.0).unwrap()), weights(&end));
        let quarter = interpolate(&start, end.clone(), 0.25).unwrap();
        let bias = |l: &Linear| -> Vec<f32> {
            l.bias.as_ref().unwrap().val().into_data().try_to_vec().unwrap()
        };
        for (i, m) in bias(&quarter).iter().enumerate() {
            let want = 0.75 * bias(&start)[i] + 0.25 * bias(&end)[i];
            assert!((m - want).abs() < 1e-6, "{m} {want}");
        }
    }

    #[test]
    fn different_models_are_refused() {
        let device = Device::flex();
        let start = LinearConfig::new(4, 3).init(&device);
        let wider = LinearConfig::new(5, 3).init(&device);
        let err = interpolate(&start, wider, 0.5).unwrap_err().to_string();
        assert!(err.contains("[5, 3] after fine-tuning but [4, 3] before"), "{err}");
        let no_bias = LinearConfig::new(4, 3).with_bias(false).init(&device);
        let err = interpolate(&start, no_bias, 0.5).unwrap_err().to_string();
        assert!(err.contains("2 tensors before fine-tuning but 1 after"), "{err}");
    }

    #[test]
    fn alphas_must_be_shares_given_once() {
        validate_alphas(&[0.0, 0.5, 1.0]).unwrap();
        assert!(validate_alphas(&[1.5]).unwrap_err().to_string().contains("[0, 1]"));
        assert!(validate_alphas(&[f64::NAN]).is_err());
        assert!(validate_alphas(&[0.5, 0.5]).unwrap_err().to_string().contains("twice"));
    }
}
