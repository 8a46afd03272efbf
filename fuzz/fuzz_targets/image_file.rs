#![no_main]
//! One PNG or JPEG file, as an image folder reads each of its files.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = nml_core::ImageSet::decode(data, "fuzz.png");
});
