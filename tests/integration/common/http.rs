//! Small HTTP helpers over awc for the observability tests: GET/POST with optional bearer
//! token and extra headers, returning status, headers and body text.

use std::time::Duration;

/// A finished HTTP exchange.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not). A Streamable HTTP answer
    /// may come as an event stream when the client accepts both: its last `data:` line
    /// holding JSON is the message.
    pub fn json(&self) -> serde_json::Value {
        if let Ok(v) = serde_json::from_str(&self.body) {
            return v;
        }
        self.body
            .lines()
            .rev()
            .filter_map(|l| l.strip_prefix("data:"))
            .find_map(|d| serde_json::from_str(d.trim()).ok())
            .unwrap_or_else(|| panic!("not JSON and no JSON event: {}", self.body))
    }

    /// A response header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn client() -> awc::Client {
    awc::Client::builder().timeout(Duration::from_secs(20)).finish()
}

async fn finish(
    mut resp: awc::ClientResponse<
        impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    >,
) -> Reply {
    let status = resp.status().as_u16();
    let headers =
        resp.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let body = String::from_utf8(resp.body().limit(16 << 20).await.unwrap().to_vec()).unwrap();
    Reply { status, headers, body }
}

/// GET `url` with extra headers.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = client().get(url);
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    finish(req.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"))).await
}

/// POST `body` (JSON) to `url` with extra headers.
pub async fn post_json(url: &str, body: &serde_json::Value, headers: &[(&str, &str)]) -> Reply {
    let mut req = client().post(url).insert_header(("content-type", "application/json"));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    finish(req.send_body(body.to_string()).await.unwrap_or_else(|e| panic!("POST {url}: {e}"))).await
}
