//! Messages between the page and its Web Worker. The page posts a JS array: the request as
//! JSON, then each feature set as safetensors bytes (train, test, then the OOD sets in the
//! order the request names them). The worker answers with JSON strings.

use nml_core::data::{FeatureSet, safetensors_file};
use nml_core::device::BackendChoice;
use nml_core::tune::{EpochStats, TuneConfig};
use nml_core::{NmlError, Result};
use serde::{Deserialize, Serialize};

use crate::analysis::{TuneJob, TuneResult};
use crate::backend::WebGpuAdapter;


#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TuneRequest {
    pub job: u32,
    pub config: TuneConfig,
    pub train_name: String,
    pub test_name: String,
    pub ood_names: Vec<String>,
    /// Where the worker runs it: `auto` (WebGPU on a hardware adapter, else the CPU), `wgpu`, `cpu`.
    #[serde(default)]
    pub backend: BackendChoice,
    /// The WebGPU adapter the page was offered (workers do not look again).
    #[serde(default)]
    pub webgpu: Option<WebGpuAdapter>,
}

/// Externally tagged: an internally tagged enum cannot read back the spectra's integer-keyed
/// maps (serde buffers them with string keys).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum FromWorker {
    /// The worker is up and takes jobs.
    Ready,
    Epoch { job: u32, stats: EpochStats },
    Done { job: u32, result: Box<TuneResult> },
    Failed { job: u32, message: String },
}

/// The request and the sets' bytes (train, test, then the OOD sets), as the page posts them.
pub fn encode(request: &TuneRequest, sets: &[&FeatureSet]) -> Result<(String, Vec<Vec<u8>>)> {
    let json = serde_json::to_string(request).map_err(|e| NmlError::Invalid(e.to_string()))?;
    let bytes = sets.iter().map(|s| safetensors_file::write_feature_set(s)).collect::<Result<Vec<_>>>()?;
    Ok((json, bytes))
}

/// The job back from what [`encode`] wrote.
pub fn decode(json: &str, bytes: &[Vec<u8>]) -> Result<(TuneRequest, TuneJob)> {
    let request: TuneRequest = serde_json::from_str(json).map_err(|e| NmlError::Invalid(format!("bad request to the worker: {e}")))?;
    if bytes.len() != 2 + request.ood_names.len() {
        return Err(NmlError::Invalid(format!("the worker got {} sets for {} names", bytes.len(), 2 + request.ood_names.len())));
    }
    let read = |i: usize, name: &str| -> Result<FeatureSet> { safetensors_file::read_feature_set(&bytes[i], name) };
    let train = read(0, &request.train_name)?;
    let test = read(1, &request.test_name)?;
    let ood = request.ood_names.iter().enumerate().map(|(i, n)| Ok((n.clone(), read(2 + i, n)?))).collect::<Result<_>>()?;
    let job = TuneJob { config: request.config.clone(), train, test, ood };
    Ok((request, job))
}
