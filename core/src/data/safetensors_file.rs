//! Feature sets as safetensors files: tensors `features` `[N, D]` (f32, f64, f16 or bf16) and
//! `labels` `[N]` (i64, i32 or u8), with optional metadata `class_names` (a JSON list of strings),
//! `domain` and `num_classes`. A pretrained classifier's outputs may ride along as `logits`
//! `[N, K]` (f32), which readers of the set leave alone.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::data::FeatureSet;
use crate::error::{NmlError, Result};

const FEATURES: &str = "features";
const LABELS: &str = "labels";
const LOGITS: &str = "logits";

fn decode_floats(view: &TensorView<'_>, name: &str) -> Result<Vec<f32>> {
    let bytes = view.data();
    let values = match view.dtype() {
        Dtype::F32 => {
            bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        }
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        Dtype::F16 => {
            bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
        }
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(NmlError::format(
                name,
                format!("tensor `features` has dtype {other:?}; use F32, F64, F16 or BF16"),
            ));
        }
    };
    Ok(values)
}

fn decode_labels(view: &TensorView<'_>, name: &str) -> Result<Vec<i64>> {
    let bytes = view.data();
    let values = match view.dtype() {
        Dtype::I64 => bytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        Dtype::I32 => bytes
            .chunks_exact(4)
            .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        Dtype::U8 => bytes.iter().map(|&b| i64::from(b)).collect(),
        other => {
            return Err(NmlError::format(
                name,
                format!("tensor `labels` has dtype {other:?}; use I64, I32 or U8"),
            ));
        }
    };
    Ok(values)
}

/// Reads a feature set from safetensors bytes; `name` is used in messages and as the set's name.
pub fn read_feature_set(bytes: &[u8], name: &str) -> Result<FeatureSet> {
    let tensors = SafeTensors::deserialize(bytes)
        .map_err(|e| NmlError::format(name, format!("not a valid safetensors file: {e}")))?;
    let features = tensors.tensor(FEATURES).map_err(|_| {
        NmlError::format(name, format!("no tensor named `features` (found: {:?})", tensors.names()))
    })?;
    let labels = tensors.tensor(LABELS).map_err(|_| {
        NmlError::format(name, format!("no tensor named `labels` (found: {:?})", tensors.names()))
    })?;
    let &[n, d] = features.shape() else {
        return Err(NmlError::format(
            name,
            format!("tensor `features` must be 2-D [N, D], found shape {:?}", features.shape()),
        ));
    };
    if labels.shape() != [n] {
        return Err(NmlError::format(
            name,
            format!("tensor `labels` has shape {:?}; expected [{n}]", labels.shape()),
        ));
    }
    let feature_values = decode_floats(&features, name)?;
    let label_values = decode_labels(&labels, name)?;
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| NmlError::format(name, format!("unreadable metadata: {e}")))?;
    let meta = metadata.metadata().clone().unwrap_or_default();
    let num_classes = match meta.get("num_classes") {
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            NmlError::format(name, format!("metadata num_classes {v:?} is not a count"))
        })?),
        None => None,
    };
    let class_names: Vec<String> = match meta.get("class_names") {
        Some(v) => serde_json::from_str(v).map_err(|e| {
            NmlError::format(
                name,
                format!("metadata class_names is not a JSON list of strings: {e}"),
            )
        })?,
        None => Vec::new(),
    };
    let num_classes = num_classes.or((!class_names.is_empty()).then_some(class_names.len()));
    FeatureSet::new(name, feature_values, d, label_values, num_classes)?
        .with_class_names(class_names)
        .map(|set| set.with_domain(meta.get("domain").cloned()))
}

/// The number type features are written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum FeatureDtype {
    #[default]
    F32,
    /// Half the size; about three significant digits, and values beyond 65504 become infinite
    /// (refused).
    F16,
}

/// Serialises a feature set (features as `dtype`, i64 labels, metadata) to safetensors bytes,
/// with `logits` (`[N, K]` row-major, K given, f32) as a third tensor when there are some.
pub fn write_feature_set(
    set: &FeatureSet,
    logits: Option<(&[f32], usize)>,
    dtype: FeatureDtype,
) -> Result<Vec<u8>> {
    let feature_bytes: Vec<u8> = match dtype {
        FeatureDtype::F32 => set.features().iter().flat_map(|v| v.to_le_bytes()).collect(),
        FeatureDtype::F16 => {
            if let Some(i) =
                set.features().iter().position(|v| !half::f16::from_f32(*v).is_finite())
            {
                return Err(NmlError::format(
                    set.name(),
                    format!("feature {} at index {i} does not fit in f16", set.features()[i]),
                ));
            }
            set.features().iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect()
        }
    };
    let feature_dtype = match dtype {
        FeatureDtype::F32 => Dtype::F32,
        FeatureDtype::F16 => Dtype::F16,
    };
    let label_bytes: Vec<u8> =
        set.labels().iter().flat_map(|&l| i64::from(l).to_le_bytes()).collect();
    let logit_bytes: Vec<u8> =
        logits.iter().flat_map(|(values, _)| values.iter().flat_map(|v| v.to_le_bytes())).collect();
    let mut views = vec![
        (
            FEATURES,
            TensorView::new(feature_dtype, vec![set.n(), set.d()], &feature_bytes)
                .expect("sizes agree"),
        ),
        (LABELS, TensorView::new(Dtype::I64, vec![set.n()], &label_bytes).expect("sizes agree")),
    ];
    if let Some((values, classes)) = logits {
        let view =
            TensorView::new(Dtype::F32, vec![set.n(), classes], &logit_bytes).map_err(|_| {
                NmlError::format(
                    set.name(),
                    format!("{} logits are not {} rows of {classes}", values.len(), set.n()),
                )
            })?;
        views.push((LOGITS, view));
    }
    let mut meta = HashMap::new();
    meta.insert("num_classes".to_string(), set.num_classes().to_string());
    if !set.class_names().is_empty() {
        meta.insert(
            "class_names".to_string(),
            serde_json::to_string(set.class_names()).expect("strings serialise"),
        );
    }
    if let Some(domain) = set.domain() {
        meta.insert("domain".to_string(), domain.to_string());
    }
    safetensors::serialize(views, Some(meta))
        .map_err(|e| NmlError::format(set.name(), format!("cannot serialise: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FeatureSet {
        FeatureSet::new("s", vec![0.5, 1.0, -2.0, 3.0, 4.0, 5.5], 2, vec![0, 2, 1], None)
            .unwrap()
            .with_class_names(vec!["zero".into(), "one".into(), "two".into()])
            .unwrap()
            .with_domain(Some("mnist".into()))
    }

    /// Half-precision files hold the same set at half the size, values within f16's rounding;
    /// a value f16 cannot hold is refused rather than written as infinity.
    #[test]
    fn f16_files_are_half_the_size_and_round_to_f16() {
        let set = sample();
        let full = write_feature_set(&set, None, FeatureDtype::F32).unwrap();
        let half = write_feature_set(&set, None, FeatureDtype::F16).unwrap();
        let back = read_feature_set(&half, "h").unwrap();
        assert_eq!(back.features(), set.features(), "these values are exact in f16");
        assert_eq!((back.labels(), back.class_names()), (set.labels(), set.class_names()));
        assert_eq!(full.len() - half.len(), set.features().len() * 2);
        let third = FeatureSet::new("t", vec![1.0 / 3.0, 7e4], 1, vec![0, 0], None).unwrap();
        let err = write_feature_set(&third, None, FeatureDtype::F16).unwrap_err().to_string();
        assert!(err.contains("70000 at index 1 does not fit in f16"), "{err}");
        let third = FeatureSet::new("t", vec![1.0 / 3.0, 2.0], 1, vec![0, 0], None).unwrap();
        let back =
            read_feature_set(&write_feature_set(&third, None, FeatureDtype::F16).unwrap(), "t")
                .unwrap();
        assert!((back.features()[0] - 1.0 / 3.0).abs() < 1e-3 && back.features()[0] != 1.0 / 3.0);
    }

    #[test]
    fn round_trip_keeps_everything() {
        let set = sample();
        let back =
            read_feature_set(&write_feature_set(&set, None, FeatureDtype::F32).unwrap(), "s")
                .unwrap();
        assert_eq!(back, set);
    }

    fn raw(
        features: (Dtype, Vec<usize>, Vec<u8>),
        labels: (Dtype, Vec<usize>, Vec<u8>),
    ) -> Vec<u8> {
        let views = vec![
            (FEATURES, TensorView::new(features.0, features.1, &features.2).unwrap()),
            (LABELS, TensorView::new(labels.0, labels.1, &labels.2).unwrap()),
        ];
        safetensors::serialize(views, None).unwrap()
    }

    #[test]
    fn reads_other_dtypes() {
        let f16: Vec<u8> =
            [1.5f32, -2.0].iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
        let bytes = raw((Dtype::F16, vec![1, 2], f16), (Dtype::U8, vec![1], vec![3]));
        let set = read_feature_set(&bytes, "h").unwrap();
        assert_eq!(
            (set.features(), set.labels(), set.num_classes()),
            (&[1.5, -2.0][..], &[3][..], 4)
        );
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let f32s: Vec<u8> = [1.0f32, f32::INFINITY].iter().flat_map(|v| v.to_le_bytes()).collect();
        let i64s: Vec<u8> = [0i64].iter().flat_map(|v| v.to_le_bytes()).collect();
        let cases = [
            (b"garbage".to_vec(), "not a valid safetensors"),
            (
                raw((Dtype::F32, vec![1, 2], f32s.clone()), (Dtype::I64, vec![1], i64s.clone())),
                "non-finite",
            ),
            (
                raw((Dtype::F32, vec![2], f32s.clone()), (Dtype::I64, vec![1], i64s.clone())),
                "must be 2-D",
            ),
            (
                raw((Dtype::F32, vec![2, 1], f32s.clone()), (Dtype::I64, vec![1], i64s.clone())),
                "expected [2]",
            ),
            (
                raw((Dtype::I32, vec![1, 2], f32s.clone()), (Dtype::I64, vec![1], i64s.clone())),
                "dtype I32",
            ),
            (
                raw((Dtype::F32, vec![1, 2], f32s.clone()), (Dtype::F32, vec![2], f32s.clone())),
                "shape [2]",
            ),
        ];
        for (bytes, expected) in cases {
            let err = read_feature_set(&bytes, "bad.safetensors").unwrap_err().to_string();
            assert!(
                err.starts_with("bad.safetensors: ") && err.contains(expected),
                "{expected}: {err}"
            );
        }
    }
}
