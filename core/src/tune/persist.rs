//! Saving a trained head as safetensors (weights plus its shape and config as metadata) and
//! loading it back for prediction.

use burn::tensor::Device;
use safetensors::SafeTensors;

use super::config::TuneConfig;
use super::head::{FeatureHead, FeatureHeadConfig};
use crate::error::{NmlError, Result};
use crate::store::metadata_entry;

const SHAPE_KEY: &str = "nml.head";
const CONFIG_KEY: &str = "nml.tune_config";

#[derive(serde::Serialize, serde::Deserialize)]
struct HeadShape {
    d: usize,
    num_classes: usize,
    hidden: Option<usize>,
}

/// Serialises a head and the config that trained it.
pub fn head_to_bytes(
    head: &FeatureHead,
    shape: &FeatureHeadConfig,
    config: &TuneConfig,
) -> Result<Vec<u8>> {
    let meta = HeadShape { d: shape.d, num_classes: shape.num_classes, hidden: shape.hidden };
    crate::store::module_bytes(
        head,
        &[
            (SHAPE_KEY, serde_json::to_string(&meta).expect("plain struct")),
            (CONFIG_KEY, serde_json::to_string(config).expect("plain struct")),
        ],
    )
}

/// Reads a head written by [`head_to_bytes`]; `name` is used in messages.
pub fn head_from_bytes(
    bytes: &[u8],
    name: &str,
    device: &Device,
) -> Result<(FeatureHead, FeatureHeadConfig, TuneConfig)> {
    let shape_json = metadata_entry(bytes, name, SHAPE_KEY)?
        .ok_or_else(|| NmlError::format(name, "not an nml head (no `nml.head` metadata)"))?;
    let shape: HeadShape = serde_json::from_str(&shape_json)
        .map_err(|e| NmlError::format(name, format!("bad `nml.head` metadata: {e}")))?;
    let config_json = metadata_entry(bytes, name, CONFIG_KEY)?.unwrap_or_else(|| "null".into());
    let config: TuneConfig = serde_json::from_str(&config_json)
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
            Some(h) => shape
                .d
                .checked_mul(h)?
                .checked_mul(2)?
                .checked_add(h.checked_mul(5)?)?
                .checked_add(shape.d.checked_mul(2)?)?,
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
    crate::store::load_module(&mut head, bytes, name)?;
    Ok((head, head_config, config))
}
