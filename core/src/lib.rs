//! nml-core: what label noise in pre-training does to an encoder's features, and how to repair
//! it downstream, after Chen et al., *Understanding and Mitigating the Label Noise in
//! Pre-training on Downstream Tasks* (ICLR 2024). One library on [Burn](https://burn.dev) for
//! any backend (the [`Device`] chooses: WGPU on a GPU, Burn's CPU backend elsewhere); the `nml`
//! command line and the browser app call only this crate.
//!
//! The layers, each using only those below it:
//!
//! | module | what it holds |
//! |---|---|
//! | [`study`] | the paper's study: suites, cached cells, result tables |
//! | [`EncoderFile`] | reading a saved encoder, pre-trained or fine-tuned |
//! | [`finetune`] | LoRA and full fine-tuning of an encoder on a task |
//! | [`pretrain`] | supervised (noisy labels) and contrastive (noisy captions) pre-training |
//! | [`mod@tune`] | heads on frozen features: linear probe, MLP, NMTune |
//! | [`train`] | the one training loop, the optimiser, run directories |
//! | [`models`], [`spectrum`] | encoders; singular values and the metrics read off them |
//! | [`data`], [`noise`] | feature and image sets and their files; label noise |
//!
//! # Examples
//!
//! Label noise, a spectrum and an NMTune head on real digits, from the starter pack built in:
//!
//! ```
//! use nml_core::spectrum::measure;
//! use nml_core::{Device, GramPrecision, ImageSet, LabelNoise, Method, Preprocess, StarterSet, TuneConfig, tune};
//!
//! let device = Device::flex();
//! let digits = ImageSet::starter(StarterSet::SklearnDigits)?;
//! let noisy = LabelNoise::Symmetric { ratio: 0.1 }.apply(digits.labels(), 10, 0)?;
//! let features = digits.pixel_features()?;
//! let report = measure(&features, Preprocess::Paper, GramPrecision::Auto, &device)?;
//! let train = features.subset(&(0..1200).collect::<Vec<_>>(), "train");
//! let test = features.subset(&(1200..1797).collect::<Vec<_>>(), "test");
//! let config = TuneConfig { epochs: 3, ..TuneConfig::for_method(Method::Nmtune) };
//! let outcome = tune(&train, &test, &[], &config, &device, &mut ())?;
//! println!("{} labels changed, SVE {:.3}, NMTune {:.1}%", noisy.changed_count(), report.metrics.sve, outcome.report.accuracy * 100.0);
//! # assert_eq!(noisy.changed_count(), 180);
//! # assert!(report.metrics.sve > 2.0 && outcome.report.accuracy > 0.8);
//! # Ok::<(), nml_core::NmlError>(())
//! ```

pub mod data;
pub mod device;
mod encoder_file;
mod error;
pub mod finetune;
pub mod io;
pub mod models;
pub mod noise;
mod ops;
pub mod pretrain;
pub mod readback;
pub mod spectrum;
mod store;
pub mod study;
pub mod train;
pub mod tune;

#[doc(hidden)]
pub mod bench;
#[doc(hidden)]
pub mod kernels;

pub use burn::tensor::Device;
pub use data::{FeatureSet, ImageSet, ImageSource, StarterSet};
pub use device::{BackendChoice, ComputeDevice};
pub use encoder_file::EncoderFile;
pub use error::{NmlError, Result};
pub use noise::{LabelNoise, NoiseKind, NoisyLabels};
pub use spectrum::{GramPrecision, Preprocess, SpectrumReport};
pub use study::{Results, Suite, run_study};
pub use train::{Observer, OptimizerConfig};
pub use tune::{Method, TuneConfig, TuneReport, tune};

#[cfg(test)]
mod layers;
#[cfg(test)]
mod test_support;

/// Unit tests run on the nml binary's allocator (native/Cargo.toml says why).
#[cfg(all(test, not(target_arch = "wasm32")))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
