//! Saving a trained head as safetensors (weights plus its shape and config as metadata) and
//! loading it back for prediction.

use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use safetensors::SafeTensors;

use super::config::TuneConfig;
use super::head::{FeatureHead, FeatureHeadConfig};
use crate::error::{NmlError, Result};

const SHAPE_KEY: &str = "nml.head";
const CONFIG_KEY: &str = "nml.tune_config";

#[derive(serde::Serialize, serde::Deserialize)]
struct HeadShape {
    d: usize,
    num_classes: usize,
    hidden: Option<usize>,
}

/// Serialises a head and the config that trained it.
pub fn head_to_bytes(head: &FeatureHead, shape: &FeatureHeadConfig, config: &TuneConfig) -> Result<Vec<u8>> {
    let meta = HeadShape {
        d: shape.d,
        num_classes: shape.num_classes,
        hidden: shape.hidden,
    };
    let mut store = SafetensorsStore::from_bytes(None)
        .metadata(SHAPE_KEY, serde_json::to_string(&meta).expect("plain struct"))
        .metadata(CONFIG_KEY, serde_json::to_string(config).expect("plain struct"));
    head.save_into(&mut store)
        .map_err(|e| NmlError::Invalid(format!("cannot serialise head: {e}")))?;
    store
        .get_bytes()
        .map_err(|e| NmlError::Invalid(format!("cannot serialise head: {e}")))
}

/// Reads a head written by [`head_to_bytes`]; `name` is used in messages.
pub fn head_from_bytes(bytes: &[u8], name: &str, device: &Device) -> Result<(FeatureHead, FeatureHeadConfig, TuneConfig)> {
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| NmlError::format(name, format!("not a valid safetensors file: {e}")))?;
    let meta = metadata.metadata().clone().unwrap_or_default();
    let shape_json = meta
        .get(SHAPE_KEY)
        .ok_or_else(|| NmlError::format(name, "not an nml head (no `nml.head` metadata)"))?;
    let shape: HeadShape = serde_json::from_str(shape_json)
        .map_err(|e| NmlError::format(name, format!("bad `nml.head` metadata: {e}")))?;
    let config: TuneConfig = serde_json::from_str(meta.get(CONFIG_KEY).map(String::as_str).unwrap_or("null"))
        .map_err(|e| NmlError::format(name, format!("bad `nml.tune_config` metadata: {e}")))?;
    // The declared shape must account for exactly the values the file holds, so a lying header
    // cannot make us allocate more than the file's own size.
    let tensors = SafeTensors::deserialize(bytes)
        .map_err(|e| NmlError::format(name, format!("not a valid safetensors file: {e}")))?;
    let stored: usize = tensors.iter().map(|(_, t)| t.shape().iter().product::<usize>()).sum();
    let expected = shape.d.checked_mul(shape.num_classes).and_then(|w| {
        let classifier = w.checked_add(shape.num_classes)?;
        let mlp = match shape.hidden {
            // up (d*h + h), batch norm (4h), down (h*d + d), scale (d)
            Some(h) => shape.d.checked_mul(h)?.checked_mul(2)?.checked_add(h.checked_mul(5)?)?.checked_add(shape.d.checked_mul(2)?)?,
            None => 0,
        };
        classifier.checked_add(mlp)
    });
    if shape.d == 0 || shape.num_classes == 0 || expected != Some(stored) {
        return Err(NmlError::format(
            name,
            format!("declared head shape does not match the {stored} stored values"),
        ));
    }
    let head_config = FeatureHeadConfig::new(shape.d, shape.num_classes).with_hidden(shape.hidden);
    let mut head = head_config.init(0, device);
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec())).validate(true).allow_partial(false);
    let result = head
        .load_from(&mut store)
        .map_err(|e| NmlError::format(name, format!("cannot load head weights: {e}")))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(NmlError::format(
            name,
            format!("head weights do not fit: errors {:?}, missing {:?}", result.errors, result.missing),
        ));
    }
    Ok((head, head_config, config))
}
