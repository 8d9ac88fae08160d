//! The GATT tree and its values: `ble_services`, `ble_read`, `ble_write`,
//! `ble_read_descriptor`, `ble_write_descriptor`.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router, Json};

use super::error::{bytes_arg, uuid_arg, ToolError};
use super::types::{
    CharacteristicParams, DescriptorParams, DeviceParams, ReadResult, ServiceOut, ServicesResult,
    WriteDescriptorParams, WriteParams, WriteResult,
};
use super::BleMcp;
use crate::ble::{BleError, CharProps, GattTree, WriteKind};

#[tool_router(router = gatt_router, vis = "pub(super)")]
impl BleMcp {
    /// List a connected device's GATT tree: services, characteristics with their
    /// properties (read, write, notify, ...) and descriptors, with standard names.
    #[tool(annotations(title = "List GATT services", read_only_hint = true, idempotent_hint = true))]
    async fn ble_services(
        &self,
        Parameters(p): Parameters<DeviceParams>,
    ) -> Result<Json<ServicesResult>, String> {
        let id = self.device_arg(&p.device)?;
        let tree = self
            .gateway
            .device(&id)
            .services()
            .await
            .map_err(ToolError::from)?;
        Ok(Json(ServicesResult {
            device: id.to_string(),
            services: tree.iter().map(ServiceOut::from).collect(),
        }))
    }

    /// Read a characteristic. Returns hex, text when printable, and for standard
    /// characteristics (heart rate, battery, temperature, humidity, device
    /// information) the decoded value with its unit.
    #[tool(annotations(title = "Read a characteristic", read_only_hint = true))]
    async fn ble_read(
        &self,
        Parameters(p): Parameters<CharacteristicParams>,
    ) -> Result<Json<ReadResult>, String> {
        let (id, service, characteristic) = self.char_target(&p.device, &p.service, &p.characteristic)?;
        let bytes = self
            .gateway
            .device(&id)
            .read(service, characteristic)
            .await
            .map_err(ToolError::from)?;
        Ok(Json(ReadResult::new(&id, service, characteristic, None, &bytes)))
    }

    /// Write to a characteristic: bytes as hex in `value` ("0a1bff") or UTF-8 in
    /// `text`. With response by default when the characteristic supports it.
    /// Writes change the device: make sure the user wants this one.
    #[tool(annotations(
        title = "Write a characteristic",
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = false
    ))]
    async fn ble_write(&self, Parameters(p): Parameters<WriteParams>) -> Result<Json<WriteResult>, String> {
        let (id, service, characteristic) = self.char_target(&p.device, &p.service, &p.characteristic)?;
        self.check_write_allowed(characteristic)?;
        let bytes = bytes_arg(p.value.as_deref(), p.text.as_deref())?;
        let device = self.gateway.device(&id);
        let with_response = match p.with_response {
            Some(w) => w,
            None => {
                let tree = device.services().await.map_err(ToolError::from)?;
                let c = tree.find_characteristic(service, characteristic).ok_or_else(|| {
                    ToolError::from(crate::gateway::GatewayError::Ble(
                        BleError::CharacteristicNotFound {
                            service,
                            characteristic,
                        },
                    ))
                })?;
                c.props.contains(CharProps::WRITE)
            }
        };
        let kind = if with_response {
            WriteKind::WithResponse
        } else {
            WriteKind::WithoutResponse
        };
        let len = bytes.len();
        device
            .write(service, characteristic, bytes, kind)
            .await
            .map_err(ToolError::from)?;
        Ok(Json(WriteResult {
            device: id.to_string(),
            characteristic: characteristic.into(),
            descriptor: None,
            bytes_written: len,
            with_response,
        }))
    }

    /// Read a descriptor (e.g. 2901 user description, 2902 notification state).
    #[tool(annotations(title = "Read a descriptor", read_only_hint = true))]
    async fn ble_read_descriptor(
        &self,
        Parameters(p): Parameters<DescriptorParams>,
    ) -> Result<Json<ReadResult>, String> {
        let (id, service, characteristic) = self.char_target(&p.device, &p.service, &p.characteristic)?;
        let descriptor = uuid_arg("descriptor", &p.descriptor)?;
        let bytes = self
            .gateway
            .device(&id)
            .read_descriptor(service, characteristic, descriptor)
            .await
            .map_err(ToolError::from)?;
        Ok(Json(ReadResult::new(
            &id,
            service,
            characteristic,
            Some(descriptor),
            &bytes,
        )))
    }

    /// Write a descriptor: hex in `value` or UTF-8 in `text`. Writes change the
    /// device: make sure the user wants this one.
    #[tool(annotations(
        title = "Write a descriptor",
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = false
    ))]
    async fn ble_write_descriptor(
        &self,
        Parameters(p): Parameters<WriteDescriptorParams>,
    ) -> Result<Json<WriteResult>, String> {
        let (id, service, characteristic) = self.char_target(&p.device, &p.service, &p.characteristic)?;
        let descriptor = uuid_arg("descriptor", &p.descriptor)?;
        self.check_write_allowed(characteristic)?;
        let bytes = bytes_arg(p.value.as_deref(), p.text.as_deref())?;
        let len = bytes.len();
        self.gateway
            .device(&id)
            .write_descriptor(service, characteristic, descriptor, bytes)
            .await
            .map_err(ToolError::from)?;
        Ok(Json(WriteResult {
            device: id.to_string(),
            characteristic: characteristic.into(),
            descriptor: Some(descriptor.into()),
            bytes_written: len,
            with_response: true,
        }))
    }
}
