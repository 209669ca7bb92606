//! Fuzz target: the legacy EXAI op-protocol frame parser. Any input either parses or yields
//! a typed error whose reply frame is valid JSON carrying `op`, `request_id` and a code.
#![no_main]

use exai_actors::protocol::legacy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = legacy::parse(&text) {
        let frame: serde_json::Value = match serde_json::from_str(&legacy::op_error(&e)) {
            Ok(v) => v,
            Err(err) => panic!("error frame is not JSON: {err}"),
        };
        assert!(frame["op"].is_string());
        assert!(frame.as_object().is_some_and(|o| o.contains_key("request_id")));
        assert!(frame["error"]["code"].is_string());
    }
});
