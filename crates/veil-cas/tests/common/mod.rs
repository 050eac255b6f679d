//! An in-process CAS on loopback for the integration tests: started with a
//! fresh state directory, stopped on demand, with pinned clients and the
//! dev CAS's own sim platform key.

#![allow(dead_code)] // each test file uses part of it

use std::path::{Path, PathBuf};
use std::time::Duration;

use veil_attest::Time;
use veil_attest_sim::SimPlatformKey;
use veil_ca::Identity;
use veil_client::{CasClient, ClientIdentity, Trust};

pub struct Cas {
    pub url: String,
    pub pin: [u8; 32],
    pub state: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub async fn start(state: &Path) -> Cas {
    let config = veil_cas::ServeConfig {
        state_dir: state.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        dev: true,
        trust_sim_keys: vec![],
        nonce_ttl: Duration::from_secs(60),
        launcher_cert_validity: veil_cas::LAUNCHER_CERT_VALIDITY,
    };
    let bound = veil_cas::bind(&config).await.unwrap();
    let url = format!("https://{}", bound.addr);
    let mut pin = [0u8; 32];
    hex::decode_to_slice(bound.fingerprint.as_ref().unwrap(), &mut pin).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        bound
            .serve(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Cas {
        url,
        pin,
        state: state.to_owned(),
        stop: Some(tx),
        task: Some(task),
    }
}

impl Cas {
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    pub fn client(&self, id: Option<&Identity>) -> CasClient {
        let identity = id.map(|id| ClientIdentity {
            chain: vec![id.cert_der()],
            key: id.key_der(),
        });
        CasClient::new(&self.url, Trust::Pinned(self.pin), identity).unwrap()
    }

    pub fn sim_key(&self) -> SimPlatformKey {
        let pem = std::fs::read(self.state.join("sim/platform.key")).unwrap();
        SimPlatformKey::from_pem(&pem).unwrap()
    }
}

pub fn identity() -> Identity {
    Identity::generate("test owner", Time::now()).unwrap()
}
