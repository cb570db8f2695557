//! Fuzz target `media_path`: the checks live in `flextype::fuzzing::media_path`, so the stable test suite
//! replays the same corpus through the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flextype::fuzzing::media_path(data));
