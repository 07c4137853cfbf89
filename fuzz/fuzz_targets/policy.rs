#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| openexec::core::fuzzing::policy(data));
