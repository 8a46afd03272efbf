//! Where an image set comes from, in the one-line form suites and the command line use:
//! `starter:NAME`, `IMAGES.idx[.gz],LABELS.idx[.gz]`, `IMAGES.npy,LABELS.npy`,
//! `cifar10:PATH` or `cifar100:PATH` (a CIFAR binary file, or the folder of its training files)
//! or a folder of class subfolders; then optionally `@A..B` (images A to B-1) and any of
//! `|rotate=DEGREES`, `|frame=INNER/OUTER`, `|resize=S` (shorter side to S), `|crop=C` (centre
//! crop), `|grey` and `|rgb`, applied in order, e.g. `starter:mnist@8000..10000|rotate=30`.
//! `|resize=256|crop=224` is torchvision's evaluation transform. On a folder the transforms are
//! applied to each image as it is decoded, so photos of many sizes are cropped as themselves;
//! `|skip-bad` leaves out files there that do not decode, and counts them (see
//! [`ImageSet::skipped`]), where without it such a file stops the read.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{BadImages, CifarKind, ImageFolder, ImageSet, StarterSet};
use crate::error::{NmlError, Result};

/// See the module documentation. Parsing checks the syntax; [`ImageSource::load`] reads the files.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSource {
    /// The source as written: its identity in caches, reports and messages.
    text: String,
    origin: ImageOrigin,
    range: Option<Range<usize>>,
    transforms: Vec<ImageTransform>,
    bad_images: BadImages,
}

/// The images a source starts from.
#[derive(Clone, Debug, PartialEq)]
pub enum ImageOrigin {
    Starter(StarterSet),
    Idx {
        images: PathBuf,
        labels: PathBuf,
    },
    Npy {
        images: PathBuf,
        labels: PathBuf,
    },
    /// A CIFAR binary file, or a folder holding the training files.
    Cifar {
        path: PathBuf,
        kind: CifarKind,
    },
    /// One subfolder of PNG/JPEG images per class.
    Folder(PathBuf),
}

/// A shift applied to every image of a source.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ImageTransform {
    /// Counter-clockwise by this many degrees (see [`ImageSet::rotated`]).
    Rotate(f64),
    /// Shrunk to `inner` pixels and centred on an `outer` canvas (see [`ImageSet::framed`]).
    Frame { inner: usize, outer: usize },
    /// To `channels` channels (see [`ImageSet::with_channels`]): 1 is `grey`, 3 is `rgb`.
    Channels(usize),
    /// The shorter side to this many pixels (see [`ImageSet::resized_shorter_side`]).
    Resize(usize),
    /// The central square of this many pixels (see [`ImageSet::center_cropped`]).
    CenterCrop(usize),
}

impl ImageSource {
    pub fn origin(&self) -> &ImageOrigin {
        &self.origin
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Reads the images, keeps the range and applies the transforms; the set is named by the
    /// source as written.
    pub fn load(&self) -> Result<ImageSet> {
        let set = match &self.origin {
            ImageOrigin::Starter(starter) => ImageSet::starter(*starter)?,
            ImageOrigin::Idx { images, labels } => ImageSet::read_idx(images, labels)?,
            ImageOrigin::Npy { images, labels } => ImageSet::read_npy(images, labels)?,
            ImageOrigin::Cifar { path, kind } => ImageSet::read_cifar(path, *kind)?,
            ImageOrigin::Folder(dir) if dir.is_dir() => {
                let per_image = |image: ImageSet| self.transformed(image);
                let set =
                    ImageSet::read_folder(&self.folder_files(dir)?, self.bad_images, &per_image)?;
                return Ok(set.with_name(self.text.clone()));
            }
            ImageOrigin::Folder(_) => return Err(self.unknown_form()),
        };
        Ok(self.transformed(self.in_range(set)?)?.with_name(self.text.clone()))
    }

    /// A folder's files, in the source's range; every transform maps images one by one, so the
    /// range can be taken before any is decoded.
    pub(super) fn folder_files(&self, dir: &Path) -> Result<ImageFolder> {
        let folder = ImageFolder::scan(dir)?;
        match &self.range {
            Some(range) => folder.range(range.clone()),
            None => Ok(folder),
        }
    }

    fn in_range(&self, set: ImageSet) -> Result<ImageSet> {
        if let Some(range) = &self.range {
            if range.end > set.n() {
                return Err(NmlError::Invalid(format!(
                    "{}: range must be A..B with A < B <= {} (the set's size)",
                    self.base_text(),
                    set.n()
                )));
            }
            return Ok(set.subset(&range.clone().collect::<Vec<_>>()));
        }
        Ok(set)
    }

    pub(super) fn transformed(&self, mut set: ImageSet) -> Result<ImageSet> {
        for transform in &self.transforms {
            set = match *transform {
                ImageTransform::Rotate(degrees) => set.rotated(degrees),
                ImageTransform::Frame { inner, outer } => set.framed(inner, outer)?,
                ImageTransform::Channels(channels) => set.with_channels(channels)?,
                ImageTransform::Resize(side) => set.resized_shorter_side(side),
                ImageTransform::CenterCrop(size) => set.center_cropped(size)?,
            };
        }
        Ok(set)
    }

    /// What the source does with files that do not decode.
    pub fn bad_images(&self) -> BadImages {
        self.bad_images
    }

    /// The channels the source's last `|grey` or `|rgb` asks for.
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn channels_asked(&self) -> Option<usize> {
        self.transforms.iter().rev().find_map(|t| match t {
            ImageTransform::Channels(c) => Some(*c),
            _ => None,
        })
    }

    fn base_text(&self) -> &str {
        self.text.split('|').next().unwrap_or_default()
    }

    fn unknown_form(&self) -> NmlError {
        NmlError::Invalid(format!(
            "{}: name images as starter:NAME, IMAGES.idx,LABELS.idx, IMAGES.npy,LABELS.npy, cifar10:PATH, cifar100:PATH or a folder of class subfolders",
            self.base_text()
        ))
    }
}

impl FromStr for ImageSource {
    type Err = NmlError;
    fn from_str(text: &str) -> Result<Self> {
        let mut parts = text.split('|');
        let base = parts.next().unwrap_or_default();
        let (source, range) = match base.rsplit_once('@') {
            Some((source, range)) => (source, Some(range)),
            None => (base, None),
        };
        let cifar = source
            .split_once(':')
            .and_then(|(kind, path)| Some((kind.parse::<CifarKind>().ok()?, path)));
        let origin = match source.strip_prefix("starter:") {
            Some(name) => ImageOrigin::Starter(name.parse()?),
            None if cifar.is_some() => {
                let (kind, path) = cifar.expect("checked");
                ImageOrigin::Cifar { path: PathBuf::from(path), kind }
            }
            None => match source.split_once(',') {
                Some((images, labels)) if images.ends_with(".npy") => ImageOrigin::Npy {
                    images: PathBuf::from(images),
                    labels: PathBuf::from(labels),
                },
                Some((images, labels)) => ImageOrigin::Idx {
                    images: PathBuf::from(images),
                    labels: PathBuf::from(labels),
                },
                None => ImageOrigin::Folder(PathBuf::from(source)),
            },
        };
        let range = match range {
            None => None,
            Some(range) => Some(
                range
                    .split_once("..")
                    .and_then(|(a, b)| Some(a.parse::<usize>().ok()?..b.parse::<usize>().ok()?))
                    .filter(|r| r.start < r.end)
                    .ok_or_else(|| {
                        NmlError::Invalid(format!("{base}: range must be A..B with A < B"))
                    })?,
            ),
        };
        let mut bad_images = BadImages::Stop;
        let transforms = parts
            .filter(|&op| {
                let flag = op == "skip-bad";
                if flag {
                    bad_images = BadImages::Skip;
                }
                !flag
            })
            .map(|op| {
                let bad = || {
                    NmlError::Invalid(format!(
                        "{text}: cannot read {op:?}; use rotate=DEGREES, frame=INNER/OUTER, resize=S, crop=C, grey, rgb or skip-bad"
                    ))
                };
                match op {
                    "grey" => return Ok(ImageTransform::Channels(1)),
                    "rgb" => return Ok(ImageTransform::Channels(3)),
                    _ => {}
                }
                let (name, arg) = op.split_once('=').ok_or_else(bad)?;
                match name {
                    "rotate" => Ok(ImageTransform::Rotate(
                        arg.parse::<f64>().ok().filter(|d| d.is_finite()).ok_or_else(bad)?,
                    )),
                    "frame" => {
                        let (inner, outer) = arg.split_once('/').ok_or_else(bad)?;
                        let (inner, outer): (usize, usize) =
                            (inner.parse().map_err(|_| bad())?, outer.parse().map_err(|_| bad())?);
                        if outer > 4096 || inner == 0 || inner > outer {
                            return Err(bad());
                        }
                        Ok(ImageTransform::Frame { inner, outer })
                    }
                    "resize" | "crop" => {
                        let size: usize = arg.parse().map_err(|_| bad())?;
                        if size == 0 || size > 4096 {
                            return Err(bad());
                        }
                        Ok(if name == "resize" {
                            ImageTransform::Resize(size)
                        } else {
                            ImageTransform::CenterCrop(size)
                        })
                    }
                    _ => Err(bad()),
                }
            })
            .collect::<Result<_>>()?;
        if bad_images == BadImages::Skip && !matches!(origin, ImageOrigin::Folder(_)) {
            return Err(NmlError::Invalid(format!(
                "{text}: skip-bad applies to folders of image files only"
            )));
        }
        Ok(Self { text: text.to_string(), origin, range, transforms, bad_images })
    }
}

impl fmt::Display for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for ImageSource {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for ImageSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl From<StarterSet> for ImageSource {
    fn from(set: StarterSet) -> Self {
        format!("starter:{}", set.name()).parse().expect("a starter name parses")
    }
}

impl ImageSource {
    /// A source for an image folder (one subfolder of PNG/JPEG images per class).
    pub fn folder(dir: &Path) -> Self {
        Self {
            text: dir.display().to_string(),
            origin: ImageOrigin::Folder(dir.to_path_buf()),
            range: None,
            transforms: Vec::new(),
            bad_images: BadImages::Stop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_load_and_keep_their_text() {
        let source: ImageSource =
            "starter:sklearn-digits@0..100|frame=20/28|rotate=90".parse().unwrap();
        assert_eq!(source.origin(), &ImageOrigin::Starter(StarterSet::SklearnDigits));
        let set = source.load().unwrap();
        assert_eq!(
            (set.n(), set.height(), set.name()),
            (100, 28, "starter:sklearn-digits@0..100|frame=20/28|rotate=90")
        );
        assert_eq!(source.to_string(), source.as_str());
        assert_eq!(
            serde_json::to_string(&source).unwrap(),
            "\"starter:sklearn-digits@0..100|frame=20/28|rotate=90\""
        );
    }

    #[test]
    fn cifar_sources_and_channel_transforms_load() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("test_batch.bin");
        let mut bytes = Vec::new();
        for label in [4u8, 9] {
            bytes.push(label);
            bytes.extend((0..3072).map(|i| (i % 251) as u8));
        }
        std::fs::write(&file, bytes).unwrap();
        let text = format!("cifar10:{}@1..2|grey", file.display());
        let source: ImageSource = text.parse().unwrap();
        assert_eq!(
            source.origin(),
            &ImageOrigin::Cifar { path: file.clone(), kind: CifarKind::Cifar10 }
        );
        let set = source.load().unwrap();
        assert_eq!((set.n(), set.channels(), set.labels()), (1, 1, &[9][..]));
        let rgb: ImageSource = "starter:sklearn-digits@0..3|rgb".parse().unwrap();
        assert_eq!(rgb.load().unwrap().channels(), 3);
        let eval: ImageSource = "starter:opencv-digits@0..2|resize=30|crop=24".parse().unwrap();
        let set = eval.load().unwrap();
        assert_eq!((set.height(), set.width()), (24, 24));
        let err = "starter:mnist@0..2|crop=40".parse::<ImageSource>().unwrap().load().unwrap_err();
        assert!(err.to_string().contains("40 x 40 centre crop does not fit"), "{err}");
    }

    #[test]
    fn a_folder_is_transformed_image_by_image_and_can_skip_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        for (class, w, h) in [("tall", 6, 10), ("wide", 12, 6)] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            let img =
                image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8 * 20, y as u8 * 20, 7]));
            img.save(dir.path().join(class).join("a.png")).unwrap();
        }
        std::fs::write(dir.path().join("wide/b.jpg"), b"\xff\xd8 truncated").unwrap();
        let root = dir.path().display();
        let strict: ImageSource = format!("{root}|resize=6|crop=6").parse().unwrap();
        let err = strict.load().unwrap_err().to_string();
        assert!(err.contains("b.jpg") && err.contains("skip-bad"), "{err}");
        let set = format!("{root}|skip-bad|resize=6|crop=6")
            .parse::<ImageSource>()
            .unwrap()
            .load()
            .unwrap();
        assert_eq!((set.n(), set.height(), set.width(), set.skipped().len()), (2, 6, 6, 1));
        // The wide image was cropped as itself, not squeezed into the tall one's shape first:
        // its shorter side is 6 already, and the crop keeps columns 3..9 (red 20 per column).
        let wide = set.subset(&[1]);
        assert_eq!(wide.pixels()[0], 60);
        assert_eq!(set.name(), format!("{root}|skip-bad|resize=6|crop=6"));
    }

    #[test]
    fn bad_sources_say_what_is_wrong() {
        let err = |s: &str| s.parse::<ImageSource>().unwrap_err().to_string();
        assert!(err("starter:cifar").contains("no built-in image set \"cifar\""));
        assert!(err("starter:mnist@5..2").contains("range must be A..B"));
        assert!(err("starter:mnist|blur=2").contains("resize=S, crop=C, grey, rgb or skip-bad"));
        assert!(err("starter:mnist|skip-bad").contains("folders of image files only"));
        let too_far: ImageSource = "starter:mnist@0..20000".parse().unwrap();
        assert!(too_far.load().unwrap_err().to_string().contains("B <= 10000"));
        let nowhere: ImageSource = "/no/such/folder".parse().unwrap();
        assert!(nowhere.load().unwrap_err().to_string().contains("name images as starter:NAME"));
    }
}
