//! A command as a client asks for it, over `/hub` or REST, checked and turned into
//! the `queued` record the router stores first.

use serde_json::Value;

use super::error::HubError;
use crate::store::{check_json, check_text, now_ms, CommandRecord, CommandStatus};

/// A command as a client asks for it, over `/hub` or REST.
pub struct CommandRequest {
    pub device: String,
    pub name: String,
    pub params: Option<Value>,
    /// Seconds from `sent` to a final result.
    pub timeout: Option<f64>,
    pub priority: Option<i32>,
    /// Seconds it may wait `queued`.
    pub ttl: Option<f64>,
}

/// Seconds from a request, within bounds, or the default, in ms.
fn seconds(v: Option<f64>, default: f64, max: f64, name: &str) -> Result<i64, HubError> {
    let s = v.unwrap_or(default);
    if !(s.is_finite() && s > 0.0 && s <= max) {
        return Err(HubError::invalid(format!(
            "{name} is seconds, more than 0 and at most {max}"
        )));
    }
    Ok((s * 1000.0) as i64)
}

impl CommandRequest {
    /// Checks the request and makes the `queued` command, with the configured
    /// defaults for what it leaves out.
    pub fn into_record(
        self,
        config: &super::HubConfig,
        issued_by: Option<String>,
    ) -> Result<CommandRecord, HubError> {
        if self.name.is_empty() || self.name.len() > 100 {
            return Err(HubError::invalid("a command name is 1 to 100 characters"));
        }
        check_text("a command name", &self.name)?;
        super::accept::device_id(&self.device)?;
        if let Some(params) = &self.params {
            check_json("params", params)?;
        }
        let timeout_ms = seconds(self.timeout, config.command_timeout_secs, 86_400.0, "timeout")?;
        let ttl_ms = seconds(self.ttl, config.command_ttl_secs, 30.0 * 86_400.0, "ttl")?;
        let now = now_ms();
        Ok(CommandRecord {
            id: uuid::Uuid::new_v4().to_string(),
            device: self.device,
            name: self.name,
            params: self.params.unwrap_or_else(|| serde_json::json!({})),
            priority: self.priority.unwrap_or(0),
            status: CommandStatus::Queued,
            result: None,
            error: None,
            issued_by,
            timeout_ms,
            created_at: now,
            updated_at: now,
            expires_at: now + ttl_ms,
            deadline: None,
        })
    }
}
