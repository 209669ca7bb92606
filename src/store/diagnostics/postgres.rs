//! [`DiagnosticsStore`] over PostgreSQL (JSON columns are JSONB).

use async_trait::async_trait;
use exai_actors::ports::{
    AuditorObservation, DiagnosticsStore, ErrorAnalysis, ErrorInvestigation, ErrorOccurrence, ErrorQuery, ErrorUpsert,
    NewObservation, ObservationQuery, StoreError,
};
use sqlx::{Postgres, QueryBuilder, Row};

use super::{error_columns, observation_columns, occurrences};
use crate::store::error::map_sqlx;
use crate::store::postgres::PgStore;
use crate::store::rows::effective_limit;

#[async_trait]
impl DiagnosticsStore for PgStore {
    async fn record_error(&self, e: &ErrorOccurrence) -> Result<ErrorUpsert, StoreError> {
        let count = occurrences(e.count);
        let row = sqlx::query(
            "INSERT INTO error_investigations (error_hash, error_message, error_type, error_context, \
             occurrence_count, first_seen_at, last_occurrence_at, created_at) \
             VALUES ($1, $2, $3, $4::jsonb, $5, $6, $6, $6) \
             ON CONFLICT (error_hash) DO UPDATE SET \
             occurrence_count = error_investigations.occurrence_count + excluded.occurrence_count, \
             last_occurrence_at = GREATEST(error_investigations.last_occurrence_at, excluded.last_occurrence_at), \
             error_context = excluded.error_context, resolved = FALSE, resolved_at = NULL \
             RETURNING id, occurrence_count",
        )
        .bind(&e.error_hash)
        .bind(&e.message)
        .bind(&e.error_type)
        .bind(e.context.to_string())
        .bind(count)
        .bind(e.at_ms)
        .fetch_one(self.pool())
        .await
        .map_err(map_sqlx)?;
        let id: i64 = row.try_get("id").map_err(map_sqlx)?;
        let total: i64 = row.try_get("occurrence_count").map_err(map_sqlx)?;
        Ok(ErrorUpsert { id, occurrence_count: total, created: total == count })
    }

    async fn set_error_analysis(&self, id: i64, a: &ErrorAnalysis) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE error_investigations SET investigation_result = $2::jsonb, fix_recommendation = $3::jsonb, \
             model_used = $4, investigation_duration_ms = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(a.investigation.to_string())
        .bind(a.fix.as_ref().map(|f| f.to_string()))
        .bind(&a.model)
        .bind(a.duration_ms)
        .execute(self.pool())
        .await
        .map_err(map_sqlx)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("error investigation {id}")));
        }
        Ok(())
    }

    async fn list_errors(&self, q: &ErrorQuery) -> Result<Vec<ErrorInvestigation>, StoreError> {
        let mut qb = QueryBuilder::<Postgres>::new(concat!(
            "SELECT ",
            error_columns!("::text"),
            " FROM error_investigations WHERE TRUE"
        ));
        if let Some(r) = q.resolved {
            qb.push(" AND resolved = ").push_bind(r);
        }
        qb.push(" ORDER BY last_occurrence_at DESC, id DESC LIMIT ").push_bind(effective_limit(q.limit));
        let found = qb.build().fetch_all(self.pool()).await.map_err(map_sqlx)?;
        found.iter().map(super::error).collect()
    }

    async fn resolve_error(&self, id: i64, notes: Option<&str>, at_ms: i64) -> Result<ErrorInvestigation, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE error_investigations SET resolved = TRUE, resolved_at = $2, \
             resolution_notes = COALESCE($3, resolution_notes) WHERE id = $1 RETURNING ",
            error_columns!("::text")
        ))
        .bind(id)
        .bind(at_ms)
        .bind(notes)
        .fetch_optional(self.pool())
        .await
        .map_err(map_sqlx)?;
        match row {
            Some(r) => super::error(&r),
            None => Err(StoreError::NotFound(format!("error investigation {id}"))),
        }
    }

    async fn add_observation(&self, o: &NewObservation) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO auditor_observations (tool_call_ref, observation, severity, category, \
             confidence, recommendation, model_used, created_at, metadata) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb) RETURNING id",
        )
        .bind(&o.tool_call_ref)
        .bind(&o.observation)
        .bind(&o.severity)
        .bind(&o.category)
        .bind(o.confidence)
        .bind(&o.recommendation)
        .bind(&o.model_used)
        .bind(o.created_at_ms)
        .bind(o.metadata.to_string())
        .fetch_one(self.pool())
        .await
        .map_err(map_sqlx)
    }

    async fn list_observations(&self, q: &ObservationQuery) -> Result<Vec<AuditorObservation>, StoreError> {
        let mut qb = QueryBuilder::<Postgres>::new(concat!(
            "SELECT ",
            observation_columns!("::text"),
            " FROM auditor_observations WHERE TRUE"
        ));
        if let Some(a) = q.acknowledged {
            qb.push(" AND acknowledged = ").push_bind(a);
        }
        qb.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(effective_limit(q.limit));
        let found = qb.build().fetch_all(self.pool()).await.map_err(map_sqlx)?;
        found.iter().map(super::observation).collect()
    }

    async fn acknowledge_observation(
        &self,
        id: i64,
        by: Option<&str>,
        at_ms: i64,
    ) -> Result<AuditorObservation, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE auditor_observations SET acknowledged = TRUE, \
             acknowledged_at = COALESCE(acknowledged_at, $2), \
             acknowledged_by = CASE WHEN acknowledged THEN acknowledged_by ELSE $3 END \
             WHERE id = $1 RETURNING ",
            observation_columns!("::text")
        ))
        .bind(id)
        .bind(at_ms)
        .bind(by)
        .fetch_optional(self.pool())
        .await
        .map_err(map_sqlx)?;
        match row {
            Some(r) => super::observation(&r),
            None => Err(StoreError::NotFound(format!("auditor observation {id}"))),
        }
    }
}
