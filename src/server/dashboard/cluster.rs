//! `GET /api/cluster`: the nodes of the cluster as Redis knows them (id, address, age,
//! in-flight calls, version, time since the last heartbeat). Outside cluster mode it answers
//! `{"enabled": false, "nodes": []}`; a Redis that does not answer is a 503.

use super::{check, ApiError};
use crate::server::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use exai_actors::env::now_ms;
use serde_json::json;

/// `GET /api/cluster`.
pub async fn nodes(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    check(&req, &state)?;
    let Some(cluster) = &state.cluster else {
        return Ok(HttpResponse::Ok().json(json!({ "enabled": false, "node_id": null, "nodes": [] })));
    };
    let me = cluster.node_id();
    let now = now_ms();
    let nodes = cluster.nodes().await.map_err(|e| ApiError::ClusterUnavailable(e.to_string()))?;
    let nodes: Vec<_> = nodes
        .into_iter()
        .map(|n| {
            json!({
                "id": n.id,
                "address": n.address,
                "version": n.version,
                "inflight": n.inflight,
                "started_ms": n.started_ms,
                "age_secs": (now - n.started_ms).max(0) / 1000,
                "heartbeat_age_ms": (now - n.heartbeat_ms).max(0),
                "self": n.id == me,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "enabled": true, "node_id": me, "nodes": nodes })))
}
