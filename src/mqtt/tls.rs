//! TLS to the broker (`mqtts://`): rustls with the `ring` provider, trusting the
//! system's roots, or only the CA(s) in `mqtt.ca_file`.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use super::MqttError;

/// The client's TLS settings: roots from `ca_file` (PEM), or the system's.
pub fn client_config(ca_file: &str) -> Result<Arc<ClientConfig>, MqttError> {
    let mut roots = RootCertStore::empty();
    if ca_file.trim().is_empty() {
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            // A system certificate rustls cannot parse is skipped, as browsers do.
            let _ = roots.add(cert);
        }
    } else {
        let certs = CertificateDer::pem_file_iter(ca_file.trim())
            .map_err(|e| MqttError::Tls(format!("mqtt.ca_file {ca_file}: {e}")))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| MqttError::Tls(format!("mqtt.ca_file {ca_file}: {e}")))?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| MqttError::Tls(format!("mqtt.ca_file {ca_file}: {e}")))?;
        }
    }
    if roots.is_empty() {
        return Err(MqttError::Tls(if ca_file.trim().is_empty() {
            "no system root certificates found: set mqtt.ca_file".into()
        } else {
            format!("mqtt.ca_file {ca_file} holds no certificate")
        }));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
