//! A BERT-family text encoder in Hugging Face's key layout (`embeddings.word_embeddings`,
//! `encoder.layer.N.attention.self.query`, ...), so sentence-transformers checkpoints such as
//! all-MiniLM-L6-v2 load as they are, with sentence-transformers' mean pooling over the tokens
//! that are not padding and optional L2 normalisation.

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::Config;
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Bool, Device, Int, Tensor};

use super::init::{HostInit, stable_param_ids};
use super::pytorch_layout::PytorchLayout;

/// The layout of Hugging Face's `BertModel`: its `LayerNorm` modules are `layer_norm` here, and
/// its `attention.self` (a Rust keyword) is `attention.self_attention`. The pooler (a tanh
/// layer over the first token, which sentence encoders leave unused) and the position-id buffer
/// hold no weights nml uses.
pub const HF_BERT: PytorchLayout = PytorchLayout {
    library: "Hugging Face transformers",
    renames: &[(".LayerNorm.", ".layer_norm."), (".attention.self.", ".attention.self_attention.")],
    ignored_suffixes: &["position_ids", "pooler.dense.weight", "pooler.dense.bias"],
};

/// A BERT encoder's sizes, as a Hugging Face `config.json` gives them.
#[derive(Config, Debug, PartialEq)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[config(default = 512)]
    pub max_position_embeddings: usize,
    #[config(default = 2)]
    pub type_vocab_size: usize,
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
}

#[derive(Module, Debug)]
pub struct BertEmbeddings {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub token_type_embeddings: Embedding,
    pub layer_norm: LayerNorm,
}

#[derive(Module, Debug)]
pub struct BertSelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub heads: usize,
}

/// A dense layer, then LayerNorm over it plus the residual.
#[derive(Module, Debug)]
pub struct BertResidual {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
}

#[derive(Module, Debug)]
pub struct BertAttention {
    pub self_attention: BertSelfAttention,
    pub output: BertResidual,
}

#[derive(Module, Debug)]
pub struct BertIntermediate {
    pub dense: Linear,
}

/// One post-LN block: `x = norm(x + attention(x))`, then `x = norm(x + ffn(x))`.
#[derive(Module, Debug)]
pub struct BertLayer {
    pub attention: BertAttention,
    pub intermediate: BertIntermediate,
    pub output: BertResidual,
}

#[derive(Module, Debug)]
pub struct BertEncoder {
    pub layer: Vec<BertLayer>,
}

#[derive(Module, Debug)]
pub struct Bert {
    pub embeddings: BertEmbeddings,
    pub encoder: BertEncoder,
}

impl BertConfig {
    /// all-MiniLM-L6-v2's sizes: 6 layers of width 384, 12 heads, the uncased BERT vocabulary.
    pub fn minilm_l6() -> Self {
        Self::new(30522, 384, 6, 12, 1536)
    }

    /// Reads a Hugging Face `config.json`, parsed (its BERT fields; others are ignored);
    /// `name` names the file in errors.
    pub fn from_hf_json(value: &serde_json::Value, name: &str) -> crate::Result<Self> {
        let field = |key: &str| -> crate::Result<usize> {
            value
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .and_then(|v| usize::try_from(v).ok())
                .filter(|&v| v > 0 && v < 1 << 24)
                .ok_or_else(|| {
                    crate::NmlError::format(name, format!("`{key}` must be a positive integer"))
                })
        };
        let config = Self::new(
            field("vocab_size")?,
            field("hidden_size")?,
            field("num_hidden_layers")?,
            field("num_attention_heads")?,
            field("intermediate_size")?,
        )
        .with_max_position_embeddings(field("max_position_embeddings")?)
        .with_type_vocab_size(field("type_vocab_size")?);
        let eps = value.get("layer_norm_eps").and_then(serde_json::Value::as_f64).unwrap_or(1e-12);
        let act = value.get("hidden_act").and_then(serde_json::Value::as_str).unwrap_or("gelu");
        if act != "gelu" {
            return Err(crate::NmlError::format(
                name,
                format!("hidden_act {act:?}: nml's BERT has the erf GELU (\"gelu\") only"),
            ));
        }
        if !config.hidden_size.is_multiple_of(config.num_attention_heads) {
            return Err(crate::NmlError::format(
                name,
                format!(
                    "{} heads do not divide the width {}",
                    config.num_attention_heads, config.hidden_size
                ),
            ));
        }
        Ok(config.with_layer_norm_eps(eps))
    }

    /// An encoder of these sizes with seeded weights (embeddings `N(0, 0.02)`-like uniform,
    /// linears PyTorch's default), for training from scratch or to load weights into.
    pub fn init(&self, seed: u64, device: &Device) -> Bert {
        let mut init = HostInit::new(seed);
        let h = self.hidden_size;
        let mut embedding = |n: usize| {
            let mut e = EmbeddingConfig::new(n, h).init(device);
            // U(-a, a) with a = 0.02 * sqrt(3) has BERT's initial standard deviation 0.02.
            e.weight = Param::from_tensor(init.tensor([n, h], 0.02 * 3f32.sqrt(), device));
            e
        };
        let embeddings = BertEmbeddings {
            word_embeddings: embedding(self.vocab_size),
            position_embeddings: embedding(self.max_position_embeddings),
            token_type_embeddings: embedding(self.type_vocab_size),
            layer_norm: self.layer_norm(device),
        };
        let layer = (0..self.num_hidden_layers)
            .map(|_| BertLayer {
                attention: BertAttention {
                    self_attention: BertSelfAttention {
                        query: init.linear(h, h, device),
                        key: init.linear(h, h, device),
                        value: init.linear(h, h, device),
                        heads: self.num_attention_heads,
                    },
                    output: BertResidual {
                        dense: init.linear(h, h, device),
                        layer_norm: self.layer_norm(device),
                    },
                },
                intermediate: BertIntermediate {
                    dense: init.linear(h, self.intermediate_size, device),
                },
                output: BertResidual {
                    dense: init.linear(self.intermediate_size, h, device),
                    layer_norm: self.layer_norm(device),
                },
            })
            .collect();
        stable_param_ids(Bert { embeddings, encoder: BertEncoder { layer } })
    }

    fn layer_norm(&self, device: &Device) -> LayerNorm {
        LayerNormConfig::new(self.hidden_size).with_epsilon(self.layer_norm_eps).init(device)
    }
}

impl BertSelfAttention {
    /// Multi-head attention in which no query attends to a padding key.
    ///
    /// # Shapes
    /// `x` `[B, T, H]`, `padding` `[B, T]` (true at padding) -> `[B, T, H]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [b, t, h] = x.dims();
        let head_dim = h / self.heads;
        let split = |y: Tensor<3>| y.reshape([b, t, self.heads, head_dim]).swap_dims(1, 2);
        let (q, k, v) = (
            split(self.query.forward(x.clone())),
            split(self.key.forward(x.clone())),
            split(self.value.forward(x)),
        );
        let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar((head_dim as f64).powf(-0.5));
        // As Hugging Face does it: the dtype's most negative value added at padding keys, so
        // their weights are zero after the softmax (a row of only padding stays finite).
        let padding = padding.reshape([b, 1, 1, t]).expand([b, self.heads, t, t]);
        let scores = scores.mask_fill(padding, f32::MIN);
        softmax(scores, 3).matmul(v).swap_dims(1, 2).reshape([b, t, h])
    }
}

impl BertResidual {
    /// `norm(residual + dense(x))`.
    ///
    /// # Shapes
    /// `x` `[B, T, I]`, `residual` `[B, T, H]` -> `[B, T, H]`.
    pub fn forward(&self, x: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        self.layer_norm.forward(self.dense.forward(x) + residual)
    }
}

impl BertLayer {
    /// # Shapes
    /// `x` `[B, T, H]`, `padding` `[B, T]` -> `[B, T, H]`.
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let attended = self.attention.self_attention.forward(x.clone(), padding);
        let x = self.attention.output.forward(attended, x);
        let inner = gelu(self.intermediate.dense.forward(x.clone()));
        self.output.forward(inner, x)
    }
}

impl Bert {
    /// The last layer's token states.
    ///
    /// # Shapes
    /// `ids`, `type_ids` `[B, T]`, `mask` `[B, T]` (1 at tokens, 0 at padding) -> `[B, T, H]`.
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        type_ids: Tensor<2, Int>,
        mask: Tensor<2, Int>,
    ) -> Tensor<3> {
        let [b, t] = ids.dims();
        let positions =
            Tensor::<1, Int>::arange(0..t as i64, &ids.device()).reshape([1, t]).expand([b, t]);
        let e = &self.embeddings;
        let x = e.word_embeddings.forward(ids)
            + e.token_type_embeddings.forward(type_ids)
            + e.position_embeddings.forward(positions);
        let mut x = e.layer_norm.forward(x);
        let padding = mask.equal_elem(0);
        for layer in &self.encoder.layer {
            x = layer.forward(x, padding.clone());
        }
        x
    }

    /// sentence-transformers' mean pooling: the mean of the token states where `mask` is 1,
    /// then, with `normalize`, scaled to unit length.
    ///
    /// # Shapes
    /// `ids`, `type_ids`, `mask` `[B, T]` -> `[B, H]`.
    pub fn embed(
        &self,
        ids: Tensor<2, Int>,
        type_ids: Tensor<2, Int>,
        mask: Tensor<2, Int>,
        normalize: bool,
    ) -> Tensor<2> {
        let [b, t] = mask.dims();
        let states = self.forward(ids, type_ids, mask.clone());
        let weights = mask.float().reshape([b, t, 1]);
        let h = states.dims()[2];
        let summed = (states * weights.clone()).sum_dim(1).reshape([b, h]);
        // sentence-transformers clamps the token count at 1e-9.
        let counts = weights.sum_dim(1).reshape([b, 1]).clamp_min(1e-9);
        let mean = summed / counts;
        if !normalize {
            return mean;
        }
        // torch.nn.functional.normalize: x / max(|x|, 1e-12).
        let norm = mean.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
        mean / norm
    }

    pub fn hidden_size(&self) -> usize {
        self.embeddings.layer_norm.gamma.dims()[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// all-MiniLM-L6-v2's checkpoint holds 22,713,216 weights, of which nml leaves out the
    /// pooler's 147,840 (and its 512 position ids are a buffer, not weights).
    #[test]
    fn minilm_sizes_match_the_checkpoint() {
        let model = BertConfig::minilm_l6().init(0, &Device::flex());
        assert_eq!(model.num_params(), 22_713_216 - 147_840);
        assert_eq!(model.hidden_size(), 384);
    }

    /// Padding changes nothing: a text alone and the same text padded in a batch beside a
    /// longer one give the same embedding, of unit length.
    #[test]
    fn padding_is_masked_out() {
        let device = Device::flex();
        let config = BertConfig::new(50, 16, 2, 4, 32).with_max_position_embeddings(16);
        let model = config.init(3, &device);
        let ints = |v: Vec<i64>, shape: [usize; 2]| {
            Tensor::<2, Int>::from_data(TensorData::new(v, shape), &device)
        };
        let alone = model.embed(
            ints(vec![1, 7, 9, 2], [1, 4]),
            ints(vec![0; 4], [1, 4]),
            ints(vec![1; 4], [1, 4]),
            true,
        );
        let batch = model.embed(
            ints(vec![1, 7, 9, 2, 0, 0, 1, 5, 5, 5, 6, 2], [2, 6]),
            ints(vec![0; 12], [2, 6]),
            ints(vec![1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1], [2, 6]),
            true,
        );
        let alone: Vec<f32> = alone.into_data().try_to_vec::<f32>().unwrap();
        let batch: Vec<f32> = batch.into_data().try_to_vec::<f32>().unwrap();
        for (a, b) in alone.iter().zip(&batch[..16]) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let norm: f32 = alone.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }
}
