#![no_main]
// See `onecode_edge::fuzz::auth::state_token` for what it feeds the parsers and checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| onecode_edge::fuzz::auth::state_token(data));
