//! nml-core: label noise, feature spectra and noise-robust downstream tuning (NMTune) on any
//! Burn backend. The command line (`nml`) and the browser app call only this crate.

pub mod bench;
pub mod data;
pub mod device;
pub mod error;
pub mod finetune;
pub mod io;
pub mod kernels;
pub mod models;
pub mod noise;
pub mod ops;
pub mod optim;
pub mod pretrain;
pub mod readback;
pub mod spectrum;
pub mod store;
pub mod tune;

pub use burn::tensor::Device;
pub use error::{NmlError, Result};

#[cfg(test)]
mod test_support;

/// Unit tests run on the nml binary's allocator (native/Cargo.toml says why).
#[cfg(all(test, not(target_arch = "wasm32")))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
