//! The direct baseline for the open loop: the same schedule as plain HTTP POSTs to the
//! provider endpoint (the mock) with the same client stack (awc), one request at a time per
//! keep-alive connection; calls due while the connection is busy wait in its queue, and that
//! wait counts, as it would for the gateway.

use super::open_loop::{leftovers, Ctx};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

async fn post(client: &awc::Client, url: &str, body: &str) -> bool {
    let sent = client.post(url).insert_header(("content-type", "application/json")).send_body(body.to_string()).await;
    match sent {
        Ok(mut r) => {
            let ok = r.status().is_success();
            r.body().await.is_ok() && ok
        }
        Err(_) => false,
    }
}

/// One keep-alive connection working through its queue until the pacer is done (each request
/// is bounded by a 30 s timeout; the drain limit does not apply).
pub(crate) async fn http_conn(url: String, body: String, mut rx: UnboundedReceiver<u64>, ctx: Arc<Ctx>) {
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    while let Some(seq) = rx.recv().await {
        ctx.sent(seq);
        let ok = post(&client, &url, &body).await;
        ctx.reply(seq, ok);
    }
    ctx.lost(leftovers(&mut rx));
}
