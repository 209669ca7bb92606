//! Property tests over the frame parsers of both protocols: whatever arrives — arbitrary
//! text, arbitrary JSON values, near-valid messages with mutated fields — parsing never
//! panics and always yields either a message or a typed error whose reply frame is valid JSON
//! carrying the fields the protocol requires.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use exai_actors::protocol::{jsonrpc, legacy};
use proptest::prelude::*;
use serde_json::{json, Value};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map(
                prop_oneof![
                    Just("jsonrpc".to_string()),
                    Just("id".to_string()),
                    Just("method".to_string()),
                    Just("params".to_string()),
                    Just("result".to_string()),
                    Just("error".to_string()),
                    Just("op".to_string()),
                    Just("request_id".to_string()),
                    Just("name".to_string()),
                    Just("arguments".to_string()),
                    ".{0,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn check_jsonrpc(text: &str) {
    if let Err(e) = jsonrpc::parse(text) {
        let frame: Value = serde_json::from_str(&e.to_frame()).expect("error frame is JSON");
        assert_eq!(frame["jsonrpc"], "2.0");
        assert!(frame["error"]["code"].is_i64());
        assert!(frame.as_object().unwrap().contains_key("id"));
    }
}

fn check_legacy(text: &str) {
    if let Err(e) = legacy::parse(text) {
        let frame: Value = serde_json::from_str(&legacy::op_error(&e)).expect("error frame is JSON");
        assert!(frame["op"].is_string(), "every error carries op: {frame}");
        assert!(frame.as_object().unwrap().contains_key("request_id"), "and request_id: {frame}");
        assert!(frame["error"]["code"].is_string());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        check_jsonrpc(&text);
        check_legacy(&text);
    }

    #[test]
    fn arbitrary_bytes_as_lossy_text_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let text = String::from_utf8_lossy(&bytes);
        check_jsonrpc(&text);
        check_legacy(&text);
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let text = v.to_string();
        check_jsonrpc(&text);
        check_legacy(&text);
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        id in prop_oneof![Just(json!(1)), Just(json!("a")), Just(Value::Null), Just(json!(1.5)), Just(json!([1]))],
        method in prop_oneof![Just(json!("tools/call")), Just(json!(7)), Just(Value::Null)],
        params in arb_json(),
        cut in 0usize..200,
    ) {
        let full = json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string();
        let truncated: String = full.chars().take(cut).collect();
        check_jsonrpc(&full);
        check_jsonrpc(&truncated);
        let op = json!({"op":"call_tool","request_id":id,"name":method,"arguments":params}).to_string();
        check_legacy(&op);
        check_legacy(&op.chars().take(cut).collect::<String>());
    }
}
