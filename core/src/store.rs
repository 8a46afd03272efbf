//! Modules to and from safetensors bytes (through burn-store), with string metadata beside the
//! weights: the one way heads and checkpoints are saved and loaded.

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use safetensors::SafeTensors;

use crate::error::{NmlError, Result};

/// The module's tensors, named by their paths, and `metadata` as safetensors header entries.
pub fn module_bytes<M: Module>(module: &M, metadata: &[(&str, String)]) -> Result<Vec<u8>> {
    module_bytes_matching(module, metadata, None)
}

/// As [`module_bytes`], keeping only the tensors whose path matches `pattern` (a regex).
pub fn module_bytes_matching<M: Module>(
    module: &M,
    metadata: &[(&str, String)],
    pattern: Option<&str>,
) -> Result<Vec<u8>> {
    let mut store = SafetensorsStore::from_bytes(None);
    if let Some(pattern) = pattern {
        store = store.with_regex(pattern);
    }
    for (key, value) in metadata {
        store = store.metadata(*key, value.clone());
    }
    module
        .save_into(&mut store)
        .map_err(|e| NmlError::Invalid(format!("cannot serialise the model: {e}")))?;
    store.get_bytes().map_err(|e| NmlError::Invalid(format!("cannot serialise the model: {e}")))
}

/// A header entry of a safetensors file; `name` is used in messages.
pub fn metadata_entry(bytes: &[u8], name: &str, key: &str) -> Result<Option<String>> {
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| NmlError::format(name, format!("not a valid safetensors file: {e}")))?;
    Ok(metadata.metadata().as_ref().and_then(|m| m.get(key).cloned()))
}

/// Loads weights into `module` (built with the same shape), refusing anything that does not fit:
/// a missing tensor, an unexpected one, or a wrong shape.
pub fn load_module<M: Module>(module: &mut M, bytes: &[u8], name: &str) -> Result<()> {
    let mut store =
        SafetensorsStore::from_bytes(Some(bytes.to_vec())).validate(true).allow_partial(false);
    let result = module
        .load_from(&mut store)
        .map_err(|e| NmlError::format(name, format!("cannot load the weights: {e}")))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(NmlError::format(
            name,
            format!(
                "weights do not fit the model: errors {:?}, missing {:?}",
                result.errors, result.missing
            ),
        ));
    }
    Ok(())
}
