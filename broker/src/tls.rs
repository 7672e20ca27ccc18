//! TLS for listeners: rustls (TLS 1.2 and 1.3, optional or required client certificates),
//! terminated by busgate's accept loops ([`crate::listen`]), and development certificates.
//!
//! rumqttd 0.20 can serve TLS itself, but it runs each TLS handshake inside its accept loop
//! (one client that never finishes its handshake stops the listener), and it verifies client
//! certificates only when built with a feature that makes them mandatory on every TLS
//! listener and turns the certificate's organization into a tenant prefix. busgate runs each
//! handshake in the client's own task with the connect timeout.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

/// Why a TLS listener or the development certificates could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("client CA {}: {message}", path.display())]
    ClientCa { path: PathBuf, message: String },
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
}

fn file_error(path: &Path, message: impl ToString) -> TlsError {
    TlsError::File { path: path.to_owned(), message: message.to_string() }
}

/// The acceptor for a listener's certificates: TLS 1.2 or 1.3 only, with the ring provider.
pub fn acceptor(tls: &board::Tls) -> Result<TlsAcceptor, TlsError> {
    let certs = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(|error| file_error(&tls.cert, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| file_error(&tls.cert, error))?;
    if certs.is_empty() {
        return Err(file_error(&tls.cert, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|error| file_error(&tls.key, error))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(|error| file_error(path, error))? {
                let cert = cert.map_err(|error| file_error(path, error))?;
                roots
                    .add(cert)
                    .map_err(|error| TlsError::ClientCa { path: path.clone(), message: error.to_string() })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if tls.require_client_cert { verifier } else { verifier.allow_unauthenticated() };
            let verifier = verifier
                .build()
                .map_err(|error| TlsError::ClientCa { path: path.clone(), message: error.to_string() })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The client configuration for the uplink: the upstream broker's certificate must chain to
/// one of `tls.ca`'s certificates; TLS 1.2 or 1.3, ring provider.
pub fn uplink_config(tls: &board::UplinkTls) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&tls.ca).map_err(|error| file_error(&tls.ca, error))? {
        let cert = cert.map_err(|error| file_error(&tls.ca, error))?;
        // A system bundle holds certificates rustls cannot use; skip those, as browsers do.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(file_error(&tls.ca, "no usable CA certificate in the file"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots);
    let config = match &tls.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|error| file_error(cert, error))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| file_error(cert, error))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|error| file_error(key, error))?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    Ok(Arc::new(config))
}

/// Writes a development CA, a server certificate for `hosts` (plus localhost and 127.0.0.1)
/// and a client certificate into `dir`: `ca.pem`, `server.pem`, `server.key`, `client.pem`,
/// `client.key` (keys mode 0600). For testing and development only: the CA key is not kept.
pub fn generate_dev_certs(dir: &Path, hosts: &[String]) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(|error| file_error(dir, error))?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "busgate development CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    names.extend(hosts.iter().cloned());
    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(names)?;
    server.distinguished_name.push(DnType::CommonName, "busgate broker");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer)?;

    let client_key = KeyPair::generate()?;
    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client.distinguished_name.push(DnType::CommonName, "busgate client");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer)?;

    write(dir, "ca.pem", &ca_cert.pem(), 0o644)?;
    write(dir, "server.pem", &server_cert.pem(), 0o644)?;
    write(dir, "server.key", &server_key.serialize_pem(), 0o600)?;
    write(dir, "client.pem", &client_cert.pem(), 0o644)?;
    write(dir, "client.key", &client_key.serialize_pem(), 0o600)?;
    Ok(())
}

fn write(dir: &Path, name: &str, text: &str, mode: u32) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&path)
        .map_err(|error| file_error(&path, error))?;
    io::Write::write_all(&mut file, text.as_bytes()).map_err(|error| file_error(&path, error))
}
