//! [`Sim`]: a provider simulator — an OpenAI-compatible server written for the test suite that
//! behaves like a real vendor, on a free 127.0.0.1 port, in its own thread (its own actix
//! system, so sync and async tests can both use it). Killed when dropped.
//!
//! What it can do, per request of `POST /v1/chat/completions` (a queue of scripted [`Reply`]s,
//! then the default reply):
//! - answer after a time to the response head (`head_after`: a thinking model answering a
//!   non-streamed call only when done), streamed answers with a time to the first chunk
//!   (`first_after`), paced chunks (`gap`), and one long silence in the middle (`pause`);
//! - fail with a status, a vendor error body (Z.ai business codes, Moonshot error types) and
//!   a `Retry-After` header, or cut a stream after a few chunks;
//! - `GET /v1/models` lists [`Sim::set_models`].
//!
//! Every duration in a reply is "real world" and multiplied by the simulator's `scale`, so a
//! test can script a 40 s thinking silence and wait 2 s ([`Sim::scaled`] converts for the
//! server's configuration). The journal records each request: path, `Authorization` header,
//! JSON body, arrival and end times (ms since start) and how many requests were in flight when
//! it arrived.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A streamed or plain answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The answer text (split into `chunks` pieces when streamed).
    pub text: String,
    /// Reasoning sent before the text (one reasoning chunk when streamed).
    pub reasoning: Option<String>,
    /// Until the response head (a non-streamed answer comes whole at that moment).
    pub head_after: Duration,
    /// Streamed: from the head until the first chunk.
    pub first_after: Duration,
    /// Streamed: pieces of the text.
    pub chunks: usize,
    /// Streamed: between two chunks.
    pub gap: Duration,
    /// Streamed: an extra silence before chunk number `.0` (0-based).
    pub pause: Option<(usize, Duration)>,
    /// Reported usage: prompt and completion tokens.
    pub usage: (u64, u64),
}

impl Default for Answer {
    fn default() -> Self {
        Answer {
            text: "simulated answer".into(),
            reasoning: None,
            head_after: Duration::ZERO,
            first_after: Duration::ZERO,
            chunks: 3,
            gap: Duration::ZERO,
            pause: None,
            usage: (11, 7),
        }
    }
}

/// What the simulator does with one chat request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answer.
    Answer(Answer),
    /// An error status with a body, after `after`.
    Error {
        /// HTTP status.
        status: u16,
        /// JSON body.
        body: Value,
        /// `Retry-After` in real-world seconds (scaled), when sent.
        retry_after: Option<f64>,
        /// Delay before the answer.
        after: Duration,
    },
    /// Stream `chunks` chunks `gap` apart, then drop the connection.
    Cut {
        /// Chunks before the cut.
        chunks: usize,
        /// Between chunks.
        gap: Duration,
    },
}

impl Reply {
    /// An instant answer with this text.
    pub fn text(t: &str) -> Reply {
        Reply::Answer(Answer { text: t.into(), ..Answer::default() })
    }

    /// A thinking model answering a plain call after `secs` (real world).
    pub fn after_secs(secs: f64) -> Reply {
        Reply::Answer(Answer { head_after: Duration::from_secs_f64(secs), ..Answer::default() })
    }

    /// A stream of `chunks` pieces over `secs` (real world), the first one at once.
    pub fn stream_for(secs: f64, chunks: usize) -> Reply {
        let gap = Duration::from_secs_f64(secs / chunks.max(1) as f64);
        // Equal-width words, so the text splits into exactly `chunks` pieces.
        let text = (0..chunks).map(|i| format!("w{i:04} ")).collect::<String>();
        Reply::Answer(Answer { text, chunks, gap, ..Answer::default() })
    }

    /// HTTP 429 with `Retry-After` (real-world seconds) and an OpenAI-style body.
    pub fn rate_limited(retry_after: Option<f64>) -> Reply {
        Reply::Error {
            status: 429,
            body: json!({"error": {"type": "rate_limit_reached_error", "message": "Your account reached its RPM limit"}}),
            retry_after,
            after: Duration::ZERO,
        }
    }

    /// A Z.ai error: `{"error": {"code": "<code>", "message": ...}}` under `status`.
    pub fn zai(status: u16, code: &str, message: &str) -> Reply {
        Reply::Error {
            status,
            body: json!({"error": {"code": code, "message": message}}),
            retry_after: None,
            after: Duration::ZERO,
        }
    }

    /// A Moonshot error: `{"error": {"type": "<type>", "message": ...}}` under `status`.
    pub fn moonshot(status: u16, kind: &str, message: &str) -> Reply {
        Reply::Error {
            status,
            body: json!({"error": {"type": kind, "message": message}}),
            retry_after: None,
            after: Duration::ZERO,
        }
    }

    /// An error with any JSON body.
    pub fn status(status: u16, body: Value) -> Reply {
        Reply::Error { status, body, retry_after: None, after: Duration::ZERO }
    }
}

/// One journal record.
#[derive(Debug, Clone)]
pub struct Record {
    /// Request path.
    pub path: String,
    /// `Authorization` header, when sent.
    pub auth: Option<String>,
    /// The JSON body (`Null` when none or not JSON).
    pub body: Value,
    /// Arrival, ms since the simulator started.
    pub at_ms: f64,
    /// End of the answer (last byte handed to the socket), ms since start; `None` while
    /// running or when the client went away first.
    pub done_ms: Option<f64>,
    /// Requests in flight when it arrived (itself included).
    pub inflight: usize,
}

struct State {
    scale: f64,
    start: Instant,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
    models: Mutex<Vec<String>>,
    journal: Mutex<Vec<Record>>,
    inflight: AtomicUsize,
    max_inflight: AtomicUsize,
}

impl State {
    fn ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    fn scale(&self, d: Duration) -> Duration {
        d.mul_f64(self.scale)
    }
}

/// Counts one request in flight while it lives and stamps its end in the journal.
struct InFlight {
    state: Arc<State>,
    index: usize,
    finished: bool,
}

impl InFlight {
    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.inflight.fetch_sub(1, Ordering::SeqCst);
        if self.finished {
            let now = self.state.ms();
            if let Some(r) = self.state.journal.lock().unwrap().get_mut(self.index) {
                r.done_ms = Some(now);
            }
        }
    }
}

/// A running simulator.
pub struct Sim {
    port: u16,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sim {
    /// Starts a simulator whose durations are multiplied by `scale` (1.0 = real time).
    pub fn start(scale: f64) -> Sim {
        let state = Arc::new(State {
            scale,
            start: Instant::now(),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Reply::Answer(Answer::default())),
            models: Mutex::new(Vec::new()),
            journal: Mutex::new(Vec::new()),
            inflight: AtomicUsize::new(0),
            max_inflight: AtomicUsize::new(0),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let st = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let sys = actix_rt::System::new();
            sys.block_on(async move {
                let data = web::Data::from(st);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .app_data(web::PayloadConfig::new(64 << 20))
                        .route("/v1/chat/completions", web::post().to(chat))
                        .route("/v1/models", web::get().to(models))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .bind(("127.0.0.1", 0))
                .unwrap();
                let port = server.addrs()[0].port();
                let server = server.run();
                tx.send((port, server.handle())).unwrap();
                let _ = server.await;
            });
        });
        let (port, handle) = rx.recv_timeout(Duration::from_secs(20)).expect("simulator did not start");
        Sim { port, state, handle, thread: Some(thread) }
    }

    /// The provider base URL to configure: `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The scale factor.
    pub fn scale(&self) -> f64 {
        self.state.scale
    }

    /// Real-world seconds as scaled milliseconds (for the server's configuration).
    pub fn scaled_ms(&self, secs: f64) -> u64 {
        (secs * 1000.0 * self.state.scale).round() as u64
    }

    /// Real-world seconds as a scaled duration.
    pub fn scaled(&self, secs: f64) -> Duration {
        Duration::from_secs_f64(secs * self.state.scale)
    }

    /// Queues `reply` for the next `times` chat requests.
    pub fn push(&self, reply: Reply, times: usize) {
        let mut s = self.state.script.lock().unwrap();
        for _ in 0..times {
            s.push_back(reply.clone());
        }
    }

    /// The reply once the queue is empty.
    pub fn set_default(&self, reply: Reply) {
        *self.state.default.lock().unwrap() = reply;
    }

    /// What `GET /v1/models` lists.
    pub fn set_models(&self, ids: &[&str]) {
        *self.state.models.lock().unwrap() = ids.iter().map(|s| s.to_string()).collect();
    }

    /// The journal, oldest first.
    pub fn journal(&self) -> Vec<Record> {
        self.state.journal.lock().unwrap().clone()
    }

    /// Chat requests received so far.
    pub fn chats(&self) -> Vec<Record> {
        self.journal().into_iter().filter(|r| r.path.ends_with("/chat/completions")).collect()
    }

    /// Requests in flight now.
    pub fn inflight(&self) -> usize {
        self.state.inflight.load(Ordering::SeqCst)
    }

    /// Most requests ever in flight at once.
    pub fn max_inflight(&self) -> usize {
        self.state.max_inflight.load(Ordering::SeqCst)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Stopping needs a runtime; a tiny one here keeps Drop usable from any test.
        let _ = std::thread::spawn(move || actix_rt::System::new().block_on(handle.stop(false))).join();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn admit(state: &Arc<State>, req: &HttpRequest, body: &Bytes) -> InFlight {
    let now = state.inflight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_inflight.fetch_max(now, Ordering::SeqCst);
    let mut j = state.journal.lock().unwrap();
    j.push(Record {
        path: req.path().to_string(),
        auth: req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
        at_ms: state.ms(),
        done_ms: None,
        inflight: now,
    });
    InFlight { state: Arc::clone(state), index: j.len() - 1, finished: false }
}

async fn models(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    let mut guard = admit(&state.into_inner(), &req, &Bytes::new());
    let ids = guard.state.models.lock().unwrap().clone();
    guard.finish();
    let data: Vec<Value> = ids.iter().map(|id| json!({"id": id, "object": "model", "owned_by": "sim"})).collect();
    HttpResponse::Ok().json(json!({"object": "list", "data": data}))
}

fn chunk(model: &str, delta: Value, finish: Option<&str>, usage: Option<Value>) -> Bytes {
    let mut v = json!({"id": "sim-1", "object": "chat.completion.chunk", "created": 1, "model": model,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    if let Some(u) = usage {
        v["usage"] = u;
    }
    Bytes::from(format!("data: {v}\n\n"))
}

fn pieces(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let n = n.max(1).min(chars.len().max(1));
    let per = chars.len().div_ceil(n).max(1);
    chars.chunks(per).map(|c| c.iter().collect()).collect()
}

async fn chat(state: web::Data<State>, req: HttpRequest, body: Bytes) -> HttpResponse {
    let state = state.into_inner();
    let mut guard = admit(&state, &req, &body);
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = parsed["model"].as_str().unwrap_or("sim-model").to_string();
    let stream = parsed["stream"].as_bool().unwrap_or(false);
    let reply = state.script.lock().unwrap().pop_front().unwrap_or_else(|| state.default.lock().unwrap().clone());
    match reply {
        Reply::Error { status, body, retry_after, after } => {
            actix_rt::time::sleep(state.scale(after)).await;
            let mut res = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
            if let Some(secs) = retry_after {
                res.insert_header(("retry-after", format!("{:.3}", secs * state.scale)));
            }
            guard.finish();
            res.json(body)
        }
        Reply::Answer(a) => {
            actix_rt::time::sleep(state.scale(a.head_after)).await;
            let usage = json!({"prompt_tokens": a.usage.0, "completion_tokens": a.usage.1,
                               "total_tokens": a.usage.0 + a.usage.1});
            if !stream {
                guard.finish();
                let mut msg = json!({"role": "assistant", "content": a.text});
                if let Some(r) = &a.reasoning {
                    msg["reasoning_content"] = json!(r);
                }
                return HttpResponse::Ok().json(json!({
                    "id": "sim-1", "object": "chat.completion", "created": 1, "model": model,
                    "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}], "usage": usage,
                }));
            }
            let mut frames: Vec<(Duration, Bytes)> = Vec::new();
            let mut first = state.scale(a.first_after);
            if let Some(r) = &a.reasoning {
                frames.push((first, chunk(&model, json!({"role": "assistant", "reasoning_content": r}), None, None)));
                first = Duration::ZERO;
            }
            for (i, p) in pieces(&a.text, a.chunks).into_iter().enumerate() {
                let mut wait = if i == 0 { first } else { state.scale(a.gap) };
                if let Some((at, extra)) = a.pause {
                    if at == i {
                        wait += state.scale(extra);
                    }
                }
                frames.push((wait, chunk(&model, json!({"content": p}), None, None)));
            }
            frames.push((Duration::ZERO, chunk(&model, json!({}), Some("stop"), Some(usage))));
            frames.push((Duration::ZERO, Bytes::from_static(b"data: [DONE]\n\n")));
            HttpResponse::Ok().content_type("text/event-stream").streaming(paced(frames, guard, false))
        }
        Reply::Cut { chunks, gap } => {
            let frames: Vec<(Duration, Bytes)> = (0..chunks)
                .map(|i| (state.scale(gap), chunk(&model, json!({"content": format!("part{i} ")}), None, None)))
                .collect();
            HttpResponse::Ok().content_type("text/event-stream").streaming(paced(frames, guard, true))
        }
    }
}

/// The frames, each after its wait; with `cut`, an error after the last one (the connection
/// is dropped mid-stream).
fn paced(
    frames: Vec<(Duration, Bytes)>,
    guard: InFlight,
    cut: bool,
) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> {
    let frames: VecDeque<(Duration, Bytes)> = frames.into();
    futures_util::stream::unfold((frames, guard, cut), |(mut frames, mut guard, cut)| async move {
        match frames.pop_front() {
            Some((wait, bytes)) => {
                actix_rt::time::sleep(wait).await;
                if frames.is_empty() && !cut {
                    guard.finish();
                }
                Some((Ok(bytes), (frames, guard, cut)))
            }
            None if cut => {
                // Let the last chunk reach the socket before the connection drops.
                actix_rt::time::sleep(Duration::from_millis(50)).await;
                Some((Err(actix_web::error::ErrorInternalServerError("cut")), (frames, guard, false)))
            }
            None => None,
        }
    })
}
