//! Device knowledge for assistants: `ble_profile` (what a device speaks, from the
//! profiles that match it) and `device_command` (one tool for every profile command:
//! the request built from typed parameters, written, the answer awaited and parsed
//! into named fields). One tool for all commands, not one per command: clients cap
//! their tool lists.

use std::sync::Arc;

use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{seconds_arg, ToolError};
use super::types::DeviceParams;
use super::BleMcp;
use crate::ble::{DeviceId, WriteKind};
use crate::gateway::SubscriptionEvent;
use crate::profiles::{DeviceTraits, Profile};

#[tool_router(router = profiles_router, vis = "pub(super)")]
impl BleMcp {
    /// What a device speaks: the profiles that match it (by name, services and
    /// manufacturer), each with its guide, services, and the commands device_command
    /// runs. Read this before driving an unfamiliar device.
    #[tool(annotations(title = "Device profile", read_only_hint = true))]
    async fn ble_profile(
        &self,
        Parameters(p): Parameters<DeviceParams>,
    ) -> Result<Json<ProfilesResult>, String> {
        let id = self.device_arg(&p.device)?;
        let profiles = self.profiles_for(&id).await;
        if profiles.is_empty() {
            return Err(ToolError(format!(
                "no profile matches {id}; explore it with ble_services instead (profiles: {})",
                self.profile_names()
            ))
            .into());
        }
        Ok(Json(ProfilesResult {
            device: id.to_string(),
            profiles: profiles.iter().map(|p| ProfileOut::from(p.as_ref())).collect(),
        }))
    }

    /// Run a command of the device's profile: gattway builds the frame from `params`,
    /// writes it, waits for the answer and returns its fields with units. The
    /// commands are listed by ble_profile (and in the gattway://profiles resources).
    #[tool(annotations(
        title = "Run a device command",
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = false
    ))]
    async fn device_command(
        &self,
        Parameters(p): Parameters<DeviceCommandParams>,
    ) -> Result<Json<DeviceCommandResult>, String> {
        let id = self.device_arg(&p.device)?;
        if !self.gateway.connections().iter().any(|c| c.id == id) {
            return Err(ToolError(format!(
                "device {id} is not connected: call ble_connect first (device_command talks over the link)"
            ))
            .into());
        }
        let profile = self
            .profile_with_command(&id, p.profile.as_deref(), &p.command)
            .await?;
        // `check` made sure a profile with commands has a channel.
        let Some(channel) = profile.channel.clone() else {
            return Err(ToolError(format!("profile {} has no command channel", profile.name)).into());
        };
        self.check_write_allowed(channel.write)?;
        let command = profile
            .command(&p.command)
            .ok_or_else(|| ToolError(format!("profile {} has no command {}", profile.name, p.command)))?;
        let request = profile
            .request(command, &p.params.unwrap_or_default())
            .map_err(|e| ToolError(format!("{e}; ble_profile shows the command's parameters")))?;
        let default_wait = command.timeout_ms.map(|ms| ms as f64 / 1000.0).unwrap_or(5.0);
        let wait = seconds_arg("timeout", p.timeout, default_wait, 60.0)?;
        let device = self.gateway.device(&id);
        let kind = if channel.with_response {
            WriteKind::WithResponse
        } else {
            WriteKind::WithoutResponse
        };
        let (Some(pattern), Some(notify)) = (&command.answer, channel.notify) else {
            device
                .write(channel.service, channel.write, request.clone(), kind)
                .await
                .map_err(ToolError::from)?;
            return Ok(Json(DeviceCommandResult {
                device: id.to_string(),
                profile: profile.name.clone(),
                command: command.name.clone(),
                request: hex::encode(&request),
                answer: None,
                fields: Map::new(),
            }));
        };
        // Subscribed before writing, so a quick answer is not missed.
        let mut answers = device
            .subscribe(channel.service, notify)
            .await
            .map_err(ToolError::from)?;
        device
            .write(channel.service, channel.write, request.clone(), kind)
            .await
            .map_err(ToolError::from)?;
        let answer = tokio::time::timeout(wait, async {
            while let Some(event) = answers.recv().await {
                let SubscriptionEvent::Notification(n) = event else {
                    continue;
                };
                if let Some((error, fields)) = profile.error_in(&n.value) {
                    return Err(ToolError(format!(
                        "{id} answered with {} ({}): {}",
                        error.name,
                        hex::encode(&n.value),
                        Value::Object(fields.unwrap_or_default())
                    )));
                }
                if pattern.matches(&n.value) {
                    return Ok(n.value);
                }
            }
            Err(ToolError(format!("{id} disconnected before it answered")))
        })
        .await
        .map_err(|_| {
            ToolError(format!(
                "{id} did not answer {} within {:.1} s (request {})",
                command.name,
                wait.as_secs_f64(),
                hex::encode(&request)
            ))
        })??;
        profile
            .frame
            .check_answer(&answer)
            .map_err(|why| ToolError(format!("the answer {} is damaged: {why}", hex::encode(&answer))))?;
        let fields = crate::profiles::frame::read_fields(&command.fields, &answer).map_err(ToolError)?;
        Ok(Json(DeviceCommandResult {
            device: id.to_string(),
            profile: profile.name.clone(),
            command: command.name.clone(),
            request: hex::encode(&request),
            answer: Some(hex::encode(&answer)),
            fields,
        }))
    }
}

impl BleMcp {
    /// The profiles matching what the gateway knows of a device: its advertised
    /// name, services (GATT ones too once connected) and manufacturer ids.
    pub(super) async fn profiles_for(&self, id: &DeviceId) -> Vec<Arc<Profile>> {
        let known = self.gateway.known_devices().into_iter().find(|d| &d.id == id);
        let connected_name = (self.gateway.connections().into_iter())
            .find(|c| &c.id == id)
            .and_then(|c| c.name);
        let mut services = Vec::new();
        let mut manufacturer_ids = Vec::new();
        if let Some(d) = &known {
            services.extend(d.services.iter().copied());
            services.extend(d.service_data.keys().copied());
            manufacturer_ids.extend(d.manufacturer_data.keys().copied());
        }
        if let Ok(tree) = self.gateway.device(id).services().await {
            services.extend(tree.iter().map(|s| s.uuid));
        }
        let name = known.as_ref().and_then(|d| d.name.clone()).or(connected_name);
        let traits = DeviceTraits {
            name: name.as_deref(),
            services: &services,
            manufacturer_ids: &manufacturer_ids,
        };
        self.settings
            .profiles
            .matching(traits)
            .into_iter()
            .cloned()
            .collect()
    }

    /// The profile whose command this is: the one named, else the one matching the
    /// device that has a command of this name.
    async fn profile_with_command(
        &self,
        id: &DeviceId,
        named: Option<&str>,
        command: &str,
    ) -> Result<Arc<Profile>, ToolError> {
        if let Some(name) = named {
            let profile = self.settings.profiles.get(name).cloned().ok_or_else(|| {
                ToolError(format!(
                    "no profile is named {name:?}; there are {}",
                    self.profile_names()
                ))
            })?;
            if profile.command(command).is_none() {
                return Err(unknown_command(&profile, command));
            }
            return Ok(profile);
        }
        let matching = self.profiles_for(id).await;
        if let Some(p) = matching.iter().find(|p| p.command(command).is_some()) {
            return Ok(p.clone());
        }
        Err(match matching.iter().find(|p| !p.commands.is_empty()) {
            Some(p) => unknown_command(p, command),
            None => ToolError(format!(
                "no profile with commands matches {id}: connect it first (profiles match by its GATT \
                 services too), or name one in `profile` ({})",
                self.profile_names()
            )),
        })
    }

    fn profile_names(&self) -> String {
        let names: Vec<&str> = self
            .settings
            .profiles
            .all()
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        names.join(", ")
    }
}

fn unknown_command(profile: &Profile, command: &str) -> ToolError {
    let names: Vec<&str> = profile.commands.iter().map(|c| c.name.as_str()).collect();
    ToolError(format!(
        "profile {} has no command {command:?}; it has {}",
        profile.name,
        names.join(", ")
    ))
}

// ---------------------------------------------------------------- wire shapes

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DeviceCommandParams {
    /// Device id or name of a connected device.
    pub device: String,
    /// The command's name, as ble_profile lists it (e.g. "battery_voltage").
    pub command: String,
    /// The command's parameters by name; numbers may be given as text, "0x0706" as hex.
    #[serde(default, deserialize_with = "super::lenient::object")]
    pub params: Option<Map<String, Value>>,
    /// The profile, when several match the device (default: the one with this command).
    pub profile: Option<String>,
    /// Seconds to wait for the answer (default 5).
    #[serde(default, deserialize_with = "super::lenient::number")]
    pub timeout: Option<f64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DeviceCommandResult {
    pub device: String,
    pub profile: String,
    pub command: String,
    /// The frame written, as hex.
    pub request: String,
    /// The answer, as hex (none for a command that only writes).
    pub answer: Option<String>,
    /// The answer's fields: `{name: {value, unit}}`.
    pub fields: Map<String, Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ProfilesResult {
    pub device: String,
    pub profiles: Vec<ProfileOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ProfileOut {
    pub name: String,
    pub title: String,
    /// Where the whole profile is, as markdown.
    pub resource: String,
    pub guide: String,
    pub commands: Vec<CommandOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CommandOut {
    pub name: String,
    pub description: String,
    /// `{name: "type, range, unit: what it is"}`.
    pub params: Map<String, Value>,
}

impl From<&Profile> for ProfileOut {
    fn from(p: &Profile) -> Self {
        ProfileOut {
            name: p.name.clone(),
            title: p.title.clone(),
            resource: format!("gattway://profiles/{}", p.name),
            guide: p.guide.trim().to_string(),
            commands: (p.commands.iter())
                .map(|c| CommandOut {
                    name: c.name.clone(),
                    description: c.description.clone(),
                    params: (c.params.iter())
                        .map(|param| {
                            let mut about = format!("{:?}", param.kind).to_lowercase();
                            if let (Some(lo), Some(hi)) = (param.min, param.max) {
                                about.push_str(&format!(", {lo}..={hi}"));
                            }
                            if let Some(unit) = &param.unit {
                                about.push_str(&format!(", {unit}"));
                            }
                            if !param.description.is_empty() {
                                about.push_str(&format!(": {}", param.description));
                            }
                            (param.name.clone(), Value::from(about))
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}
