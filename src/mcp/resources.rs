//! What an assistant reads rather than calls: MCP resources (each device profile as
//! markdown at `gattway://profiles/{name}`) and prompts for common tasks.

use rmcp::model::{
    ErrorData, GetPromptResult, Prompt, PromptArgument, PromptMessage, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate, Role,
};
use serde_json::{Map, Value};

use super::BleMcp;

pub const PROFILES: &str = "gattway://profiles/";
pub const COLLECTIONS: &str = "gattway://collections/";

impl BleMcp {
    /// Every resource: the profiles, and the recordings the caller may see.
    pub(super) fn resources(&self) -> Vec<Resource> {
        let profiles = (self.settings.profiles.all().iter()).map(|p| {
            Resource::new(format!("{PROFILES}{}", p.name), p.name.clone())
                .with_title(p.title.clone())
                .with_description(format!("Device profile: {}", p.title))
                .with_mime_type("text/markdown")
        });
        let collections = (self.settings.collections.list().into_iter())
            .filter(|c| self.may_see(&c.device, None))
            .map(|c| {
                Resource::new(c.resource(), c.id.clone())
                    .with_title(format!("Recording {} of {}", c.id, c.device))
                    .with_description("Recorded notifications: JSON with statistics, and CSV")
                    .with_mime_type("application/json")
            });
        profiles.chain(collections).collect()
    }

    pub(super) fn resource_templates(&self) -> Vec<ResourceTemplate> {
        vec![
            ResourceTemplate::new(format!("{PROFILES}{{name}}"), "profile")
                .with_title("Device profile")
                .with_description("What a device speaks: services, commands for device_command, a guide")
                .with_mime_type("text/markdown"),
            ResourceTemplate::new(format!("{COLLECTIONS}{{id}}"), "collection")
                .with_title("Recording")
                .with_description(
                    "Notifications recorded by ble_collect_start: JSON with statistics, and CSV",
                )
                .with_mime_type("application/json"),
        ]
    }

    pub(super) fn read(&self, uri: &str) -> Result<ReadResourceResult, ErrorData> {
        if let Some(name) = uri.strip_prefix(PROFILES) {
            if let Some(p) = self.settings.profiles.get(name) {
                return Ok(ReadResourceResult::new(vec![ResourceContents::text(
                    p.to_markdown(),
                    uri,
                )
                .with_mime_type("text/markdown")]));
            }
        }
        if let Some(id) = uri.strip_prefix(COLLECTIONS) {
            let found = (self.settings.collections.get(id)).filter(|c| self.may_see(&c.device, None));
            if let Some(c) = found {
                let json = serde_json::to_string_pretty(&c.to_json()).unwrap_or_default();
                return Ok(ReadResourceResult::new(vec![
                    ResourceContents::text(json, uri).with_mime_type("application/json"),
                    ResourceContents::text(c.to_csv(), format!("{uri}.csv")).with_mime_type("text/csv"),
                ]));
            }
        }
        Err(ErrorData::resource_not_found(
            format!("no resource {uri}; resources/list lists them"),
            None,
        ))
    }

    pub(super) fn prompts() -> Vec<Prompt> {
        let device = PromptArgument::new("device")
            .with_description("the device's id or name")
            .with_required(true);
        vec![
            Prompt::new(
                "explore_device",
                Some("Find out what a BLE device is and what it can do"),
                Some(vec![device.clone()]),
            ),
            Prompt::new(
                "log_sensor",
                Some("Record a sensor's values for some minutes and summarise them"),
                Some(vec![
                    device,
                    PromptArgument::new("characteristic")
                        .with_description("the characteristic to record, e.g. 2a37 (heart rate)")
                        .with_required(true),
                    PromptArgument::new("minutes")
                        .with_description("how long to record (default 5)")
                        .with_required(false),
                ]),
            ),
        ]
    }

    pub(super) fn prompt(name: &str, args: &Map<String, Value>) -> Result<GetPromptResult, ErrorData> {
        let arg = |key: &str| {
            args.get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let need = |key: &str| {
            arg(key).ok_or_else(|| {
                ErrorData::invalid_params(format!("prompt {name} needs the argument {key}"), None)
            })
        };
        let text = match name {
            "explore_device" => {
                let device = need("device")?;
                format!(
                    "Explore the Bluetooth LE device \"{device}\" through gattway. Scan (ble_scan) if it \
                     has not been seen, connect (ble_connect), and list its GATT services (ble_services). \
                     Call ble_profile to see whether gattway knows its protocol; if it does, read the \
                     profile's guide and try its harmless commands (versions, battery) with \
                     device_command. Read every readable characteristic and say what each value means \
                     (standard ones come back decoded). Do not write to it unless I ask. Finish with a \
                     short summary: what the device is, what it measures or does, and how to use it."
                )
            }
            "log_sensor" => {
                let device = need("device")?;
                let characteristic = need("characteristic")?;
                let minutes: f64 = match arg("minutes") {
                    None => 5.0,
                    Some(m) => m.parse().map_err(|_| {
                        ErrorData::invalid_params(format!("minutes must be a number, not {m:?}"), None)
                    })?,
                };
                format!(
                    "Record the values of characteristic {characteristic} of \"{device}\" for {minutes} \
                     minutes with gattway: connect it (ble_connect), start a collection with \
                     ble_collect_start (device, characteristics [\"{characteristic}\"], duration {secs} \
                     seconds), wait, then read the collection's JSON resource (or ble_collect_list) for \
                     its summary: count, min, max, mean, rate and gaps. Tell me what the values did over \
                     the period and anything unusual (gaps, outliers).",
                    secs = (minutes * 60.0).round()
                )
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!("no prompt {other}; prompts/list lists them"),
                    None,
                ))
            }
        };
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            text,
        )]))
    }
}
