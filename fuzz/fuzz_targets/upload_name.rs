//! Fuzz target `upload_name`: the checks live in `flextype::fuzzing::upload_name`, so the stable test suite
//! replays the same corpus through the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flextype::fuzzing::upload_name(data));
