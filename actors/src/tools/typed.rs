//! Typed tools: a tool whose arguments are a struct and whose result is a struct, both with
//! JSON Schemas derived by `schemars` (2020-12, the MCP default) instead of a hand-written
//! schema over `Map<String, Value>`.
//!
//! [`TypedTool`] is what such a tool implements; [`Typed`] adapts it to [`Tool`]: its
//! `inputSchema` is the schema of `Args` (the registry validates against it, so a bad argument
//! is still a `VALIDATION_ERROR` naming the field), the validated map is deserialized into
//! `Args`, and the `Output` is rendered as `structuredContent` (and its pretty JSON as the text
//! block), which satisfies the published `outputSchema` by construction.

use super::{Tool, ToolContext, ToolKind, ToolOutput, ToolSpec};
use crate::error::ToolError;
use futures_util::future::LocalBoxFuture;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

/// A tool with typed arguments and a typed result.
pub trait TypedTool: Send + Sync + 'static {
    /// The arguments object.
    type Args: DeserializeOwned + JsonSchema;
    /// The structured result.
    type Output: Serialize + JsonSchema;
    /// Run with deserialized arguments.
    fn run(&self, ctx: ToolContext, args: Self::Args) -> LocalBoxFuture<'static, Result<Self::Output, ToolError>>;
}

/// The JSON Schema of `T` as a JSON value.
pub fn schema_of<T: JsonSchema>() -> Value {
    schemars::schema_for!(T).to_value()
}

/// A [`TypedTool`] as a [`Tool`].
pub struct Typed<T: TypedTool> {
    tool: T,
    spec: ToolSpec,
    output_schema: Value,
}

impl<T: TypedTool> Typed<T> {
    /// Wrap `tool` under `name` with `description`.
    pub fn new(tool: T, name: &str, description: &str, kind: ToolKind, read_only: bool) -> Typed<T> {
        let spec = ToolSpec {
            name: name.into(),
            title: None,
            description: description.into(),
            input_schema: schema_of::<T::Args>(),
            kind,
            read_only,
        };
        Typed { tool, spec, output_schema: schema_of::<T::Output>() }
    }
}

impl<T: TypedTool> Tool for Typed<T> {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn output_schema(&self) -> Option<&Value> {
        Some(&self.output_schema)
    }

    fn call(
        &self,
        ctx: ToolContext,
        args: Map<String, Value>,
    ) -> LocalBoxFuture<'static, Result<ToolOutput, ToolError>> {
        let args: T::Args = match serde_json::from_value(Value::Object(args)) {
            Ok(a) => a,
            Err(e) => {
                let err = ToolError::InvalidArguments { field: "arguments".into(), message: e.to_string() };
                return Box::pin(async move { Err(err) });
            }
        };
        let fut = self.tool.run(ctx, args);
        Box::pin(async move {
            let out = fut.await?;
            let v =
                serde_json::to_value(&out).map_err(|e| ToolError::Internal(format!("rendering the result: {e}")))?;
            Ok(ToolOutput::json(v))
        })
    }
}
