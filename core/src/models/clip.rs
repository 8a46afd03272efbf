//! The CLIP-style model of contrastive pre-training: an image tower (any [`Encoder`]) and a
//! small text tower map each image-caption pair into one space, where a symmetric InfoNCE loss
//! with a learnable temperature pulls matching pairs together.

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Linear};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::Encoder;
use super::init::{HostInit, stable_param_ids};
use crate::ops::l2_normalize_rows;

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
    pub fn new(
        image: Encoder,
        image_dim: usize,
        embed_dim: usize,
        vocabulary: usize,
        seed: u64,
        device: &Device,
    ) -> Self {
        let mut init = HostInit::new(seed ^ 0x7e47);
        let mut embedding = EmbeddingConfig::new(vocabulary, embed_dim).init(device);
        embedding.weight =
            Param::from_tensor(init.tensor([vocabulary, embed_dim], 3f32.sqrt(), device));
        stable_param_ids(Self {
            image,
            image_projection: init.linear(image_dim, embed_dim, device),
            text: TextTower { embedding, projection: init.linear(embed_dim, embed_dim, device) },
            log_scale: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![(1.0f32 / 0.07).ln()], [1]),
                device,
            )),
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
    pub fn loss_and_logits(
        &self,
        images: Tensor<4>,
        tokens: Tensor<2, Int>,
    ) -> (Tensor<1>, Tensor<2>) {
        let zi = l2_normalize_rows(self.image_projection.forward(self.image.embed(images)));
        let zt = l2_normalize_rows(self.text.forward(tokens));
        let [b, _] = zi.dims();
        let scale = self.log_scale.val().clamp_max(MAX_LOG_SCALE).exp().reshape([1, 1]);
        let logits = zi.matmul(zt.transpose()) * scale;
        let device = logits.device();
        let targets = Tensor::<1, Int>::arange(0..b as i64, &device);
        let ce = burn::nn::loss::CrossEntropyLossConfig::new().init(&device);
        let loss = (ce.forward(logits.clone(), targets.clone())
            + ce.forward(logits.clone().transpose(), targets))
        .div_scalar(2.0);
        (loss, logits)
    }
}
