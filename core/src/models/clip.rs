//! Image-text contrastive pre-training (CLIP-style) on captions with controlled noise: an image
//! tower (any [`Encoder`]) and a small text tower map each pair into one space, and a symmetric
//! InfoNCE loss with a learnable temperature pulls matching pairs together. Caption noise swaps
//! the captions of a fraction of pairs (the core's `swap_captions`).

use std::collections::BTreeMap;

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Linear};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::error::{NmlError, Result};
use crate::models::{Encoder, HostInit, stable_param_ids};
use crate::ops::l2_normalize_rows;

/// Words of a caption: lowercased runs of letters and digits.
fn words(caption: &str) -> impl Iterator<Item = String> + '_ {
    caption.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

/// The words of a caption collection, sorted; a word's id is its position plus one (0 pads).
#[derive(Clone, Debug, PartialEq)]
pub struct Vocabulary {
    index: BTreeMap<String, i64>,
}

impl Vocabulary {
    pub fn build(captions: &[String]) -> Self {
        let mut all: Vec<String> = captions.iter().flat_map(|c| words(c)).collect();
        all.sort();
        all.dedup();
        Self::from_words(all)
    }

    pub fn from_words(words: Vec<String>) -> Self {
        Self { index: words.into_iter().enumerate().map(|(i, w)| (w, i as i64 + 1)).collect() }
    }

    pub fn words(&self) -> Vec<String> {
        let mut by_id: Vec<(&String, &i64)> = self.index.iter().collect();
        by_id.sort_by_key(|(_, id)| **id);
        by_id.into_iter().map(|(w, _)| w.clone()).collect()
    }

    /// Number of ids, padding included.
    pub fn size(&self) -> usize {
        self.index.len() + 1
    }

    /// The first `max_words` known words of `caption` as ids, padded with 0 to `max_words`.
    pub fn encode(&self, caption: &str, max_words: usize) -> Vec<i64> {
        let mut ids: Vec<i64> = words(caption).filter_map(|w| self.index.get(&w).copied()).take(max_words).collect();
        ids.resize(max_words, 0);
        ids
    }
}

/// One caption per image: a template (chosen per image from `seed`) with `{}` replaced by the
/// image's class name (`class_names[label]`, or the label itself when there are no names).
pub fn class_captions(labels: &[u32], templates: &[String], class_names: &[String], seed: u64) -> Result<Vec<String>> {
    if templates.is_empty() {
        return Err(NmlError::Invalid("contrastive pre-training needs at least one caption template".into()));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc1a9);
    labels
        .iter()
        .enumerate()
        .map(|(i, &label)| {
            let name = match class_names.get(label as usize) {
                Some(name) => name.clone(),
                None if class_names.is_empty() => label.to_string(),
                None => return Err(NmlError::Invalid(format!("image {i} has label {label} but only {} class names are given", class_names.len()))),
            };
            let template = &templates[rng.random_range(0..templates.len())];
            Ok(template.replace("{}", &name))
        })
        .collect()
}

/// Mean of the caption's word embeddings (padding excluded), projected to the shared space.
#[derive(Module, Debug)]
pub struct TextTower {
    pub embedding: Embedding,
    pub projection: Linear,
}

impl TextTower {
    /// `tokens`: `[B, L]` word ids, 0 for padding.
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<2> {
        let [b, l] = tokens.dims();
        let mask = tokens.clone().greater_elem(0).float().reshape([b, l, 1]);
        let summed = (self.embedding.forward(tokens) * mask.clone()).sum_dim(1);
        let [_, _, e] = summed.dims();
        let counts = mask.sum_dim(1).clamp_min(1.0);
        self.projection.forward((summed / counts).reshape([b, e]))
    }
}

/// CLIP-style model: image tower + projection, text tower, learnable temperature.
#[derive(Module, Debug)]
pub struct ContrastiveModel {
    pub image: Encoder,
    pub image_projection: Linear,
    pub text: TextTower,
    /// log of the logit scale, initialised to ln(1 / 0.07) as in CLIP.
    pub log_scale: Param<Tensor<1>>,
}

/// CLIP caps the logit scale at 100.
const MAX_LOG_SCALE: f32 = 4.605_17;

impl ContrastiveModel {
    pub fn new(image: Encoder, image_dim: usize, embed_dim: usize, vocabulary: usize, seed: u64, device: &Device) -> Self {
        let mut init = HostInit::new(seed ^ 0x7e47);
        let mut embedding = EmbeddingConfig::new(vocabulary, embed_dim).init(device);
        embedding.weight = Param::from_tensor(init.tensor([vocabulary, embed_dim], 3f32.sqrt(), device));
        stable_param_ids(Self {
            image,
            image_projection: init.linear(image_dim, embed_dim, device),
            text: TextTower { embedding, projection: init.linear(embed_dim, embed_dim, device) },
            log_scale: Param::from_tensor(Tensor::from_data(TensorData::new(vec![(1.0f32 / 0.07).ln()], [1]), device)),
        })
    }

    /// Symmetric InfoNCE over the batch (pair i matches caption i), and how many images
    /// retrieved their own caption.
    pub fn loss(&self, images: Tensor<4>, tokens: Tensor<2, Int>) -> (Tensor<1>, Tensor<1, Int>) {
        let (loss, logits) = self.loss_and_logits(images, tokens);
        let [b, _] = logits.dims();
        let targets = Tensor::<1, Int>::arange(0..b as i64, &logits.device());
        let correct = logits.argmax(1).reshape([b]).equal(targets).int().sum();
        (loss, correct)
    }

    /// Symmetric InfoNCE over the batch and the `[B, B]` image-to-caption logits it came from.
    pub fn loss_and_logits(&self, images: Tensor<4>, tokens: Tensor<2, Int>) -> (Tensor<1>, Tensor<2>) {
        let zi = l2_normalize_rows(self.image_projection.forward(self.image.embed(images)));
        let zt = l2_normalize_rows(self.text.forward(tokens));
        let [b, _] = zi.dims();
        let scale = self.log_scale.val().clamp_max(MAX_LOG_SCALE).exp().reshape([1, 1]);
        let logits = zi.matmul(zt.transpose()) * scale;
        let device = logits.device();
        let targets = Tensor::<1, Int>::arange(0..b as i64, &device);
        let ce = burn::nn::loss::CrossEntropyLossConfig::new().init(&device);
        let loss = (ce.forward(logits.clone(), targets.clone()) + ce.forward(logits.clone().transpose(), targets)).div_scalar(2.0);
        (loss, logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_and_captions() {
        let captions = class_captions(&[0, 1, 1], &["a photo of {}".into(), "the {} digit".into()], &["zero".into(), "one".into()], 0).unwrap();
        assert!(captions[0].contains("zero") && captions[1].contains("one"));
        let vocab = Vocabulary::build(&captions);
        assert_eq!(Vocabulary::from_words(vocab.words()), vocab);
        let ids = vocab.encode("ONE, zero unseen", 4);
        assert_eq!(ids.len(), 4);
        assert!(ids[0] > 0 && ids[1] > 0 && ids[2] == 0, "unknown words and padding are 0: {ids:?}");
        assert!(class_captions(&[2], &["{}".into()], &["a".into()], 0).is_err());
    }
}
