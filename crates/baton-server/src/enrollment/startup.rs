//! Enrollment's part of server start-up, kept out of [`crate::server`]: the SCEP service on the
//! store-backed registry and challenge store, the server's CA-issued TLS certificate, and the
//! enrollment routes (`/scep`, `/mdm/enroll`) with the identity-renewal task.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use baton_store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::ca::{CaError, CertificateAuthority};
use super::challenge::ChallengePolicy;
use super::profile_issuer::{EnrollmentProfiles, ProfileSigner, private_root};
use super::scep::{ScepConfig, ScepService, ScepState};
use super::server_certificate::{self, ServerCertificateError};
use super::store_challenge::StoreChallengeStore;
use super::store_registry::StoreCertificateRegistry;
use super::{enroll_route, renewal};
use crate::config::ServerConfig;
use crate::state::AppState;
use crate::tls::{TlsError, TlsIdentity};

/// The SCEP service for `ca`, persisting issued certificates and one-time challenges in `store`.
pub fn scep_state(
    ca: Arc<CertificateAuthority>,
    store: &Arc<dyn Store>,
    config: &ServerConfig,
) -> Result<ScepState, CaError> {
    let registry = StoreCertificateRegistry::new(Arc::clone(store))?;
    let challenges = ChallengePolicy::new(
        config.scep_challenge.as_deref(),
        Arc::new(StoreChallengeStore::new(Arc::clone(store))?),
    );
    Ok(ScepState::new(ScepService::new(
        ca,
        Arc::new(registry),
        challenges,
        ScepConfig {
            device_validity: config.enrollment.device_validity,
            ..ScepConfig::default()
        },
    )))
}

/// The server's TLS identity for the generated-certificate transport: issued by the built-in CA
/// when there is one, else self-signed.
pub fn generated_tls_identity(
    config: &ServerConfig,
    hosts: &[String],
    scep: Option<&ScepState>,
    now: SystemTime,
) -> Result<TlsIdentity, ServerCertificateError> {
    match scep {
        Some(scep) => server_certificate::load_or_issue(
            &config.data_dir,
            hosts,
            scep.service().ca(),
            scep.service().registry().as_ref(),
            now,
        ),
        None => Ok(TlsIdentity::load_or_generate(&config.data_dir, hosts)?),
    }
}

/// The enrollment routes (`/scep`, `/mdm/enroll`) and the renewal task (pushed onto `tasks`).
/// Without a built-in CA there are none.
pub fn routes(
    scep: Option<ScepState>,
    tls: Option<&TlsIdentity>,
    config: &ServerConfig,
    state: &AppState,
    stop: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<Router, TlsError> {
    let Some(scep) = scep else {
        return Ok(Router::new());
    };
    let ca = scep.service().ca();
    let root = tls.map(|t| private_root(t, ca)).transpose()?.flatten();
    let signer = match (config.enrollment.sign_profile, tls) {
        (true, Some(t)) => Some(ProfileSigner::from_tls(t)?),
        (true, None) => {
            tracing::warn!(
                "enrollment profiles stay unsigned: signing needs the server's TLS identity, \
                 and this server speaks plain HTTP"
            );
            None
        }
        (false, _) => None,
    };
    let profiles = Arc::new(EnrollmentProfiles::new(
        Arc::clone(&state.store),
        Arc::clone(scep.service()),
        config.enrollment.clone(),
        &config.public_url,
        config.scep_challenge.clone(),
        root,
        signer,
    ));
    tasks.push(tokio::spawn(renewal::run(
        Arc::clone(&profiles),
        Arc::clone(state),
        stop.clone(),
    )));
    Ok(super::router(scep).merge(enroll_route::router(profiles)))
}
