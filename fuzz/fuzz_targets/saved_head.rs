#![no_main]
//! A head file for `nml predict`: safetensors with nml metadata and Burn's tensor layout.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let device = nml_core::device::ComputeDevice::cpu("").device;
    let _ = nml_core::tune::head_from_bytes(data, "fuzz-head.safetensors", &device);
});
