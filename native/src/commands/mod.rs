pub mod bench;
pub mod compare;
pub mod demo;
pub mod embed;
pub mod export;
pub mod export_model;
pub mod extract;
pub mod noise;
pub mod predict;
pub mod pretrain;
pub mod spectrum;
pub mod sweep;
pub mod tune;

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use nml_core::io::{read_file, write_atomic};
use nml_core::{NmlError, Result};

/// A downstream task's sets: training, in-domain test, and named out-of-domain sets, as specs
/// (`Splits<String>`) or loaded.
pub struct Splits<T> {
    pub train: T,
    pub test: T,
    pub ood: Vec<(String, T)>,
}

impl Splits<String> {
    /// Every set loaded by `load` (the first failure is the error).
    pub fn load<U>(&self, load: impl Fn(&str) -> Result<U>) -> Result<Splits<U>> {
        Ok(Splits {
            train: load(&self.train)?,
            test: load(&self.test)?,
            ood: self
                .ood
                .iter()
                .map(|(name, spec)| Ok((name.clone(), load(spec)?)))
                .collect::<Result<_>>()?,
        })
    }
}

/// Peak resident memory of this process so far (Linux's VmHWM), in MiB; None elsewhere.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Writes pretty JSON atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| NmlError::Invalid(format!("cannot serialise {}: {e}", path.display())))?;
    write_atomic(path, format!("{text}\n").as_bytes())
}

/// `base` with the settings of a TOML file laid over it; a key `base` does not have is an error
/// naming it, and keys in `fixed` are ignored (the command line decides them).
pub fn merge_toml<T: Serialize + DeserializeOwned>(
    base: T,
    path: &Path,
    fixed: &[&str],
) -> Result<T> {
    let name = path.display().to_string();
    let text = String::from_utf8(read_file(path)?)
        .map_err(|_| NmlError::format(&name, "not UTF-8 text"))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| NmlError::format(&name, e.to_string()))?;
    let mut merged = serde_json::to_value(&base).expect("config serialises");
    let overrides =
        serde_json::to_value(&table).map_err(|e| NmlError::format(&name, e.to_string()))?;
    for (key, value) in overrides.as_object().expect("a table is an object") {
        if fixed.contains(&key.as_str()) {
            continue;
        }
        if merged.get(key).is_none() {
            return Err(NmlError::format(&name, format!("unknown setting `{key}`")));
        }
        merged[key] = value.clone();
    }
    serde_json::from_value(merged).map_err(|e| NmlError::format(&name, e.to_string()))
}
