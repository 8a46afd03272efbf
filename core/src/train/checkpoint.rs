//! A run directory: the model's weights (`model.safetensors`, with the run's metadata as a
//! JSON header entry) and the optimiser state beside it, both written atomically. The
//! optimiser file carries the epoch in its name and is written first, so the model file never
//! points at a missing or newer optimiser state. Single- and multi-device runs share it.

use std::path::{Path, PathBuf};

use burn::module::Module;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::optim::Optimize;
use crate::error::{NmlError, Result};
use crate::io::{read_file, write_atomic};

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct RunDir {
    dir: PathBuf,
    /// The safetensors header entry that holds the run's metadata.
    meta_key: &'static str,
}

impl RunDir {
    /// The model file's name inside a run directory.
    pub const MODEL_FILE: &'static str = "model.safetensors";

    pub fn new(dir: &Path, meta_key: &'static str) -> Self {
        Self { dir: dir.to_path_buf(), meta_key }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn model_path(&self) -> PathBuf {
        self.dir.join(Self::MODEL_FILE)
    }

    fn optimizer_path(&self, epoch: usize) -> PathBuf {
        self.dir.join(format!("optimizer-epoch{epoch}.bpk"))
    }

    /// The saved model's bytes and metadata, if the directory holds a model.
    pub fn saved<T: DeserializeOwned>(&self) -> Result<Option<(Vec<u8>, T)>> {
        let path = self.model_path();
        if !path.exists() {
            return Ok(None);
        }
        let bytes = read_file(&path)?;
        let meta = read_meta(&bytes, &path.display().to_string(), self.meta_key)?;
        Ok(Some((bytes, meta)))
    }

    /// Saves the model (with `meta`) and the optimiser state of a run `epochs_done` epochs in.
    pub fn save<M: Module, O: Optimize<M>>(
        &self,
        model: &M,
        optimizer: &O,
        meta: &impl Serialize,
        epochs_done: usize,
    ) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| NmlError::io(&self.dir, e))?;
        write_atomic(&self.optimizer_path(epochs_done), &optimizer.state_bytes()?)?;
        write_atomic(&self.model_path(), &model_bytes(model, self.meta_key, meta)?)?;
        if epochs_done > 1 {
            // The previous epoch's state is no longer referenced.
            let _ = std::fs::remove_file(self.optimizer_path(epochs_done - 1));
        }
        Ok(())
    }

    /// Restores the run saved here, if any, into `model` and (when it is unfinished, `done`
    /// epochs of `epochs`) into `optimizer`, and returns its metadata. A run whose metadata is
    /// not `same` as this one's is an error rather than silently overwritten.
    pub fn resume<M: Module, O: Optimize<M>, T: DeserializeOwned>(
        &self,
        model: &mut M,
        optimizer: &mut O,
        epochs: usize,
        same: impl Fn(&T) -> bool,
        done: impl Fn(&T) -> usize,
    ) -> Result<Option<T>> {
        let Some((bytes, meta)) = self.saved::<T>()? else { return Ok(None) };
        let name = self.model_path().display().to_string();
        if !same(&meta) {
            return Err(NmlError::format(
                name,
                "holds a run of another config; choose another directory or delete it",
            ));
        }
        crate::store::load_module(model, &bytes, &name)?;
        if done(&meta) < epochs {
            self.load_optimizer::<M, _>(done(&meta), optimizer)?;
        }
        Ok(Some(meta))
    }

    /// Restores the optimiser state saved `epochs_done` epochs into the run.
    pub fn load_optimizer<M, O: Optimize<M>>(
        &self,
        epochs_done: usize,
        optimizer: &mut O,
    ) -> Result<()> {
        let path = self.optimizer_path(epochs_done);
        optimizer.load_state(read_file(&path)?, &path.display().to_string())
    }
}

/// A model's weights as safetensors bytes with `meta` under `key`.
pub fn model_bytes<M: Module>(model: &M, key: &str, meta: &impl Serialize) -> Result<Vec<u8>> {
    crate::store::module_bytes(model, &[(key, serde_json::to_string(meta).expect("plain data"))])
}

/// The metadata under `key` of a model file; `name` is used in messages.
pub fn read_meta<T: DeserializeOwned>(bytes: &[u8], name: &str, key: &str) -> Result<T> {
    let json = crate::store::metadata_entry(bytes, name, key)?.ok_or_else(|| {
        NmlError::format(name, format!("not an nml checkpoint (no `{key}` metadata)"))
    })?;
    serde_json::from_str(&json)
        .map_err(|e| NmlError::format(name, format!("bad `{key}` metadata: {e}")))
}
