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
pub mod pretrain;
pub mod spectrum;
pub mod store;
pub mod tune;

pub use burn::tensor::Device;
pub use error::{NmlError, Result};

#[cfg(test)]
mod test_support;
