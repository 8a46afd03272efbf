#![no_main]
//! A CIFAR-10 or CIFAR-100 binary file.
use libfuzzer_sys::fuzz_target;
use nml_core::data::CifarKind;

fuzz_target!(|data: &[u8]| {
    for kind in [CifarKind::Cifar10, CifarKind::Cifar100] {
        let _ = nml_core::ImageSet::from_cifar(data, "fuzz.bin", kind);
    }
});
