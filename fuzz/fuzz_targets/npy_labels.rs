#![no_main]
//! A labels `.npy` with a fixed features file.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = nml_core::data::npy_file::read_i64(data, "fuzz.npy");
    let features = nml_core::data::npy_file::write_f32(&[2, 2], &[0.0, 1.0, 2.0, 3.0]);
    let _ = nml_core::data::FeatureSet::from_npy(&features, "f.npy", data, "l.npy");
});
