//! A zero-delay OpenAI-compatible mock in the bench process: `POST /v1/chat/completions`
//! answers at once with a fixed completion (one actix-web worker on its own thread). The
//! server under test is pointed at it with `--mock`, and `--direct` calls it directly.

use super::BenchError;
use actix_web::{web, App, HttpResponse, HttpServer};

/// The completion the mock returns.
pub const ANSWER: &str = r#"{"id":"c1","object":"chat.completion","model":"glm-4.5-flash","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;

/// The body of a direct call: what a `chat` with prompt "hi" sends upstream.
pub const DIRECT_BODY: &str = r#"{"model":"glm-4.5-flash","messages":[{"role":"system","content":"You are a senior engineering collaborator."},{"role":"user","content":"hi"}]}"#;

/// Starts the mock on a free loopback port and returns the port.
pub fn start() -> Result<u16, BenchError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let srv = HttpServer::new(|| {
                App::new().route(
                    "/v1/chat/completions",
                    web::post().to(|_b: web::Bytes| async {
                        HttpResponse::Ok().content_type("application/json").body(ANSWER)
                    }),
                )
            })
            .workers(1)
            // Benches leave a client's connection idle for seconds between phases; with
            // actix's default 5 s keep-alive the mock could close it just as the client reuses
            // it (a spurious failed direct call).
            .keep_alive(std::time::Duration::from_secs(600))
            .disable_signals()
            .bind(("127.0.0.1", 0));
            match srv {
                Ok(srv) => {
                    let _ = tx.send(srv.addrs().first().map(|a| a.port()).ok_or("no address".to_string()));
                    let _ = srv.run().await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
        })
    });
    rx.recv().map_err(|e| BenchError::Start(e.to_string()))?.map_err(BenchError::Start)
}

/// The chat completions URL of a mock on `port`.
pub fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/v1/chat/completions")
}
