//! A trained head applied to features: predictions, accuracy, the validation score, and the
//! transformed features.

use burn::tensor::{Device, Tensor, TensorData};

use super::head::FeatureHead;
use crate::data::FeatureSet;
use crate::error::Result;
use crate::readback::{blocking, floats, ints};

const EVAL_ROWS: usize = 8192;

/// The head's transformed features (Z) of a set, computed in chunks.
pub fn transform_features(
    head: &FeatureHead,
    set: &FeatureSet,
    device: &Device,
) -> Result<FeatureSet> {
    blocking(transform_features_async(head, set, device))
}

/// [`transform_features`] for devices that can only be read asynchronously (WebGPU in a browser).
pub async fn transform_features_async(
    head: &FeatureHead,
    set: &FeatureSet,
    device: &Device,
) -> Result<FeatureSet> {
    let (n, d) = (set.n(), set.d());
    let mut features = Vec::with_capacity(n * d);
    for start in (0..n).step_by(EVAL_ROWS) {
        let rows = EVAL_ROWS.min(n - start);
        let chunk = set.features()[start * d..(start + rows) * d].to_vec();
        let z = head.transform(Tensor::from_data(TensorData::new(chunk, [rows, d]), device));
        features.extend(floats(z).await?);
    }
    set.with_features(format!("{} (transformed)", set.name()), features, d)
}

/// Predicted class of every row of a feature matrix (row-major, `d` columns).
pub fn predict(
    head: &FeatureHead,
    features: &[f32],
    d: usize,
    device: &Device,
) -> Result<Vec<u32>> {
    blocking(predict_async(head, features, d, device))
}

/// [`predict`] for devices that can only be read asynchronously (WebGPU in a browser).
pub async fn predict_async(
    head: &FeatureHead,
    features: &[f32],
    d: usize,
    device: &Device,
) -> Result<Vec<u32>> {
    let n = features.len() / d;
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(EVAL_ROWS) {
        let rows = EVAL_ROWS.min(n - start);
        let chunk = features[start * d..(start + rows) * d].to_vec();
        let (_, logits) =
            head.forward(Tensor::from_data(TensorData::new(chunk, [rows, d]), device));
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
    let predicted = predict_async(head, set.features(), set.d(), device).await?;
    let correct = predicted.iter().zip(set.labels()).filter(|(p, l)| p == l).count();
    Ok(correct as f64 / set.n() as f64)
}

/// How a head scores on a validation split: its accuracy, and its mean cross-entropy, which
/// tells apart heads that a small split scores alike (one sample can be several points).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Validation {
    pub accuracy: f64,
    pub loss: f64,
}

impl Validation {
    /// Higher accuracy wins; at equal accuracy, the lower loss.
    pub fn better_than(&self, other: &Validation) -> bool {
        self.accuracy > other.accuracy
            || (self.accuracy == other.accuracy && self.loss < other.loss)
    }
}

/// The head's [`Validation`] on `set`: one forward pass, the cross-entropy in f64 on the host.
pub async fn validation_async(
    head: &FeatureHead,
    set: &FeatureSet,
    device: &Device,
) -> Result<Validation> {
    let (n, d) = (set.n(), set.d());
    let (mut correct, mut loss) = (0usize, 0.0f64);
    for start in (0..n).step_by(EVAL_ROWS) {
        let rows = EVAL_ROWS.min(n - start);
        let chunk = set.features()[start * d..(start + rows) * d].to_vec();
        let (_, logits) =
            head.forward(Tensor::from_data(TensorData::new(chunk, [rows, d]), device));
        let classes = logits.dims()[1];
        let logits = floats(logits).await?;
        for (row, &label) in logits.chunks(classes).zip(&set.labels()[start..start + rows]) {
            let top = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let log_sum = top + row.iter().map(|&z| (z as f64 - top).exp()).sum::<f64>().ln();
            loss += log_sum - row[label as usize] as f64;
            // The first largest logit, as argmax picks it.
            let predicted = row.iter().position(|&z| z as f64 == top).unwrap_or(0);
            correct += usize::from(predicted == label as usize);
        }
    }
    Ok(Validation { accuracy: correct as f64 / n as f64, loss: loss / n as f64 })
}
