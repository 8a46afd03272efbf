#![no_main]
//! A safetensors feature set.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = nml_core::data::safetensors_file::read_feature_set(data, "fuzz.safetensors");
});
