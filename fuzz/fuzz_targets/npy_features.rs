#![no_main]
//! A features `.npy` with a fixed labels file: must parse or return an error, never panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = nml_core::data::npy_file::read_f32(data, "fuzz.npy");
    let labels = nml_core::data::npy_file::write_i64(&[2], &[0, 1]);
    let _ = nml_core::data::FeatureSet::from_npy(data, "f.npy", &labels, "l.npy");
});
