//! Recording for assistants: `ble_collect_start`, `ble_collect_stop` and
//! `ble_collect_list`. The data is a resource (`gattway://collections/{id}`, JSON with
//! summary statistics and CSV); see `recording.rs` for the recording itself.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{seconds_arg, uuid_arg, ToolError};
use super::recording::{Decoding, Plan};
use super::BleMcp;
use crate::ble::Uuid;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CollectStartParams {
    /// Device id or name of a connected device.
    pub device: String,
    /// Characteristics to record (UUIDs, e.g. ["2a37"]); each one's service is found
    /// in the device's GATT tree unless `service` is given.
    #[serde(default, deserialize_with = "super::lenient::string_list")]
    pub characteristics: Option<Vec<String>>,
    /// The characteristics' service, when the tree has them in several.
    pub service: Option<String>,
    /// Stop after this many seconds (default 60, at most 3600).
    #[serde(default, deserialize_with = "super::lenient::number")]
    pub duration: Option<f64>,
    /// Stop after this many notifications in all.
    #[serde(default, deserialize_with = "super::lenient::number")]
    pub count: Option<u64>,
    /// How values become numbers: "auto" (default: the SIG decoder for standard
    /// characteristics, else the device's profile), "sig", "profile" or "raw".
    pub decode: Option<String>,
    /// The profile for decode = "profile" (default: the one that matches the device).
    pub profile: Option<String>,
    /// Also store each value in the device hub as the device's telemetry, where the
    /// dashboard and history show it (needs gattway serve with its hub).
    #[serde(default, deserialize_with = "super::lenient::boolean")]
    pub to_hub: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CollectionParams {
    /// The collection's id (from ble_collect_start or ble_collect_list).
    pub id: String,
}

/// A collection's description and statistics.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CollectionOut {
    /// id, resource, device, characteristics, decode, state (recording or
    /// finished), stop_reason, samples, dropped, and per series: count, min, max,
    /// mean, rate_per_s, gaps, longest_interval_ms.
    #[serde(flatten)]
    pub summary: serde_json::Map<String, Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CollectionsOut {
    pub collections: Vec<CollectionOut>,
}

fn out(summary: Value) -> CollectionOut {
    CollectionOut {
        summary: match summary {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        },
    }
}

#[tool_router(router = collect_router, vis = "pub(super)")]
impl BleMcp {
    /// Record a device's notifications for a while: each becomes a sample (decoded
    /// numbers and the bytes). Fetch the data as the resource it names (JSON with
    /// count, min, max, mean, rate and gaps per value; CSV), or see progress with
    /// ble_collect_list.
    #[tool(annotations(
        title = "Start recording notifications",
        read_only_hint = false,
        destructive_hint = false
    ))]
    async fn ble_collect_start(
        &self,
        Parameters(p): Parameters<CollectStartParams>,
    ) -> Result<Json<CollectionOut>, String> {
        let id = self.device_arg(&p.device)?;
        let wanted = p.characteristics.unwrap_or_default();
        if wanted.is_empty() {
            return Err(ToolError(
                "argument characteristics is empty: name at least one, e.g. [\"2a37\"]".into(),
            )
            .into());
        }
        let duration = seconds_arg("duration", p.duration, 60.0, 3600.0)?;
        if duration.is_zero() {
            return Err(ToolError("argument duration must be more than 0 seconds".into()).into());
        }
        let service = p.service.as_deref().map(|s| uuid_arg("service", s)).transpose()?;
        let device = self.gateway.device(&id);
        let tree = device.services().await.map_err(ToolError::from)?;
        let mut targets: Vec<(Uuid, Uuid)> = Vec::new();
        for text in &wanted {
            let characteristic = uuid_arg("characteristics", text)?;
            let homes: Vec<Uuid> = (tree.iter())
                .filter(|s| service.is_none_or(|want| s.uuid == want))
                .filter(|s| s.characteristics.iter().any(|c| c.uuid == characteristic))
                .map(|s| s.uuid)
                .collect();
            match homes.as_slice() {
                [one] => targets.push((*one, characteristic)),
                [] => {
                    return Err(ToolError(format!(
                        "{id} has no characteristic {}{}: ble_services lists what it has",
                        characteristic.short(),
                        service
                            .map(|s| format!(" in service {}", s.short()))
                            .unwrap_or_default()
                    ))
                    .into())
                }
                several => {
                    let list: Vec<String> = several.iter().map(|s| s.short()).collect();
                    return Err(ToolError(format!(
                        "characteristic {} is in several services ({}): give `service`",
                        characteristic.short(),
                        list.join(", ")
                    ))
                    .into());
                }
            }
        }
        let decoding = self
            .decoding(&id, p.decode.as_deref(), p.profile.as_deref(), &targets)
            .await?;
        let hub = match p.to_hub.unwrap_or(false) {
            false => None,
            true => Some(self.settings.telemetry.clone().ok_or_else(|| {
                ToolError("there is no device hub here (MCP over stdio has none): record without to_hub, or use gattway serve's /mcp".into())
            })?),
        };
        let mut subscriptions = Vec::new();
        for (service, characteristic) in &targets {
            let sub = device
                .subscribe(*service, *characteristic)
                .await
                .map_err(ToolError::from)?;
            subscriptions.push(((*service, *characteristic), sub));
        }
        let collection = self
            .settings
            .collections
            .start(Plan {
                device: id,
                subscriptions,
                decoding,
                duration,
                count: p.count.filter(|c| *c > 0),
                hub,
            })
            .map_err(ToolError)?;
        Ok(Json(out(collection.summary())))
    }

    /// Stop a recording now; returns its statistics. The data stays readable.
    #[tool(annotations(
        title = "Stop recording",
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = true
    ))]
    async fn ble_collect_stop(
        &self,
        Parameters(p): Parameters<CollectionParams>,
    ) -> Result<Json<CollectionOut>, String> {
        let collection = self.collection(&p.id)?;
        collection.stop();
        Ok(Json(out(collection.summary())))
    }

    /// Every recording (running and finished) with its statistics so far.
    #[tool(annotations(title = "List recordings", read_only_hint = true))]
    async fn ble_collect_list(&self) -> Result<Json<CollectionsOut>, String> {
        let collections = (self.settings.collections.list().iter())
            .filter(|c| self.may_see(&c.device, None))
            .map(|c| out(c.summary()))
            .collect();
        Ok(Json(CollectionsOut { collections }))
    }
}

impl BleMcp {
    fn collection(&self, id: &str) -> Result<std::sync::Arc<super::recording::Collection>, ToolError> {
        self.settings
            .collections
            .get(id.trim())
            .filter(|c| self.may_see(&c.device, None))
            .ok_or_else(|| ToolError(format!("no collection {id:?}: ble_collect_list lists them")))
    }

    /// The decoding asked for; `auto` is the SIG decoder when every characteristic
    /// is standard, else the device's profile, else bytes only.
    async fn decoding(
        &self,
        id: &crate::ble::DeviceId,
        decode: Option<&str>,
        profile: Option<&str>,
        targets: &[(Uuid, Uuid)],
    ) -> Result<Decoding, ToolError> {
        match decode.map(|d| d.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "auto") => {
                if targets.iter().all(|(_, c)| c.name().is_some()) {
                    return Ok(Decoding::Sig);
                }
                let profile = self.decoding_profile(id, profile).await?;
                Ok(profile.map(Decoding::Profile).unwrap_or(Decoding::Raw))
            }
            Some("sig") => Ok(Decoding::Sig),
            Some("raw") => Ok(Decoding::Raw),
            Some("profile") => {
                let profile = self.decoding_profile(id, profile).await?;
                profile.map(Decoding::Profile).ok_or_else(|| {
                    ToolError(format!(
                        "no profile with messages matches {id}: name one in `profile`"
                    ))
                })
            }
            Some(other) => Err(ToolError(format!(
                "decode {other:?} is not one of auto, sig, profile, raw"
            ))),
        }
    }

    /// The profile that decodes a recording: the one named, else the first matching
    /// the device that knows messages (or error frames) to read.
    async fn decoding_profile(
        &self,
        id: &crate::ble::DeviceId,
        named: Option<&str>,
    ) -> Result<Option<std::sync::Arc<crate::profiles::Profile>>, ToolError> {
        if let Some(name) = named {
            return (self.settings.profiles.get(name).cloned())
                .map(Some)
                .ok_or_else(|| ToolError(format!("no profile is named {name:?}")));
        }
        Ok(
            (self.profiles_for(id).await.into_iter())
                .find(|p| !p.messages.is_empty() || !p.errors.is_empty()),
        )
    }
}
