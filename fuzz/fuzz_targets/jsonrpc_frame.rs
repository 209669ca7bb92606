//! Fuzz target: the MCP (JSON-RPC 2.0) frame parser. Any input either parses or yields a
//! typed error whose reply frame is valid JSON-RPC (`jsonrpc`, `id`, an integer code).
#![no_main]

use exai_actors::protocol::jsonrpc;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = jsonrpc::parse(&text) {
        let frame: serde_json::Value = match serde_json::from_str(&e.to_frame()) {
            Ok(v) => v,
            Err(err) => panic!("error frame is not JSON: {err}"),
        };
        assert_eq!(frame["jsonrpc"], "2.0");
        assert!(frame["error"]["code"].is_i64());
        assert!(frame.as_object().is_some_and(|o| o.contains_key("id")));
    }
});
