use super::norm_in_f32;
use burn::module::{Module, Param};
use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::conv::Conv2d;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::prelude::Config;
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Tensor};

use super::init::{HostInit, stable_param_ids};

/// A small Vision Transformer: non-overlapping patches embedded by a strided convolution, a
/// class token, learned position embeddings, pre-norm transformer blocks, and the class token's
/// final (normalised) state as the feature vector.
#[derive(Config, Debug, PartialEq)]
pub struct VitConfig {
    #[config(default = 1)]
    pub in_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    /// Width of the token vectors (the feature dimension).
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    /// Hidden width of each block's MLP as a multiple of `dim`.
    #[config(default = 4)]
    pub mlp_ratio: usize,
    pub num_classes: usize,
}

/// The block's MLP, its two linears named so LoRA adapters can wrap exactly these (the paper's
/// choice for parameter-efficient tuning).
#[derive(Module, Debug)]
pub struct VitMlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

/// `x + Attention(LN(x))`, then `x + MLP(LN(x))`.
#[derive(Module, Debug)]
pub struct VitBlock {
    pub norm1: LayerNorm,
    pub attention: MultiHeadAttention,
    pub norm2: LayerNorm,
    pub mlp: VitMlp,
}

#[derive(Module, Debug)]
pub struct Vit {
    pub patch_embedding: Conv2d,
    pub class_token: Param<Tensor<3>>,
    pub position: Param<Tensor<3>>,
    pub blocks: Vec<VitBlock>,
    pub norm: LayerNorm,
    pub classifier: Linear,
}

/// # Panics
/// When the patches do not tile the image or the heads do not divide the width (configs are
/// validated before they get here).
pub(super) fn check_shape(image_size: usize, patch_size: usize, dim: usize, heads: usize) {
    assert!(
        patch_size > 0
            && image_size.is_multiple_of(patch_size)
            && heads > 0
            && dim.is_multiple_of(heads),
        "validated: patches tile the image and heads divide the width"
    );
}

/// A ViT's patch embedding (a convolution with a bias, stride = kernel = `patch`), class token
/// and position embeddings (`patches + 1` of them), drawn in that order.
pub(super) fn embeddings(
    init: &mut HostInit,
    [c_in, dim]: [usize; 2],
    patch: usize,
    patches: usize,
    device: &Device,
) -> (Conv2d, Param<Tensor<3>>, Param<Tensor<3>>) {
    let patch_embedding = init.conv2d_with_bias([c_in, dim], patch, patch, device);
    // Small uniform draws with the spread of the usual N(0, 0.02^2).
    let token_bound = 0.02 * 3f32.sqrt();
    let class_token = Param::from_tensor(init.tensor([1, 1, dim], token_bound, device));
    let position = Param::from_tensor(init.tensor([1, patches + 1, dim], token_bound, device));
    (patch_embedding, class_token, position)
}

/// The input sequence of a ViT: the patch tokens of `images` behind the class token, with the
/// position embeddings added.
///
/// # Shapes
/// `[B, C, H, W]` -> `[B, patches + 1, dim]`.
pub(super) fn token_sequence(
    patch_embedding: &Conv2d,
    class_token: &Param<Tensor<3>>,
    position: &Param<Tensor<3>>,
    images: Tensor<4>,
) -> Tensor<3> {
    let patches = patch_embedding.forward(images);
    let [b, dim, h, w] = patches.dims();
    let tokens = patches.reshape([b, dim, h * w]).swap_dims(1, 2);
    let class = class_token.val().expand([b, 1, dim]);
    Tensor::cat(vec![class, tokens], 1) + position.val()
}

/// The class token's final state, normalised: a ViT's features.
///
/// # Shapes
/// `[B, tokens, dim]` -> `[B, dim]`.
pub(super) fn normalised_class_state(x: Tensor<3>, norm: &LayerNorm) -> Tensor<2> {
    let [b, _, dim] = x.dims();
    let class_state = x.narrow(1, 0, 1).reshape([b, dim]);
    norm_in_f32(class_state, |h| norm.forward(h))
}

impl VitConfig {
    pub fn patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }

    pub fn init(&self, seed: u64, device: &Device) -> Vit {
        check_shape(self.image_size, self.patch_size, self.dim, self.heads);
        let mut init = HostInit::new(seed);
        let dim = self.dim;
        let (patch_embedding, class_token, position) =
            embeddings(&mut init, [self.in_channels, dim], self.patch_size, self.patches(), device);
        let blocks = (0..self.depth)
            .map(|_| {
                let mut attention =
                    MultiHeadAttentionConfig::new(dim, self.heads).with_dropout(0.0).init(device);
                attention.query = init.linear(dim, dim, device);
                attention.key = init.linear(dim, dim, device);
                attention.value = init.linear(dim, dim, device);
                attention.output = init.linear(dim, dim, device);
                VitBlock {
                    norm1: LayerNormConfig::new(dim).init(device),
                    attention,
                    norm2: LayerNormConfig::new(dim).init(device),
                    mlp: VitMlp {
                        fc1: init.linear(dim, dim * self.mlp_ratio, device),
                        fc2: init.linear(dim * self.mlp_ratio, dim, device),
                    },
                }
            })
            .collect();
        stable_param_ids(Vit {
            patch_embedding,
            class_token,
            position,
            blocks,
            norm: LayerNormConfig::new(dim).init(device),
            classifier: init.linear(dim, self.num_classes, device),
        })
    }
}

impl VitBlock {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let attended = self
            .attention
            .forward(MhaInput::self_attn(norm_in_f32(x.clone(), |h| self.norm1.forward(h))))
            .context;
        let x = x + attended;
        let h = self
            .mlp
            .fc2
            .forward(gelu(self.mlp.fc1.forward(norm_in_f32(x.clone(), |h| self.norm2.forward(h)))));
        x + h
    }
}

impl Vit {
    /// The feature vector of each image (`[B, C, H, W]` -> `[B, dim]`).
    pub fn embed(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x =
            token_sequence(&self.patch_embedding, &self.class_token, &self.position, images);
        for block in &self.blocks {
            x = block.forward(x);
        }
        normalised_class_state(x, &self.norm)
    }

    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.classifier.forward(self.embed(images))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn shapes_and_seeded_weights() {
        let device = Device::flex();
        let config = VitConfig::new(14, 7, 16, 2, 4, 10);
        let model = config.init(0, &device);
        let x = Tensor::<4>::from_data(
            TensorData::new(
                (0..3 * 196).map(|v| (v % 17) as f32 / 17.0).collect::<Vec<_>>(),
                [3, 1, 14, 14],
            ),
            &device,
        );
        assert_eq!(model.embed(x.clone()).dims(), [3, 16]);
        assert_eq!(model.forward(x.clone()).dims(), [3, 10]);
        assert_eq!(model.position.val().dims(), [1, 5, 16]);
        let again = config.init(0, &device);
        let (a, b) = (model.forward(x.clone()).into_data(), again.forward(x).into_data());
        assert_eq!(a, b, "same seed, same model");
    }
}
