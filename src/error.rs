//! What kind of failure an error is, whichever layer raised it. Every layer's
//! error type says its [`ErrorKind`] (`kind()`); each front end turns a kind into
//! its own wire code in one `match`, so no front end matches another layer's
//! variants or, worse, the strings of their codes. A new kind fails to compile in
//! the control protocol (`control::protocol::code`) until it is given a code
//! there; front ends whose wire has one code for "anything else" (the bridge's
//! `gatt_connection_failed`, ESPHome's ESP_GATT_ERROR) say so with a `_` arm.

/// The kinds of failure a caller can act on differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A value the caller sent is out of range, malformed or unstorable.
    InvalidInput,
    /// No such device.
    DeviceNotFound,
    /// A name prefix matches several devices.
    Ambiguous,
    /// The device has no such service. The three kinds of missing attribute are
    /// apart because callers act on them apart: the bridge closes with a code of
    /// its own for each, an assistant is pointed at a different listing.
    ServiceNotFound,
    /// The service has no such characteristic.
    CharacteristicNotFound,
    /// The characteristic has no such descriptor.
    DescriptorNotFound,
    /// The attribute does not allow the operation (no write property, say).
    NotPermitted,
    /// The value is longer than the attribute takes.
    ValueTooLong,
    NotConnected,
    /// Another client holds the device (a lease).
    Busy,
    /// The gateway holds as many links as it may, each of them leased.
    ConnectionLimit,
    /// Every radio's connection slots are taken.
    NoFreeSlot,
    /// The radio (adapter, proxy) is not there or not powered.
    RadioUnavailable,
    ConnectFailed,
    /// The link dropped during the operation.
    LinkLost,
    Timeout,
    ShuttingDown,
    /// No lease with that token.
    InvalidLease,
    /// The radio failed in a way it does not classify.
    Radio,
    /// No credential, where one is needed.
    NotAuthenticated,
    /// An API key nobody configured.
    InvalidApiKey,
    /// A token that is malformed, not yet valid, or for another audience or issuer.
    InvalidToken,
    /// The credential expired.
    Expired,
    /// The credential may not do this (a scope, a device list).
    Forbidden,
    RateLimited,
    TooLarge,
    /// A bounded queue is full; the caller should wait and try again.
    QueueFull,
    /// No such command (or it belongs to another device).
    UnknownCommand,
    /// The command is already final, or moved on elsewhere.
    CommandClosed,
    /// The store failed; nothing was acknowledged.
    Store,
}

impl ErrorKind {
    /// A stable snake_case name, for metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::DeviceNotFound => "device_not_found",
            ErrorKind::Ambiguous => "ambiguous",
            ErrorKind::ServiceNotFound => "service_not_found",
            ErrorKind::CharacteristicNotFound => "characteristic_not_found",
            ErrorKind::DescriptorNotFound => "descriptor_not_found",
            ErrorKind::NotPermitted => "not_permitted",
            ErrorKind::ValueTooLong => "value_too_long",
            ErrorKind::NotConnected => "not_connected",
            ErrorKind::Busy => "busy",
            ErrorKind::ConnectionLimit => "connection_limit",
            ErrorKind::NoFreeSlot => "no_free_slot",
            ErrorKind::RadioUnavailable => "radio_unavailable",
            ErrorKind::ConnectFailed => "connect_failed",
            ErrorKind::LinkLost => "link_lost",
            ErrorKind::Timeout => "timeout",
            ErrorKind::ShuttingDown => "shutting_down",
            ErrorKind::InvalidLease => "invalid_lease",
            ErrorKind::Radio => "radio_error",
            ErrorKind::NotAuthenticated => "not_authenticated",
            ErrorKind::InvalidApiKey => "invalid_api_key",
            ErrorKind::InvalidToken => "invalid_token",
            ErrorKind::Expired => "expired",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::QueueFull => "queue_full",
            ErrorKind::UnknownCommand => "unknown_command",
            ErrorKind::CommandClosed => "command_closed",
            ErrorKind::Store => "store_error",
        }
    }
}
