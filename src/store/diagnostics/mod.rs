//! The [`DiagnosticsStore`] part of both adapters: `error_investigations` (deduplicated by
//! `error_hash` with an atomic upsert) and `auditor_observations`.
//!
//! The SQL of the two backends differs only in JSON handling (PostgreSQL casts to and from
//! JSONB) and `MAX` versus `GREATEST`, so each statement is written once per backend in
//! [`sqlite`] and [`postgres`]; rows are decoded here.
//!
//! [`DiagnosticsStore`]: exai_actors::ports::DiagnosticsStore

mod postgres;
mod sqlite;

use exai_actors::ports::{AuditorObservation, ErrorInvestigation, NewObservation, StoreError};

use super::rows::Cols;

/// Columns of `error_investigations` as [`error`] decodes them; `{j}` marks JSON columns
/// (PostgreSQL appends `::text`).
macro_rules! error_columns {
    ($j:literal) => {
        concat!(
            "id, error_hash, error_message, error_type, error_context",
            $j,
            " AS error_context, investigation_result",
            $j,
            " AS investigation_result, fix_recommendation",
            $j,
            " AS fix_recommendation, model_used, investigation_duration_ms, occurrence_count, \
             first_seen_at, last_occurrence_at, created_at, resolved, resolution_notes, resolved_at"
        )
    };
}
pub(crate) use error_columns;

/// Columns of `auditor_observations` as [`observation`] decodes them.
macro_rules! observation_columns {
    ($j:literal) => {
        concat!(
            "id, tool_call_ref, observation, severity, category, confidence, recommendation, \
             model_used, created_at, metadata",
            $j,
            " AS metadata, acknowledged, acknowledged_at, acknowledged_by"
        )
    };
}
pub(crate) use observation_columns;

/// Decode an `error_investigations` row.
pub(crate) fn error(row: &impl Cols) -> Result<ErrorInvestigation, StoreError> {
    Ok(ErrorInvestigation {
        id: row.int("id")?,
        error_hash: row.text("error_hash")?,
        error_message: row.text("error_message")?,
        error_type: row.text("error_type")?,
        error_context: row.json("error_context")?,
        investigation_result: row.opt_json("investigation_result")?,
        fix_recommendation: row.opt_json("fix_recommendation")?,
        model_used: row.opt_text("model_used")?,
        investigation_duration_ms: row.opt_int("investigation_duration_ms")?,
        occurrence_count: row.int("occurrence_count")?,
        first_seen_at_ms: row.int("first_seen_at")?,
        last_occurrence_at_ms: row.int("last_occurrence_at")?,
        created_at_ms: row.int("created_at")?,
        resolved: row.flag("resolved")?,
        resolution_notes: row.opt_text("resolution_notes")?,
        resolved_at_ms: row.opt_int("resolved_at")?,
    })
}

/// Decode an `auditor_observations` row.
pub(crate) fn observation(row: &impl Cols) -> Result<AuditorObservation, StoreError> {
    Ok(AuditorObservation {
        id: row.int("id")?,
        fields: NewObservation {
            tool_call_ref: row.opt_text("tool_call_ref")?,
            observation: row.text("observation")?,
            severity: row.text("severity")?,
            category: row.text("category")?,
            confidence: row.opt_real("confidence")?,
            recommendation: row.opt_text("recommendation")?,
            model_used: row.opt_text("model_used")?,
            created_at_ms: row.int("created_at")?,
            metadata: row.json("metadata")?,
        },
        acknowledged: row.flag("acknowledged")?,
        acknowledged_at_ms: row.opt_int("acknowledged_at")?,
        acknowledged_by: row.opt_text("acknowledged_by")?,
    })
}

/// An occurrence count as stored: at least 1.
pub(crate) fn occurrences(count: i64) -> i64 {
    count.max(1)
}
