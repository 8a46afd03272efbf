#![no_main]
//! IDX files, plain or gzipped, alone and as an image/label pair.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = nml_core::data::idx::read_idx(data, "fuzz.idx");
    let labels = [0u8, 0, 8, 1, 0, 0, 0, 1, 3];
    let _ = nml_core::data::ImageSet::from_idx(data, "i.idx", &labels, "l.idx");
});
