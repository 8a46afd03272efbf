use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::prelude::Config;
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Device, Tensor};

use super::init::{HostInit, stable_param_ids};
use super::vit::{check_shape, embeddings, normalised_class_state, token_sequence};
use super::{VitMlp, norm_in_f32};

/// The Vision Transformer of Dosovitskiy et al. (2021) as timm builds it (`vit_tiny_patch16_224`
/// and its siblings): a strided convolution embeds 16-pixel patches, a class token and learned
/// position embeddings (the class token's included) are added, pre-norm blocks attend with one
/// fused `qkv` projection, and the class token's final normalised state is the feature vector.
/// LayerNorm eps 1e-6 and erf GELU, as timm has them. Fields are named as timm's, so its
/// checkpoints load through [`TIMM_VIT`](super::TIMM_VIT) unchanged.
#[derive(Config, Debug, PartialEq)]
pub struct TimmVitConfig {
    /// Width of the tokens (the feature dimension): 192 (Ti), 384 (S), 768 (B).
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    pub num_classes: usize,
    #[config(default = 224)]
    pub image_size: usize,
    #[config(default = 16)]
    pub patch_size: usize,
    #[config(default = 3)]
    pub in_channels: usize,
    #[config(default = 4)]
    pub mlp_ratio: usize,
}

/// timm's `PatchEmbed`, whose convolution is `patch_embed.proj` in its checkpoints.
#[derive(Module, Debug)]
pub struct PatchEmbed {
    pub proj: Conv2d,
}

/// timm's `Attention`: one linear gives the queries, keys and values of every head (in that
/// order, each `[heads, head_dim]`), `proj` mixes the heads' outputs.
#[derive(Module, Debug)]
pub struct TimmAttention {
    pub qkv: Linear,
    pub proj: Linear,
    pub heads: usize,
}

/// `x + attn(norm1(x))`, then `x + mlp(norm2(x))`.
#[derive(Module, Debug)]
pub struct TimmBlock {
    pub norm1: LayerNorm,
    pub attn: TimmAttention,
    pub norm2: LayerNorm,
    pub mlp: VitMlp,
}

#[derive(Module, Debug)]
pub struct TimmVit {
    pub patch_embed: PatchEmbed,
    pub cls_token: Param<Tensor<3>>,
    pub pos_embed: Param<Tensor<3>>,
    pub blocks: Vec<TimmBlock>,
    pub norm: LayerNorm,
    pub head: Linear,
}

fn layer_norm(dim: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(dim).with_epsilon(1e-6).init(device)
}

impl TimmVitConfig {
    /// ViT-Ti/16, ViT-S/16 or ViT-B/16 at 224 pixels.
    pub fn tiny(num_classes: usize) -> Self {
        Self::new(192, 12, 3, num_classes)
    }

    pub fn small(num_classes: usize) -> Self {
        Self::new(384, 12, 6, num_classes)
    }

    pub fn base(num_classes: usize) -> Self {
        Self::new(768, 12, 12, num_classes)
    }

    pub fn patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }

    /// # Panics
    /// When the patches do not tile the image or the heads do not divide the width (configs are
    /// validated before they get here).
    pub fn init(&self, seed: u64, device: &Device) -> TimmVit {
        check_shape(self.image_size, self.patch_size, self.dim, self.heads);
        let mut init = HostInit::new(seed);
        let dim = self.dim;
        let (proj, cls_token, pos_embed) =
            embeddings(&mut init, [self.in_channels, dim], self.patch_size, self.patches(), device);
        let blocks = (0..self.depth)
            .map(|_| TimmBlock {
                norm1: layer_norm(dim, device),
                attn: TimmAttention {
                    qkv: init.linear(dim, 3 * dim, device),
                    proj: init.linear(dim, dim, device),
                    heads: self.heads,
                },
                norm2: layer_norm(dim, device),
                mlp: VitMlp {
                    fc1: init.linear(dim, dim * self.mlp_ratio, device),
                    fc2: init.linear(dim * self.mlp_ratio, dim, device),
                },
            })
            .collect();
        stable_param_ids(TimmVit {
            patch_embed: PatchEmbed { proj },
            cls_token,
            pos_embed,
            blocks,
            norm: layer_norm(dim, device),
            head: init.linear(dim, self.num_classes, device),
        })
    }
}

impl TimmAttention {
    /// # Shapes
    /// `[B, N, D]` -> `[B, N, D]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, n, d] = x.dims();
        let head_dim = d / self.heads;
        // [B, N, 3 * D] -> [3, B, heads, N, head_dim], as timm reshapes and permutes it.
        let qkv =
            self.qkv.forward(x).reshape([b, n, 3, self.heads, head_dim]).permute([2, 0, 3, 1, 4]);
        let part = |k: usize| qkv.clone().narrow(0, k, 1).reshape([b, self.heads, n, head_dim]);
        let (q, k, v) = (part(0), part(1), part(2));
        let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar((head_dim as f64).powf(-0.5));
        let attended = softmax(scores, 3).matmul(v);
        self.proj.forward(attended.swap_dims(1, 2).reshape([b, n, d]))
    }
}

impl TimmBlock {
    /// # Shapes
    /// `[B, N, D]` -> `[B, N, D]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(norm_in_f32(x, |h| self.norm1.forward(h)));
        let h = norm_in_f32(x.clone(), |h| self.norm2.forward(h));
        x + self.mlp.fc2.forward(gelu(self.mlp.fc1.forward(h)))
    }
}

impl TimmVit {
    /// The class token's final normalised state.
    ///
    /// # Shapes
    /// `[B, C, H, W]` -> `[B, dim]`.
    pub fn embed(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x =
            token_sequence(&self.patch_embed.proj, &self.cls_token, &self.pos_embed, images);
        for block in &self.blocks {
            x = block.forward(x);
        }
        // timm normalises every token and keeps the class token's; per token, so the same.
        normalised_class_state(x, &self.norm)
    }

    /// # Shapes
    /// `[B, C, H, W]` -> `[B, num_classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.embed(images))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_are_timms() {
        // timm's counts for 1000 classes: vit_tiny_patch16_224 5,717,416, vit_small 22,050,664,
        // vit_base 86,567,656.
        let device = Device::flex();
        for (config, count) in [
            (TimmVitConfig::tiny(1000), 5_717_416),
            (TimmVitConfig::small(1000), 22_050_664),
            (TimmVitConfig::base(1000), 86_567_656),
        ] {
            assert_eq!(config.init(0, &device).num_params(), count, "{config:?}");
        }
    }
}
