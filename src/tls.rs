//! TLS for gattway's own outgoing connections (the MQTT broker over `mqtts://`, an
//! authorisation server's JWKS over `https://`): rustls with the `ring` provider,
//! trusting the system's roots, or only the CA(s) in a PEM file the config names.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// The client's TLS settings: roots from `ca_file` (PEM; `key` is the config key
/// that named it, for messages), or the system's.
pub fn client_config(ca_file: &str, key: &str) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    if ca_file.trim().is_empty() {
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            // A system certificate rustls cannot parse is skipped, as browsers do.
            let _ = roots.add(cert);
        }
    } else {
        let certs = CertificateDer::pem_file_iter(ca_file.trim())
            .map_err(|e| format!("{key} {ca_file}: {e}"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{key} {ca_file}: {e}"))?;
        for cert in certs {
            roots.add(cert).map_err(|e| format!("{key} {ca_file}: {e}"))?;
        }
    }
    if roots.is_empty() {
        return Err(if ca_file.trim().is_empty() {
            format!("no system root certificates found: set {key}")
        } else {
            format!("{key} {ca_file} holds no certificate")
        });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
