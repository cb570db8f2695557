//! Fuzz target `thumb_spec`: the checks live in `flextype::fuzzing::thumb_spec`, so the stable test suite
//! replays the same corpus through the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flextype::fuzzing::thumb_spec(data));
