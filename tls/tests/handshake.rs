//! Handshakes between keel's TLS configurations over real loopback TCP: who gets in.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use keel_tls::config::{ClientAuth, client_config, pinned_client_config, server_config};
use keel_tls::{ClusterCa, Credentials, Identity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn new_ca() -> (tempfile::TempDir, ClusterCa) {
    let dir = tempfile::tempdir().unwrap();
    let ca = ClusterCa::load_or_create(dir.path()).unwrap();
    (dir, ca)
}

fn credentials(ca: &ClusterCa, who: &Identity, chain_ca: bool) -> Arc<Credentials> {
    let (cert, key) = ca.issue_with_key(who, DAY).unwrap();
    let chain = if chain_ca {
        format!("{cert}{}", ca.cert_pem())
    } else {
        cert
    };
    Credentials::from_pem(&chain, &key).unwrap()
}

/// Serves one connection under `server`; returns whether `client` got an echo back.
async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    name: &Identity,
) -> Result<Option<Identity>, String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = tokio_rustls::TlsAcceptor::from(server)
            .accept(tcp)
            .await
            .ok()?;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first().cloned())
            .and_then(|c| Identity::of_certificate(&c));
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.ok()?;
        tls.write_all(&buf).await.ok()?;
        tls.flush().await.ok()?;
        Some(peer)
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let outcome = async {
        let mut tls = tokio_rustls::TlsConnector::from(client)
            .connect(name.server_name().unwrap(), tcp)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    }
    .await;
    let peer = served.await.unwrap();
    outcome?;
    peer.ok_or_else(|| "the server refused".to_string())
}

#[tokio::test]
async fn only_certificates_from_the_cluster_ca_get_in() {
    let (_d, ca) = new_ca();
    let (_d2, other) = new_ca();
    let node = Identity::Node("n1".into());
    let server = server_config(
        ca.cert_der(),
        credentials(&ca, &node, false),
        ClientAuth::Required,
    )
    .unwrap();

    let cp = client_config(
        ca.cert_der(),
        Some(credentials(&ca, &Identity::ControlPlane, false)),
    )
    .unwrap();
    let peer = handshake(server.clone(), cp.clone(), &node).await.unwrap();
    assert_eq!(peer, Some(Identity::ControlPlane));

    // No client certificate.
    let anonymous = client_config(ca.cert_der(), None).unwrap();
    assert!(handshake(server.clone(), anonymous, &node).await.is_err());

    // A certificate from another CA.
    let stranger = client_config(
        ca.cert_der(),
        Some(credentials(&other, &Identity::ControlPlane, false)),
    )
    .unwrap();
    assert!(handshake(server.clone(), stranger, &node).await.is_err());

    // An expired certificate from the right CA.
    let key = rcgen::KeyPair::generate().unwrap();
    let now = SystemTime::now();
    let expired = ca
        .issue_between(&Identity::ControlPlane, &key, now - 2 * DAY, now - DAY)
        .unwrap();
    let expired = Credentials::from_pem(&expired, &key.serialize_pem()).unwrap();
    let late = client_config(ca.cert_der(), Some(expired)).unwrap();
    assert!(handshake(server.clone(), late, &node).await.is_err());

    // Dialing node n2's name reaches n1's certificate: the client refuses.
    let err = handshake(server, cp, &Identity::Node("n2".into()))
        .await
        .unwrap_err();
    assert!(err.contains("certificate"), "{err}");
}

#[tokio::test]
async fn a_join_trusts_only_the_pinned_ca() {
    let (_d, ca) = new_ca();
    let (_d2, other) = new_ca();
    let cp = Identity::ControlPlane;
    let server = server_config(
        ca.cert_der(),
        credentials(&ca, &cp, true),
        ClientAuth::Optional,
    )
    .unwrap();
    let pinned = pinned_client_config(&ca.fingerprint()).unwrap();
    assert_eq!(handshake(server.clone(), pinned, &cp).await.unwrap(), None);

    let wrong = pinned_client_config(&other.fingerprint()).unwrap();
    let err = handshake(server, wrong, &cp).await.unwrap_err();
    assert!(err.contains("fingerprint"), "{err}");

    // A server of another CA that sends our CA along is still refused.
    let impostor = server_config(
        other.cert_der(),
        {
            let (cert, key) = other.issue_with_key(&cp, DAY).unwrap();
            Credentials::from_pem(&format!("{cert}{}", ca.cert_pem()), &key).unwrap()
        },
        ClientAuth::Optional,
    )
    .unwrap();
    let pinned = pinned_client_config(&ca.fingerprint()).unwrap();
    assert!(handshake(impostor, pinned, &cp).await.is_err());
}

#[test]
fn a_signing_request_gets_the_name_the_ca_chooses() {
    let (_d, ca) = new_ca();
    let (key, csr) = keel_tls::ca::new_key_and_request().unwrap();
    let cert = ca
        .sign_request(&csr, &Identity::Node("web-1".into()), DAY)
        .unwrap();
    let creds = Credentials::from_pem(&cert, &key).unwrap();
    assert_eq!(
        Identity::of_certificate(&creds.leaf()),
        Some(Identity::Node("web-1".into()))
    );
    let (from, until) = creds.validity().unwrap();
    assert!((until - from - DAY.as_secs() as i64 - 300).abs() < 5);
    assert!(
        ca.sign_request(b"not a request", &Identity::ControlPlane, DAY)
            .is_err()
    );
}

#[test]
fn the_ca_is_kept_and_its_key_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let first = ClusterCa::load_or_create(dir.path()).unwrap();
    let again = ClusterCa::load_or_create(dir.path()).unwrap();
    assert_eq!(first.fingerprint(), again.fingerprint());
    let mode = std::fs::metadata(dir.path().join("ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::remove_file(dir.path().join("ca.key")).unwrap();
    let err = ClusterCa::load_or_create(dir.path())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("ca.key is missing"), "{err}");
}
