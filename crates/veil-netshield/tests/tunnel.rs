#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::PublicKeyData;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use veil_attest::{Tee, Time};
use veil_ca::{issue_attested_cert, AttestedSubject, CaIdentity};
use veil_netshield::*;

const DAY: u64 = 86_400;
const MEASUREMENT: [u8; 48] = [0x3c; 48];

struct Creds {
    der: Vec<u8>,
    key: Vec<u8>,
}

impl Creds {
    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from(self.der.clone())]
    }
    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()))
    }
    fn source(&self) -> Arc<CertSource> {
        CertSource::new(self.chain(), self.key()).unwrap()
    }
}

fn ca(name: &str) -> CaIdentity {
    CaIdentity::generate(name, 365, Time::from_unix(Time::now().unix() - DAY)).unwrap()
}

fn issue_at(ca: &CaIdentity, session: &str, service: &str, nb: Time, na: Time) -> Creds {
    let kp = rcgen::KeyPair::generate().unwrap();
    let subject = AttestedSubject {
        session: session.into(),
        service: service.into(),
        tee: Tee::Sim,
        measurement: MEASUREMENT.to_vec(),
        dns: vec!["localhost".into()],
        ips: vec![],
    };
    let der = issue_attested_cert(ca, &kp.subject_public_key_info(), &subject, nb, na).unwrap();
    Creds {
        der,
        key: kp.serialize_der(),
    }
}

fn issue(ca: &CaIdentity, session: &str, service: &str) -> Creds {
    let now = Time::now().unix();
    issue_at(
        ca,
        session,
        service,
        Time::from_unix(now - 60),
        Time::from_unix(now + DAY),
    )
}

/// Session "shop" with services db (server) and api (client); session
/// "other" with a service api.
struct World {
    shop: CaIdentity,
    db: Creds,
    api: Creds,
    other_api: Creds,
}

fn world() -> World {
    let shop = ca("shop session CA");
    let other = ca("other session CA");
    World {
        db: issue(&shop, "shop", "db"),
        api: issue(&shop, "shop", "api"),
        other_api: issue(&other, "other", "api"),
        shop,
    }
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// A plaintext echo server; counts the connections it accepted.
async fn echo_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    (addr, count)
}

fn client_rule(w: &World) -> PeerRule {
    PeerRule::new(w.shop.cert_der())
        .unwrap()
        .session("shop")
        .service("api")
}

fn server_rule(w: &World) -> PeerRule {
    PeerRule::new(w.shop.cert_der())
        .unwrap()
        .session("shop")
        .service("db")
        .measurement_hex(&hex::encode(MEASUREMENT))
        .unwrap()
}

fn fast() -> Limits {
    Limits::new(Duration::from_secs(5), 64)
}

async fn inbound_to(w: &World, backend: SocketAddr, limits: Limits) -> Tunnel {
    let config =
        server_config(w.db.source(), ClientAuth::Required(client_rule(w)), vec![]).unwrap();
    inbound(listener().await, backend, config, limits).unwrap()
}

async fn outbound_to(client: &Creds, rule: PeerRule, remote: SocketAddr) -> Tunnel {
    let config = client_config(client.source(), rule, vec![]).unwrap();
    outbound(listener().await, remote, "db.shop", config, fast()).unwrap()
}

/// Sends a line and reads until EOF or error (5 s at most): what came back.
async fn probe(addr: SocketAddr) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(b"ping\n").await;
    let mut got = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
    assert!(r.is_ok(), "connection was not closed");
    got
}

async fn echo_once(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    let mut buf = vec![0; msg.len()];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(buf, msg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_through_both_tunnels_large_payload_and_half_close() {
    let w = world();
    let (backend, count) = echo_server().await;
    let inb = inbound_to(&w, backend, fast()).await;
    let out = outbound_to(&w.api, server_rule(&w), inb.local_addr()).await;

    let data: Arc<Vec<u8>> = Arc::new(
        (0..8usize << 20)
            .map(|i| (i.wrapping_mul(31) ^ (i >> 11)) as u8)
            .collect(),
    );
    let s = TcpStream::connect(out.local_addr()).await.unwrap();
    let (mut r, mut wr) = s.into_split();
    let d = data.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(&d).await.unwrap();
        // Half-close: no more data from us, but keep reading.
        wr.shutdown().await.unwrap();
        wr
    });
    let mut got = Vec::with_capacity(data.len());
    tokio::time::timeout(Duration::from_secs(60), r.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    let _wr = writer.await.unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == *data, "echo differs");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn plaintext_client_on_tls_port_fails() {
    let w = world();
    let (backend, count) = echo_server().await;
    let inb = inbound_to(&w, backend, fast()).await;
    let got = probe(inb.local_addr()).await;
    assert!(!got.windows(4).any(|x| x == b"ping"), "plaintext echoed");
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn client_from_another_session_refused() {
    let w = world();
    let (backend, count) = echo_server().await;
    let inb = inbound_to(&w, backend, fast()).await;
    let out = outbound_to(&w.other_api, server_rule(&w), inb.local_addr()).await;
    assert!(probe(out.local_addr()).await.is_empty());
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn client_for_wrong_service_refused() {
    let w = world();
    let worker = issue(&w.shop, "shop", "worker");
    let (backend, count) = echo_server().await;
    let inb = inbound_to(&w, backend, fast()).await;
    let out = outbound_to(&worker, server_rule(&w), inb.local_addr()).await;
    assert!(probe(out.local_addr()).await.is_empty());
    assert_eq!(count.load(Ordering::SeqCst), 0);

    // Without the service pin, the same certificate gets through.
    let config = server_config(
        w.db.source(),
        ClientAuth::Required(PeerRule::new(w.shop.cert_der()).unwrap().session("shop")),
        vec![],
    )
    .unwrap();
    let open = inbound(listener().await, backend, config, fast()).unwrap();
    let out = outbound_to(&worker, server_rule(&w), open.local_addr()).await;
    let mut s = TcpStream::connect(out.local_addr()).await.unwrap();
    echo_once(&mut s, b"hello").await;
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn expired_client_certificate_refused() {
    let w = world();
    let now = Time::now().unix();
    let expired = issue_at(
        &w.shop,
        "shop",
        "api",
        Time::from_unix(now - 2 * DAY),
        Time::from_unix(now - DAY),
    );
    let (backend, count) = echo_server().await;
    let inb = inbound_to(&w, backend, fast()).await;
    let out = outbound_to(&expired, server_rule(&w), inb.local_addr()).await;
    assert!(probe(out.local_addr()).await.is_empty());
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unexpected_server_refused_by_outbound() {
    let w = world();
    let (backend, count) = echo_server().await;
    let inb = inbound_to(&w, backend, fast()).await;
    // The outbound side expects the service "cache"; the server is "db".
    let rule = PeerRule::new(w.shop.cert_der())
        .unwrap()
        .session("shop")
        .service("cache");
    let out = outbound_to(&w.api, rule, inb.local_addr()).await;
    assert!(probe(out.local_addr()).await.is_empty());
    // A server of another session is refused as well.
    let other_ca = ca("third CA");
    let rule = PeerRule::new(other_ca.cert_der()).unwrap();
    let out = outbound_to(&w.api, rule, inb.local_addr()).await;
    assert!(probe(out.local_addr()).await.is_empty());
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn client_auth_none_accepts_anonymous_tls_clients() {
    let w = world();
    let (backend, _count) = echo_server().await;
    let config = server_config(w.db.source(), ClientAuth::DangerNone, vec![]).unwrap();
    let inb = inbound(listener().await, backend, config, fast()).unwrap();
    // A TLS client without a client certificate.
    let cc = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates({
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from(w.shop.cert_der().to_vec()))
                .unwrap();
            roots
        })
        .with_no_client_auth();
    let tcp = TcpStream::connect(inb.local_addr()).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cc))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"anon").await.unwrap();
    let mut buf = [0; 4];
    tls.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"anon");
}

#[tokio::test]
async fn connection_limit_closes_excess_connections() {
    let w = world();
    let (backend, _count) = echo_server().await;
    let inb = inbound_to(&w, backend, Limits::new(Duration::from_secs(5), 1)).await;
    let out = outbound_to(&w.api, server_rule(&w), inb.local_addr()).await;

    let mut first = TcpStream::connect(out.local_addr()).await.unwrap();
    echo_once(&mut first, b"first").await;
    assert_eq!(inb.active_connections(), 1);
    assert!(probe(out.local_addr()).await.is_empty());

    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    while inb.active_connections() > 0 {
        assert!(Instant::now() < deadline, "permit not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut third = TcpStream::connect(out.local_addr()).await.unwrap();
    echo_once(&mut third, b"third").await;
}

#[tokio::test]
async fn handshake_timeout_closes_silent_client() {
    let w = world();
    let (backend, count) = echo_server().await;
    let inb = inbound_to(&w, backend, Limits::new(Duration::from_millis(300), 8)).await;
    let start = Instant::now();
    let mut s = TcpStream::connect(inb.local_addr()).await.unwrap();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "silent client not closed");
    assert!(start.elapsed() >= Duration::from_millis(250));
    assert!(buf.is_empty());
    assert_eq!(inb.active_connections(), 0);
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn renewal_keeps_old_connections_and_serves_new_certificate() {
    let w = world();
    let (backend, _count) = echo_server().await;
    let source = w.db.source();
    let config = server_config(
        source.clone(),
        ClientAuth::Required(client_rule(&w)),
        vec![b"redis".to_vec()],
    )
    .unwrap();
    let inb = inbound(listener().await, backend, config, fast()).unwrap();
    let cc = client_config(w.api.source(), server_rule(&w), vec![b"redis".to_vec()]).unwrap();
    let connector = tokio_rustls::TlsConnector::from(cc);
    let connect = || async {
        let tcp = TcpStream::connect(inb.local_addr()).await.unwrap();
        connector
            .connect(ServerName::try_from("db.shop").unwrap(), tcp)
            .await
            .unwrap()
    };
    let peer = |s: &tokio_rustls::client::TlsStream<TcpStream>| {
        s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    };

    let mut old = connect().await;
    assert_eq!(peer(&old), w.db.der);
    assert_eq!(old.get_ref().1.alpn_protocol(), Some(&b"redis"[..]));
    old.write_all(b"before").await.unwrap();
    let mut buf = [0; 6];
    old.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"before");

    let renewed = issue(&w.shop, "shop", "db");
    source.replace(renewed.chain(), renewed.key()).unwrap();
    assert_eq!(source.current_cert(), renewed.der);
    // A mismatched pair is refused and the current one kept.
    assert!(source.replace(renewed.chain(), w.db.key()).is_err());
    assert_eq!(source.current_cert(), renewed.der);

    old.write_all(b"during").await.unwrap();
    old.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"during");

    let mut new = connect().await;
    assert_eq!(peer(&new), renewed.der);
    new.write_all(b"after!").await.unwrap();
    new.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"after!");
}

#[tokio::test]
async fn graceful_shutdown_lets_open_connections_finish() {
    let w = world();
    let (backend, _count) = echo_server().await;
    let inb = inbound_to(&w, backend, fast()).await;
    let addr = inb.local_addr();
    let out = outbound_to(&w.api, server_rule(&w), addr).await;
    let mut s = TcpStream::connect(out.local_addr()).await.unwrap();
    echo_once(&mut s, b"one").await;

    let stopping = tokio::spawn(inb.shutdown(Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    echo_once(&mut s, b"two").await;
    assert!(!stopping.is_finished());
    drop(s);
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("shutdown waits only for open connections")
        .unwrap();
}

#[tokio::test]
async fn shutdown_deadline_closes_lingering_connections() {
    let w = world();
    let (backend, _count) = echo_server().await;
    let inb = inbound_to(&w, backend, fast()).await;
    let out = outbound_to(&w.api, server_rule(&w), inb.local_addr()).await;
    let mut s = TcpStream::connect(out.local_addr()).await.unwrap();
    echo_once(&mut s, b"one").await;
    let start = Instant::now();
    inb.shutdown(Duration::from_millis(200)).await;
    assert!(start.elapsed() < Duration::from_secs(3));
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(r.is_ok(), "connection not closed at the deadline");
}

#[test]
fn peer_rule_denials_name_the_check() {
    let w = world();
    let at = Time::now();
    let leaf = &w.api.der;
    let base = || PeerRule::new(w.shop.cert_der()).unwrap();
    let cert = base().check(leaf, at).unwrap();
    assert_eq!(cert.subject.service, "api");

    assert_eq!(
        base().session("prod").check(leaf, at).unwrap_err(),
        Denial::Session {
            expected: "prod".into(),
            found: "shop".into()
        }
    );
    assert_eq!(
        base().service("db").check(leaf, at).unwrap_err(),
        Denial::Service {
            expected: "db".into(),
            found: "api".into()
        }
    );
    let d = base().measurement_hex("00ff").unwrap().check(leaf, at);
    assert_eq!(
        d.unwrap_err(),
        Denial::Measurement {
            expected: "00ff".into(),
            found: hex::encode(MEASUREMENT)
        }
    );
    assert!(matches!(
        base().check(&w.other_api.der, at),
        Err(Denial::Certificate(_))
    ));
    let later = Time::from_unix(at.unix() + 2 * DAY);
    assert!(matches!(
        base().check(leaf, later),
        Err(Denial::Certificate(veil_ca::CaError::Expired { .. }))
    ));
    assert!(base().measurement_hex("zz").is_err());
    assert!(PeerRule::new(b"junk".to_vec()).is_err());
}

/// The server's handshake error for a client presenting `client`.
async fn server_side_error(w: &World, client: &Creds) -> String {
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    let sc = server_config(w.db.source(), ClientAuth::Required(client_rule(w)), vec![]).unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        match tokio_rustls::TlsAcceptor::from(sc).accept(tcp).await {
            Ok(_) => "accepted".to_owned(),
            Err(e) => e.to_string(),
        }
    });
    let cc = client_config(client.source(), server_rule(w), vec![]).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    if let Ok(mut tls) = tokio_rustls::TlsConnector::from(cc)
        .connect(ServerName::try_from("db.shop").unwrap(), tcp)
        .await
    {
        let mut buf = Vec::new();
        let _ = tls.read_to_end(&mut buf).await;
    }
    server.await.unwrap()
}

#[tokio::test]
async fn server_refusals_name_the_reason() {
    let w = world();
    assert_eq!(server_side_error(&w, &w.api).await, "accepted");
    let e = server_side_error(&w, &w.other_api).await;
    assert!(e.contains("UnknownIssuer"), "{e}");
    let worker = issue(&w.shop, "shop", "worker");
    let e = server_side_error(&w, &worker).await;
    assert!(
        e.contains(r#"Service { expected: "api", found: "worker" }"#),
        "{e}"
    );
    let now = Time::now().unix();
    let expired = issue_at(
        &w.shop,
        "shop",
        "api",
        Time::from_unix(now - 2 * DAY),
        Time::from_unix(now - DAY),
    );
    let e = server_side_error(&w, &expired).await;
    assert!(e.contains("Expired"), "{e}");
}
