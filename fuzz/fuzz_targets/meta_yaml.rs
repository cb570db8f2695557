//! Fuzz target `meta_yaml`: the checks live in `flextype::fuzzing::meta_yaml`, so the stable test suite
//! replays the same corpus through the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flextype::fuzzing::meta_yaml(data));
