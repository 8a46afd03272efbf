//! Mixed precision: the weights (and the optimiser's state) stay in f32, while each step runs
//! the encoder's convolutions, attention and linears on a half-precision copy of them. The copy
//! is made by differentiable casts, so the gradients land on the f32 weights. Normalisation
//! layers, the pooled features and the loss stay in f32, as in PyTorch's autocast.

use std::fmt;
use std::str::FromStr;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, Device, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{NmlError, Result};

/// The float type a training step computes in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ComputePrecision {
    #[default]
    F32,
    /// bfloat16: f32's range, so no loss scaling is needed.
    Bf16,
    /// float16: more mantissa than bf16 but a narrow range; the loss is scaled so small
    /// gradients survive (which nml does with AdamW only, whose steps ignore the scale).
    F16,
}

impl ComputePrecision {
    pub fn dtype(self) -> FloatDType {
        match self {
            Self::F32 => FloatDType::F32,
            Self::Bf16 => FloatDType::BF16,
            Self::F16 => FloatDType::F16,
        }
    }

    /// The factor the loss is multiplied by before the backward pass.
    pub fn loss_scale(self) -> f64 {
        match self {
            Self::F16 => 1024.0,
            Self::F32 | Self::Bf16 => 1.0,
        }
    }

    /// An error unless `device` does arithmetic in this precision.
    pub fn check(self, device: &Device) -> Result<()> {
        if self == Self::F32 || device.supports_dtype(self.dtype()) {
            Ok(())
        } else {
            Err(NmlError::Backend(format!(
                "this backend has no {self} arithmetic; use --precision f32"
            )))
        }
    }
}

impl FromStr for ComputePrecision {
    type Err = NmlError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            "f16" => Ok(Self::F16),
            other => {
                Err(NmlError::Invalid(format!("unknown precision {other:?}; use f32, bf16 or f16")))
            }
        }
    }
}

impl fmt::Display for ComputePrecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        })
    }
}

/// `x` in `dtype`, without an operation when it already is.
pub fn to_dtype<const D: usize>(x: Tensor<D>, dtype: DType) -> Tensor<D> {
    if x.dtype() == dtype { x } else { x.cast(FloatDType::from(dtype)) }
}

/// Runs a normalisation layer in f32 and returns to `x`'s precision.
pub fn norm_in_f32<const D: usize>(
    x: Tensor<D>,
    norm: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    let dtype = x.dtype();
    to_dtype(norm(to_dtype(x, DType::F32)), dtype)
}

/// Casts every float parameter outside batch and layer norms.
struct HalfCompute {
    dtype: FloatDType,
    norm_depth: usize,
}

fn is_norm(container_type: &str) -> bool {
    matches!(container_type, "Struct:BatchNorm" | "Struct:LayerNorm")
}

impl ModuleMapper for HalfCompute {
    fn enter_module(&mut self, _name: &str, container_type: &str) {
        self.norm_depth += usize::from(is_norm(container_type));
    }
    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.norm_depth -= usize::from(is_norm(container_type));
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.norm_depth > 0 {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, tensor.cast(self.dtype), mapper)
    }
}

/// The compute copy of a module for one training step.
pub fn compute_copy<M: Module>(module: &M, precision: ComputePrecision) -> M {
    match precision {
        ComputePrecision::F32 => module.clone(),
        half => module.clone().map(&mut HalfCompute { dtype: half.dtype(), norm_depth: 0 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Encoder, ResNetConfig};
    use burn::optim::GradientsParams;
    use burn::tensor::{Distribution, Tensor};

    #[test]
    fn the_compute_copy_is_half_outside_norms_and_gradients_reach_the_f32_weights() {
        let device = Device::flex().autodiff();
        let model = Encoder::ResNet(ResNetConfig::new(vec![4, 8], 3).init(7, &device));
        let half = compute_copy(&model, ComputePrecision::Bf16);
        let Encoder::ResNet(r) = &half else { unreachable!() };
        assert_eq!(r.stem.weight.val().dtype(), DType::BF16);
        assert_eq!(r.classifier.weight.val().dtype(), DType::BF16);
        assert_eq!(r.stem_bn.gamma.val().dtype(), DType::F32, "norms stay in f32");

        let x = Tensor::<4>::random([2, 1, 12, 12], Distribution::Default, &device);
        let logits = half.forward(x.clone());
        assert_eq!(logits.dtype(), DType::F32, "logits come back in f32");
        let grads = GradientsParams::from_grads(logits.sum().backward(), &model);
        let Encoder::ResNet(m) = &model else { unreachable!() };
        let stem_grad =
            grads.get::<4>(m.stem.weight.id).expect("a gradient for the f32 stem weight");
        assert_eq!(stem_grad.dtype(), DType::F32);

        // The same computation in f32 agrees to bf16's precision.
        let (a, b) = (
            model.forward(x.clone()).into_data().try_to_vec::<f32>().unwrap(),
            half.forward(x).into_data().try_to_vec::<f32>().unwrap(),
        );
        let worst = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        let scale = a.iter().map(|p| p.abs()).fold(0.0f32, f32::max);
        assert!(worst <= 0.05 * scale.max(1.0), "bf16 logits differ by {worst} (scale {scale})");
    }

    #[test]
    fn f32_is_the_model_itself_and_names_parse() {
        let device = Device::flex();
        let model = Encoder::ResNet(ResNetConfig::new(vec![4], 2).init(1, &device));
        let Encoder::ResNet(copy) = compute_copy(&model, ComputePrecision::F32) else {
            unreachable!()
        };
        let Encoder::ResNet(m) = &model else { unreachable!() };
        assert_eq!(copy.stem.weight.val().dtype(), DType::F32);
        assert_eq!(copy.stem.weight.id, m.stem.weight.id);
        assert_eq!("bf16".parse::<ComputePrecision>().unwrap(), ComputePrecision::Bf16);
        assert!(
            "f8".parse::<ComputePrecision>().unwrap_err().to_string().contains("f32, bf16 or f16")
        );
    }
}
