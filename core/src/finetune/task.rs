//! One fine-tuning run on an image task, end to end: train on the task's training images, then
//! score the in-domain test set and every out-of-domain set (the image-task `nml tune`).

use std::collections::BTreeMap;
use web_time::Instant;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::{
    FinetuneConfig, FinetuneEpoch, FinetuneMethod, Finetuner, ParamCount, WisePoint, accuracy,
    count_params, finetune, prepare, probe_head, sweep_alphas,
};
use crate::data::ImageSet;
use crate::error::{NmlError, Result};
use crate::models::{Encoder, InputTransform};
use crate::train::Observer;

/// Everything a fine-tuning run reports. `backend` is filled in by the caller, which owns the
/// device description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinetuneReport {
    pub method: FinetuneMethod,
    /// Accuracy on the in-domain test set.
    pub accuracy: f64,
    /// Accuracy on each out-of-domain set, by name.
    pub ood: BTreeMap<String, f64>,
    /// Parameters that trained (adapters and head for LoRA) and all of them.
    pub params: ParamCount,
    pub config: FinetuneConfig,
    pub image_size: usize,
    pub train_samples: usize,
    /// Training time only; `seconds` adds the evaluation.
    pub train_seconds: f64,
    pub seconds: f64,
    pub backend: String,
    pub history: Vec<FinetuneEpoch>,
    /// WiSE-FT's scores, one per `config.wise_alphas`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wise: Vec<WisePoint>,
}

/// A finished run: the model (adapters not merged, inference mode) and its report.
pub struct FinetuneOutcome {
    pub model: Finetuner,
    pub report: FinetuneReport,
}

fn check_labels(set: &ImageSet, num_classes: usize, train: &str) -> Result<()> {
    match set.labels().iter().position(|&l| l as usize >= num_classes) {
        Some(i) => Err(NmlError::format(
            set.name(),
            format!(
                "label {} at index {i} is not one of the {num_classes} classes of {train}",
                set.labels()[i]
            ),
        )),
        None => Ok(()),
    }
}

/// Fine-tunes `encoder` (fed as `input` says) on `train` by `config.method` and scores
/// the result on `test` and every `ood` set. `device` is the plain compute device; training
/// runs on its autodiff counterpart.
#[allow(clippy::too_many_arguments)]
pub fn run(
    encoder: Encoder,
    input: &InputTransform,
    train: &ImageSet,
    test: &ImageSet,
    ood: &[(String, ImageSet)],
    config: &FinetuneConfig,
    device: &Device,
    observer: &mut dyn Observer<FinetuneEpoch>,
) -> Result<FinetuneOutcome> {
    let started = Instant::now();
    let num_classes = train.num_classes();
    check_labels(test, num_classes, train.name())?;
    for (_, set) in ood {
        check_labels(set, num_classes, train.name())?;
    }
    // WiSE-FT's pre-trained end: the encoder as it comes, with a linear probe on its features.
    let pretrained = if config.wise_alphas.is_empty() {
        None
    } else {
        let features = encoder.extract(train, input, train.name(), device)?;
        let head = probe_head(&features, config.seed, device)?;
        Some(Finetuner { encoder: encoder.clone(), head })
    };
    let autodiff = device.clone().autodiff();
    let model = prepare(encoder, num_classes, config, &autodiff)?;
    let params = count_params(&model);
    let (model, history) = finetune(model, train, input, config, &autodiff, observer)?;
    let train_seconds = started.elapsed().as_secs_f64();
    // The trained model is in inference mode: it scores on the plain device, with no graph.
    let score = |model: &Finetuner| -> Result<(f64, BTreeMap<String, f64>)> {
        let ood = ood
            .iter()
            .map(|(name, set)| Ok((name.clone(), accuracy(model, set, input, device)?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        Ok((accuracy(model, test, input, device)?, ood))
    };
    let (accuracy_id, ood) = score(&model)?;
    let wise = match &pretrained {
        Some(start) => sweep_alphas(start, &model.clone().merged(), &config.wise_alphas, score)?,
        None => Vec::new(),
    };
    let report = FinetuneReport {
        method: config.method,
        accuracy: accuracy_id,
        ood,
        params,
        config: config.clone(),
        image_size: input.image_size,
        train_samples: train.n(),
        train_seconds,
        seconds: started.elapsed().as_secs_f64(),
        backend: String::new(),
        history,
        wise,
    };
    Ok(FinetuneOutcome { model, report })
}
