//! A BERT encoder with a linear head over its mean-pooled tokens: what supervised text
//! pre-training on noisy labels and the text tasks' LoRA and full fine-tuning train.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};

use super::HostInit;
use super::bert::Bert;
use crate::data::TokenBatch;

/// See the module documentation.
#[derive(Module, Debug)]
pub struct TextClassifier {
    pub encoder: Bert,
    pub head: Linear,
}

impl TextClassifier {
    /// `encoder` with a new head for `num_classes`, seeded by `seed`.
    pub fn new(encoder: Bert, num_classes: usize, seed: u64, device: &Device) -> Self {
        let head = HostInit::new(seed ^ 0x7e47).linear(encoder.hidden_size(), num_classes, device);
        Self { encoder, head }
    }

    /// The pooled features (normalised to unit length with `normalize`, as the features
    /// downstream tasks see) and the class logits over them.
    ///
    /// # Shapes
    /// `batch` of `B` texts -> `[B, H]`, `[B, classes]`.
    pub fn forward(&self, batch: &TokenBatch, normalize: bool) -> (Tensor<2>, Tensor<2>) {
        let device = self.head.weight.val().device();
        let [ids, type_ids, mask] = batch.tensors(&device);
        let features = self.encoder.embed(ids, type_ids, mask, normalize);
        let logits = self.head.forward(features.clone());
        (features, logits)
    }
}
