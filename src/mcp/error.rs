//! Turns gateway errors and bad arguments into tool errors an assistant can act on:
//! what went wrong and which tool to call next. They are tool results with
//! `isError: true`, never protocol errors.

use crate::ble::{BleError, Uuid};
use crate::error::ErrorKind;
use crate::gateway::GatewayError;

/// A tool failure: the text the assistant reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError(pub String);

impl From<ToolError> for String {
    fn from(e: ToolError) -> String {
        e.0
    }
}

impl From<GatewayError> for ToolError {
    fn from(e: GatewayError) -> Self {
        ToolError(hint(&e))
    }
}

/// The error as the assistant reads it: what went wrong, and the tool to call next.
/// Keyed on the kind; the few hints that name a field of the error read it from
/// the variant.
fn hint(e: &GatewayError) -> String {
    match e.kind() {
        ErrorKind::NotConnected => format!("{e}: call ble_connect first"),
        ErrorKind::DeviceNotFound => match e {
            GatewayError::Ble(BleError::DeviceNotFound(id)) => format!(
                "device {id} not found: call ble_scan to see what is advertising, then use an id or name prefix from its result"
            ),
            _ => e.to_string(),
        },
        ErrorKind::ServiceNotFound | ErrorKind::CharacteristicNotFound => {
            format!("{e}: call ble_services to list what the device offers")
        }
        ErrorKind::DescriptorNotFound => {
            format!("{e}: ble_services lists each characteristic's descriptors")
        }
        ErrorKind::NotPermitted => {
            format!("{e}: ble_services lists each characteristic's properties")
        }
        ErrorKind::LinkLost => match e {
            GatewayError::Ble(BleError::LinkLost(id)) => format!(
                "the link to {id} was lost during the operation; gattway reconnects on its own when it can: retry, or call ble_connect"
            ),
            _ => e.to_string(),
        },
        ErrorKind::Busy => match e {
            GatewayError::Busy { holder, .. } => format!(
                "{e}; another client ({holder}) has exclusive use: wait until it releases the device"
            ),
            _ => e.to_string(),
        },
        ErrorKind::Timeout => {
            format!("{e}: the device may be out of range or busy; try again or ble_disconnect and ble_connect")
        }
        // The message says it all (an ambiguous prefix lists the candidates).
        _ => e.to_string(),
    }
}

impl From<ToolError> for rmcp::model::ErrorData {
    fn from(e: ToolError) -> Self {
        rmcp::model::ErrorData::internal_error(e.0, None)
    }
}

/// Parses a UUID argument.
pub fn uuid_arg(name: &str, value: &str) -> Result<Uuid, ToolError> {
    value
        .parse()
        .map_err(|e| ToolError(format!("argument {name}: {e}")))
}

/// The bytes of a `value` (hex) or `text` argument pair.
pub fn bytes_arg(value: Option<&str>, text: Option<&str>) -> Result<Vec<u8>, ToolError> {
    match (value, text) {
        (Some(_), Some(_)) => Err(ToolError("give either value (hex) or text, not both".into())),
        (None, None) => Err(ToolError(
            "nothing to write: give value (hex, e.g. \"0a1bff\") or text".into(),
        )),
        (None, Some(t)) => Ok(t.as_bytes().to_vec()),
        (Some(h), None) => {
            let clean: String = h
                .trim()
                .trim_start_matches("0x")
                .chars()
                .filter(|c| !c.is_whitespace() && *c != ':' && *c != '-')
                .collect();
            hex::decode(&clean).map_err(|e| {
                ToolError(format!(
                    "value {h:?} is not valid hex ({e}): write bytes as pairs of hex digits, e.g. \"0a1bff\""
                ))
            })
        }
    }
}

/// Seconds from an optional argument, bounded.
pub fn seconds_arg(
    name: &str,
    value: Option<f64>,
    default: f64,
    max: f64,
) -> Result<std::time::Duration, ToolError> {
    let s = value.unwrap_or(default);
    if !s.is_finite() || s < 0.0 {
        return Err(ToolError(format!(
            "argument {name} must be a number of seconds ≥ 0"
        )));
    }
    Ok(std::time::Duration::from_secs_f64(s.min(max)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_text_arguments() {
        assert_eq!(bytes_arg(Some("0a 1b:ff"), None).unwrap(), vec![0x0a, 0x1b, 0xff]);
        assert_eq!(bytes_arg(None, Some("hi")).unwrap(), b"hi".to_vec());
        assert!(bytes_arg(Some("0g"), None)
            .unwrap_err()
            .0
            .contains("not valid hex"));
        assert!(bytes_arg(Some("abc"), None).is_err(), "odd length");
        assert!(bytes_arg(None, None).is_err());
        assert!(bytes_arg(Some("00"), Some("x")).is_err());
    }

    #[test]
    fn errors_tell_the_assistant_what_to_do() {
        let e: ToolError = GatewayError::Ble(BleError::NotConnected("X".into())).into();
        assert_eq!(e.0, "device X is not connected: call ble_connect first");
    }
}
