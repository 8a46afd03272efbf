//! Image encoders pre-trained on noisy labels, and the host-seeded initialisers they share.

mod init;
mod resnet;

pub use init::{HostInit, stable_param_ids};
pub use resnet::{BasicBlock, ResNet, ResNetConfig};
