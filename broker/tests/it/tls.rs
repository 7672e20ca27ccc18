//! TLS listeners: MQTT over TLS with the development certificates, client certificates, and
//! no plain MQTT on a TLS port.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use test_support::{Client, TIMEOUT, free_port, temp_dir};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::Broker;

const CONNECT: &[u8] =
    &[0x10, 0x0e, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x02, b't', b'1'];

struct Tls {
    broker: Broker,
    port: u16,
    dir: std::path::PathBuf,
}

/// A broker with its plain loopback listener and a TLS listener using fresh certificates.
fn start(client_certs: &str) -> Tls {
    let dir = temp_dir("tls");
    broker::tls::generate_dev_certs(&dir, &[]).unwrap();
    let port = free_port();
    let file = |name: &str| dir.join(name).display().to_string();
    let extra = format!(
        "[broker.listeners.secure]\naddress = \"127.0.0.1:{port}\"\nanonymous = true\n\
         tls = {{ cert = \"{}\", key = \"{}\"{client_certs} }}\n",
        file("server.pem"),
        file("server.key"),
    )
    .replace("CA", &file("ca.pem"));
    Tls { broker: Broker::start(&extra), port, dir }
}

fn connector(dir: &Path, with_client_cert: bool) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = if with_client_cert {
        let certs = CertificateDer::pem_file_iter(dir.join("client.pem")).unwrap().map(Result::unwrap).collect();
        builder.with_client_auth_cert(certs, PrivateKeyDer::from_pem_file(dir.join("client.key")).unwrap()).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    TlsConnector::from(Arc::new(config))
}

async fn read(stream: &mut (impl AsyncRead + Unpin), count: usize) -> std::io::Result<Vec<u8>> {
    let mut buffer = vec![0; count];
    tokio::time::timeout(TIMEOUT, stream.read_exact(&mut buffer)).await.expect("an answer in time")?;
    Ok(buffer)
}

/// CONNECT, CONNACK, SUBSCRIBE to "t", SUBACK, over any stream.
async fn mqtt_subscribe(stream: &mut (impl AsyncRead + AsyncWrite + Unpin)) -> std::io::Result<()> {
    stream.write_all(CONNECT).await?;
    assert_eq!(read(stream, 4).await?, [0x20, 0x02, 0x00, 0x00]);
    stream.write_all(&[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b't', 0x00]).await?;
    assert_eq!(read(stream, 5).await?, [0x90, 0x03, 0x00, 0x01, 0x00]);
    Ok(())
}

#[tokio::test]
async fn mqtt_over_tls_with_the_generated_ca_works_and_plain_tcp_to_the_tls_port_does_not() {
    let tls = start("");
    let tcp = TcpStream::connect(("127.0.0.1", tls.port)).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut stream = connector(&tls.dir, false).connect(name, tcp).await.unwrap();
    mqtt_subscribe(&mut stream).await.unwrap();

    // A message from the plain loopback listener reaches the TLS client.
    let publisher = Client::connect(tls.broker.address(), "publisher").await;
    publisher.client.publish("t", rumqttc::QoS::AtMostOnce, false, b"hi".to_vec()).await.unwrap();
    assert_eq!(read(&mut stream, 7).await.unwrap(), [0x30, 0x05, 0x00, 0x01, b't', b'h', b'i']);

    // Plain MQTT to the TLS port gets no CONNACK: the TLS server refuses and closes.
    let mut plain = TcpStream::connect(("127.0.0.1", tls.port)).await.unwrap();
    plain.write_all(CONNECT).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(TIMEOUT, plain.read_to_end(&mut answer)).await.expect("the TLS port closes").ok();
    assert!(answer.first() != Some(&0x20), "a CONNACK in plain text: {answer:02x?}");
    assert!(tls.broker.process.terminate().success());
}

#[tokio::test]
async fn a_required_client_certificate_is_checked() {
    let tls = start(", client_ca = \"CA\", require_client_cert = true");
    let name = ServerName::try_from("localhost").unwrap();

    let tcp = TcpStream::connect(("127.0.0.1", tls.port)).await.unwrap();
    let mut stream = connector(&tls.dir, true).connect(name.clone(), tcp).await.unwrap();
    mqtt_subscribe(&mut stream).await.unwrap();

    // Without a certificate: TLS 1.3 finishes the client's side of the handshake before the
    // server checks, so the refusal shows on the first read.
    let tcp = TcpStream::connect(("127.0.0.1", tls.port)).await.unwrap();
    let refused = match connector(&tls.dir, false).connect(name, tcp).await {
        Err(_) => true,
        Ok(mut stream) => mqtt_subscribe(&mut stream).await.is_err(),
    };
    assert!(refused, "a client without a certificate got through");
    assert!(tls.broker.process.terminate().success());
}
