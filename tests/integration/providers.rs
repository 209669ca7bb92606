//! The vendor HTTP layer (`exai::providers`) against real, independent mock providers started
//! on 127.0.0.1 by [`crate::common::mock`]: llmock for chat, streaming and scripted faults,
//! aimock for reasoning, request headers and the Files API. Transports are built with
//! `transport_factory(cfg)()` and driven directly inside `#[actix_rt::test]`.

mod chat;
mod faults;
mod files;
mod sim;
mod vendors;

use exai::providers::{transport_factory, TransportConfig, VendorKind};
use exai_actors::provider::transport::ProviderTransport;
use exai_actors::provider::types::{
    ChatMessage, ChatRequest, ChatResponse, ProviderError, RequestTimeouts, StreamEvent,
};
use std::time::{Duration, Instant};

use crate::common::mock::{install_crypto, MockProvider};

/// The API key the tests configure (must never show up in errors or Debug output).
const TEST_KEY: &str = "sk-test-0123456789-secret";
/// The model name sent to the mocks.
const MODEL: &str = "test-model";

fn config(base_url: String, kind: VendorKind) -> TransportConfig {
    TransportConfig::new("mock", kind, base_url).with_api_key(TEST_KEY)
}

/// A transport of `kind` pointed at `mock`, built the way the provider actor builds it.
fn transport(mock: &MockProvider, kind: VendorKind) -> Box<dyn ProviderTransport> {
    install_crypto();
    transport_factory(config(mock.base_url(), kind))()
}

fn timeouts(first_byte: Duration, idle: Duration, total: Duration) -> RequestTimeouts {
    RequestTimeouts { connect: Duration::from_secs(5), first_byte, idle, total }
}

/// Long enough never to fire in a healthy run.
fn generous() -> RequestTimeouts {
    timeouts(Duration::from_secs(20), Duration::from_secs(20), Duration::from_secs(30))
}

fn user(text: &str, stream: bool) -> ChatRequest {
    ChatRequest {
        model: MODEL.into(),
        messages: vec![ChatMessage::text("user", text)],
        stream,
        ..ChatRequest::default()
    }
}

/// What a chat call produced: the result, each event with the time it arrived (since the
/// call started), and the call's duration.
struct ChatRun {
    result: Result<ChatResponse, ProviderError>,
    events: Vec<(Duration, StreamEvent)>,
    elapsed: Duration,
}

impl ChatRun {
    fn content_events(&self) -> String {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                StreamEvent::Content(c) => Some(c.as_str()),
                StreamEvent::Reasoning(_) => None,
            })
            .collect()
    }
}

async fn run_chat(t: &dyn ProviderTransport, req: &ChatRequest, timeouts: &RequestTimeouts) -> ChatRun {
    let started = Instant::now();
    let mut events = Vec::new();
    let result = t.chat(req, timeouts, &mut |e| events.push((started.elapsed(), e))).await;
    ChatRun { result, events, elapsed: started.elapsed() }
}
