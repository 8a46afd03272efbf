//! Class folders larger than memory: files are decoded and augmented by a background pool
//! while the device trains, with a bounded number of batches prepared ahead.
//!
//! Only the listing is held. Each batch is built by a pool of worker threads (one image each
//! at a time) on a thread of its own, which keeps at most `prefetch` finished batches waiting,
//! so memory stays at a few batches whatever the folder's size. Every image's crop is drawn
//! from a random stream of its own, seeded by the run's seed, the epoch and its place in the
//! epoch, so a batch is the same however many workers build it, and a resumed run sees the
//! crops an uninterrupted one would.

use std::collections::BTreeSet;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use rayon::prelude::*;

use super::{
    AugmentConfig, FolderImage, ImageFolder, ImageSource, Normalize, PixelMap, draw_crop,
    resample_crop,
};
use crate::error::{NmlError, Result};

/// The largest product of an image side and the output side the crop arithmetic takes (it
/// stays within i32 below it): a 224-pixel crop of photos up to 18,724 pixels a side.
const MAX_SIDE_PRODUCT: usize = 1 << 22;

/// A class folder read file by file as batches are asked for (see the module documentation).
/// Made by [`ImageSource::streamed`]; cheap to clone.
#[derive(Clone, Debug)]
pub struct StreamedImages {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    source: ImageSource,
    folder: ImageFolder,
    channels: usize,
    skipped: Mutex<BTreeSet<String>>,
}

/// How many threads decode and how far ahead they may work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Threads decoding and augmenting images.
    pub workers: usize,
    /// Finished batches that may wait for the training loop.
    pub prefetch: usize,
}

impl Default for LoaderConfig {
    /// A worker for each core, four batches ahead.
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self { workers, prefetch: 4 }
    }
}

/// What is done to each image of a batch: cropped as `augment` says (a shift crop of the image
/// resampled to `image_size`, or a resized crop of the image as decoded) and mirrored, or
/// without `augment` resampled to `image_size` whole; then scaled to [0, 1] and normalised.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchTransform {
    pub image_size: usize,
    pub augment: Option<AugmentConfig>,
    pub normalize: Option<Normalize>,
}

/// One prepared batch.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageBatch {
    /// The samples asked for, in order.
    pub requested: Vec<usize>,
    /// Those that decoded (all of `requested` unless the source skips bad files).
    pub indices: Vec<usize>,
    /// `[indices.len(), channels, image_size, image_size]`, row-major.
    pub pixels: Vec<f32>,
}

/// The batches of a run as the background pool prepares them; dropping it stops the pool.
pub struct BatchStream {
    receiver: Option<Receiver<Result<ImageBatch>>>,
    producer: Option<JoinHandle<()>>,
}

impl ImageSource {
    /// This source as a [`StreamedImages`]: only class folders stream. The images are RGB
    /// (grey files repeated over the channels) unless the source ends in `|grey`; the source's
    /// range and transforms apply to each file as it is decoded.
    pub fn streamed(&self) -> Result<StreamedImages> {
        let super::ImageOrigin::Folder(dir) = self.origin() else {
            return Err(NmlError::Invalid(format!(
                "{self}: only a folder of class subfolders is streamed; load other sources whole"
            )));
        };
        let folder = self.folder_files(dir)?;
        let channels = self.channels_asked().unwrap_or(3);
        let skipped = Mutex::new(BTreeSet::new());
        Ok(StreamedImages {
            inner: Arc::new(Inner { source: self.clone(), folder, channels, skipped }),
        })
    }
}

impl StreamedImages {
    pub fn name(&self) -> &str {
        self.inner.source.as_str()
    }

    /// The number of files (skipped ones included).
    pub fn n(&self) -> usize {
        self.inner.folder.len()
    }

    pub fn labels(&self) -> &[u32] {
        self.inner.folder.labels()
    }

    pub fn num_classes(&self) -> usize {
        self.inner.folder.num_classes()
    }

    pub fn class_names(&self) -> &[String] {
        self.inner.folder.class_names()
    }

    pub fn channels(&self) -> usize {
        self.inner.channels
    }

    /// Files left out so far because they did not decode, each once, as `path: reason`.
    pub fn skipped(&self) -> Vec<String> {
        self.inner.skipped.lock().map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// Starts the pool on the batches of `epochs`: `batches_of(epoch)` lists each epoch's
    /// batches in the order they will be asked for, and `seed` with the epoch and the place in
    /// it seeds each image's crop.
    pub fn stream(
        &self,
        epochs: std::ops::RangeInclusive<usize>,
        batches_of: impl Fn(usize) -> Result<Vec<Vec<usize>>> + Send + 'static,
        transform: BatchTransform,
        seed: u64,
        loader: LoaderConfig,
    ) -> Result<BatchStream> {
        let map =
            PixelMap::of_bytes(self.channels(), 255, transform.normalize.as_ref(), self.name())?;
        if let Some(augment) = &transform.augment {
            augment.validate()?;
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(loader.workers.max(1))
            .thread_name(|i| format!("nml-loader-{i}"))
            .build()
            .map_err(|e| NmlError::Invalid(format!("cannot start the image loader: {e}")))?;
        let (sender, receiver) = sync_channel(loader.prefetch.max(1));
        let images = self.clone();
        let producer = std::thread::Builder::new()
            .name("nml-batches".into())
            .spawn(move || {
                for epoch in epochs {
                    let batches = match batches_of(epoch) {
                        Ok(batches) => batches,
                        Err(e) => return drop(sender.send(Err(e))),
                    };
                    for (number, batch) in batches.into_iter().enumerate() {
                        let batch_seed = mix(mix(seed, epoch as u64), number as u64);
                        let built =
                            pool.install(|| images.build(batch, batch_seed, &transform, &map));
                        if !send(&sender, built) {
                            return;
                        }
                    }
                }
            })
            .map_err(|e| NmlError::Invalid(format!("cannot start the image loader: {e}")))?;
        Ok(BatchStream { receiver: Some(receiver), producer: Some(producer) })
    }

    /// The batch of `requested`, its images prepared in parallel on the current pool.
    fn build(
        &self,
        requested: Vec<usize>,
        batch_seed: u64,
        transform: &BatchTransform,
        map: &PixelMap,
    ) -> Result<ImageBatch> {
        let prepared: Vec<Result<Option<Vec<f32>>>> = requested
            .par_iter()
            .enumerate()
            .map(|(place, &i)| self.prepare(i, mix(batch_seed, place as u64), transform, map))
            .collect();
        let mut batch =
            ImageBatch { requested: requested.clone(), indices: Vec::new(), pixels: Vec::new() };
        for (&i, one) in requested.iter().zip(prepared) {
            if let Some(pixels) = one? {
                batch.indices.push(i);
                batch.pixels.extend(pixels);
            }
        }
        if batch.indices.len() < 2 {
            return Err(NmlError::format(
                self.name(),
                format!(
                    "only {} of a batch of {} images decoded; a batch needs two",
                    batch.indices.len(),
                    requested.len()
                ),
            ));
        }
        Ok(batch)
    }

    /// Image `i` as the batch takes it, or `None` when it is skipped as unreadable.
    fn prepare(
        &self,
        i: usize,
        seed: u64,
        transform: &BatchTransform,
        map: &PixelMap,
    ) -> Result<Option<Vec<f32>>> {
        let inner = &self.inner;
        let bad = inner.source.bad_images();
        let image = match inner.folder.read(i, bad)? {
            FolderImage::Image(image) => image,
            FolderImage::Skipped(reason) => {
                if let Ok(mut skipped) = inner.skipped.lock() {
                    skipped.insert(reason);
                }
                return Ok(None);
            }
        };
        let mut image = inner.source.transformed(image)?;
        if image.channels() != inner.channels {
            image = image.with_channels(inner.channels)?;
        }
        let size = transform.image_size;
        if image.height().max(image.width()) * size > MAX_SIDE_PRODUCT {
            return Err(NmlError::format(
                inner.folder.file(i).display().to_string(),
                format!(
                    "an image of {}x{} is too large to crop to {size}; shrink it first (|resize=S)",
                    image.height(),
                    image.width()
                ),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (image, crop) = match &transform.augment {
            Some(augment) if augment.resized_crop.is_some() => {
                let crop = draw_crop([image.height(), image.width()], augment, &mut rng);
                (image, crop)
            }
            Some(augment) => {
                (image.resized(size, size), draw_crop([size, size], augment, &mut rng))
            }
            None => (image.resized(size, size), [0, 0, size as i32, size as i32, 0]),
        };
        let mut out = Vec::with_capacity(inner.channels * size * size);
        resample_crop(
            image.image(0),
            [image.height(), image.width()],
            crop,
            [size, size],
            map,
            &mut out,
        );
        Ok(Some(out))
    }
}

/// Sends `built`; false when the loop is gone or the batch failed, which ends the pool.
fn send(sender: &SyncSender<Result<ImageBatch>>, built: Result<ImageBatch>) -> bool {
    let failed = built.is_err();
    sender.send(built).is_ok() && !failed
}

/// A seed for stream `k` of `seed` (SplitMix64's finaliser over their sum).
fn mix(seed: u64, k: u64) -> u64 {
    let mut z = seed.wrapping_add((k + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl BatchStream {
    /// The next batch, which must be the one of `expected` (the loop and the pool walk the same
    /// list); waits while the pool is behind.
    pub fn next(&mut self, expected: &[usize]) -> Result<ImageBatch> {
        let receiver = self.receiver.as_ref().expect("present until dropped");
        let batch = receiver.recv().map_err(|_| {
            NmlError::Invalid("the image loader stopped before the run ended".into())
        })??;
        if batch.requested != expected {
            return Err(NmlError::Invalid(
                "the image loader is out of step with the training loop".into(),
            ));
        }
        Ok(batch)
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        // Closing the channel first makes the producer's next send fail, so it ends after the
        // batch it is building.
        drop(self.receiver.take());
        if let Some(producer) = self.producer.take() {
            let _ = producer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ImageSet, ResizedCrop, image_batch};

    /// A folder of `per_class` PNGs of odd sizes in each of three classes, colour and grey.
    fn folder(per_class: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for class in ["ant", "bee", "cow"] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            for k in 0..per_class {
                let (w, h) = (9 + k as u32 % 4, 7 + class.len() as u32 + k as u32 % 3);
                let path = dir.path().join(class).join(format!("{k:03}.png"));
                if k % 3 == 2 {
                    image::GrayImage::from_fn(w, h, |x, y| image::Luma([(x * 20 + y * 7) as u8]))
                        .save(path)
                        .unwrap();
                } else {
                    let c = class.as_bytes()[0];
                    image::RgbImage::from_fn(w, h, |x, y| {
                        image::Rgb([x as u8 * 25, y as u8 * 30, c.wrapping_mul(k as u8 + 1)])
                    })
                    .save(path)
                    .unwrap();
                }
            }
        }
        dir
    }

    fn batches(n: usize, size: usize) -> impl Fn(usize) -> Result<Vec<Vec<usize>>> + Send {
        move |epoch| {
            Ok((0..n)
                .map(|i| (i * 7 + epoch) % n)
                .collect::<Vec<_>>()
                .chunks(size)
                .map(<[usize]>::to_vec)
                .collect())
        }
    }

    fn all(
        stream: &mut BatchStream,
        plan: &dyn Fn(usize) -> Result<Vec<Vec<usize>>>,
        epochs: std::ops::RangeInclusive<usize>,
    ) -> Vec<ImageBatch> {
        epochs.flat_map(|e| plan(e).unwrap()).map(|b| stream.next(&b).unwrap()).collect()
    }

    /// Without augmentation a streamed batch is the in-memory batch of the same folder resized
    /// to the same size, to the bit, in the order asked for.
    #[test]
    fn plain_batches_equal_the_folder_held_in_memory() {
        let dir = folder(4);
        let source: ImageSource = format!("{}|rgb", dir.path().display()).parse().unwrap();
        let streamed = source.streamed().unwrap();
        assert_eq!((streamed.n(), streamed.num_classes(), streamed.channels()), (12, 3, 3));
        assert_eq!(streamed.class_names(), ["ant", "bee", "cow"]);
        let transform =
            BatchTransform { image_size: 8, augment: None, normalize: Some(Normalize::imagenet()) };
        let loader = LoaderConfig { workers: 2, prefetch: 2 };
        let mut stream = streamed.stream(1..=2, batches(12, 5), transform, 3, loader).unwrap();
        let got = all(&mut stream, &batches(12, 5), 1..=2);
        // The in-memory reader resamples every image to the first one's size before stacking,
        // so the reference reads each file alone.
        for batch in &got {
            let mut want = Vec::new();
            for &i in &batch.indices {
                let one =
                    ImageSet::decode(&std::fs::read(streamed.inner.folder.file(i)).unwrap(), "f")
                        .unwrap();
                let one = one.with_channels(3).unwrap().resized(8, 8);
                assert_eq!(one.max_value(), 255);
                want.extend(image_batch(&one, &[0], Some(&Normalize::imagenet()), None).unwrap());
            }
            assert_eq!(batch.pixels, want);
            assert_eq!(batch.indices, batch.requested);
        }
        assert_eq!(got.len(), 6);
    }

    /// Augmented batches depend on the seed and the epoch, not on the number of workers; a
    /// stream started at a later epoch gives that epoch's batches as a whole run does.
    #[test]
    fn augmented_batches_are_the_same_for_any_pool() {
        let dir = folder(6);
        let streamed =
            dir.path().display().to_string().parse::<ImageSource>().unwrap().streamed().unwrap();
        let augment = AugmentConfig {
            pad: 0,
            flip: true,
            normalize: None,
            resized_crop: Some(ResizedCrop::default()),
        };
        let transform = BatchTransform { image_size: 6, augment: Some(augment), normalize: None };
        let run = |workers, epochs: std::ops::RangeInclusive<usize>, seed| {
            let mut stream = streamed
                .stream(
                    epochs.clone(),
                    batches(18, 4),
                    transform.clone(),
                    seed,
                    LoaderConfig { workers, prefetch: 1 },
                )
                .unwrap();
            all(&mut stream, &batches(18, 4), epochs)
        };
        let one = run(1, 1..=2, 9);
        assert_eq!(one, run(3, 1..=2, 9));
        assert_eq!(one[5..], run(2, 2..=2, 9)[..]);
        assert_ne!(one, run(1, 1..=2, 10));
        assert_eq!(one[0].pixels.len(), 4 * 3 * 36);
    }

    /// A bad file stops the stream by name, or is left out of its batch and listed once; the
    /// loop asking for another batch than the pool built is an error, not a silent mix-up.
    #[test]
    fn bad_files_and_a_loop_out_of_step_are_errors() {
        let dir = folder(3);
        std::fs::write(dir.path().join("bee/001.png"), b"\x89PNG truncated").unwrap();
        let transform = BatchTransform { image_size: 5, augment: None, normalize: None };
        let loader = LoaderConfig { workers: 2, prefetch: 1 };
        let plan = |_| Ok(vec![(0..9).collect::<Vec<usize>>()]);
        let strict =
            dir.path().display().to_string().parse::<ImageSource>().unwrap().streamed().unwrap();
        let err = strict
            .stream(1..=1, plan, transform.clone(), 0, loader)
            .unwrap()
            .next(&(0..9).collect::<Vec<_>>())
            .unwrap_err()
            .to_string();
        assert!(err.contains("001.png") && err.contains("skip-bad"), "{err}");
        let skipping = format!("{}|skip-bad|grey", dir.path().display())
            .parse::<ImageSource>()
            .unwrap()
            .streamed()
            .unwrap();
        let mut stream = skipping.stream(1..=2, plan, transform, 0, loader).unwrap();
        let batch = stream.next(&(0..9).collect::<Vec<_>>()).unwrap();
        assert_eq!(batch.indices, [0, 1, 2, 3, 5, 6, 7, 8]);
        assert_eq!(batch.pixels.len(), 8 * 25);
        let err = stream.next(&[1, 2]).unwrap_err().to_string();
        assert!(err.contains("out of step"), "{err}");
        assert_eq!(skipping.skipped().len(), 1);
        let memory: ImageSource = "starter:mnist@0..10".parse().unwrap();
        assert!(memory.streamed().unwrap_err().to_string().contains("only a folder"));
    }
}
