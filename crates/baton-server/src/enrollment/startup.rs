//! Enrollment's part of server start-up, kept out of [`crate::server`]: the SCEP service on the
//! store-backed registry and challenge store, the server's CA-issued TLS certificate with its
//! renewal task, and the enrollment routes (`/scep`, `/mdm/enroll`, `/mdm/trust`) with the
//! identity-renewal task.

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
use super::server_certificate::{self, IssuedByBuiltInCa, ServerCertificateError};
use super::store_challenge::StoreChallengeStore;
use super::store_registry::StoreCertificateRegistry;
use super::{enroll_route, renewal};
use crate::config::ServerConfig;
use crate::state::AppState;
use crate::tls::rotation::Rotation;
use crate::tls::{RotatingCertificate, SelfSigned, TlsError, TlsIdentity};

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

/// The server's certificate for the generated-certificate transport, and the task renewing it
/// while the server runs: issued by the built-in CA when there is one, else self-signed (made
/// on first start, kept in `<data>/tls/`).
pub fn server_certificate(
    config: &ServerConfig,
    hosts: &[String],
    scep: Option<&ScepState>,
    rotation: &Rotation,
    now: SystemTime,
) -> Result<(Arc<RotatingCertificate>, JoinHandle<()>), ServerCertificateError> {
    let validity = config.tls.certificate_validity;
    match scep {
        Some(scep) => {
            let ca = scep.service().ca();
            let registry = scep.service().registry();
            let identity = server_certificate::load_or_issue(
                &config.data_dir,
                hosts,
                ca,
                registry.as_ref(),
                validity,
                now,
            )?;
            let source = IssuedByBuiltInCa::new(
                &config.data_dir,
                hosts,
                Arc::clone(ca),
                Arc::clone(registry),
                validity,
            );
            Ok(rotation.start(identity, source)?)
        }
        None => {
            let dir = config.data_dir.join(server_certificate::TLS_DIR);
            let cert = dir.join(crate::tls::SERVER_CERT_FILE);
            let key = dir.join(crate::tls::SERVER_KEY_FILE);
            let identity = if cert.exists() && key.exists() {
                TlsIdentity::from_pem_files(&cert, &key)?
            } else {
                TlsIdentity::generate_self_signed(&config.data_dir, hosts, validity, now)?
            };
            let source = SelfSigned::new(&config.data_dir, hosts, validity);
            Ok(rotation.start(identity, source)?)
        }
    }
}

/// The enrollment routes (`/scep`, `/mdm/enroll`, `/mdm/trust`) and the identity-renewal task
/// (pushed onto `tasks`). Without a built-in CA there are none. `tls` is the certificate the
/// listener serves: its root goes into the profiles, and it signs them when configured.
pub fn routes(
    scep: Option<ScepState>,
    tls: Option<&Arc<RotatingCertificate>>,
    config: &ServerConfig,
    state: &AppState,
    stop: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<Router, TlsError> {
    let Some(scep) = scep else {
        return Ok(Router::new());
    };
    let ca = scep.service().ca();
    // Decided at start: a renewal by the built-in CA keeps the root; operator files that change
    // from a private to a public chain (or back) take effect in profiles at the next start.
    let root = tls
        .map(|t| private_root(t.current().identity(), ca))
        .transpose()?
        .flatten();
    let signer = match (config.enrollment.sign_profile, tls) {
        (true, Some(t)) => Some(ProfileSigner::new(Arc::clone(t))),
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
        root,
        signer,
    ));
    tasks.push(tokio::spawn(renewal::run(
        Arc::clone(&profiles),
        Arc::clone(state),
        stop.clone(),
    )));
    if config.open_enrollment {
        tracing::warn!(
            "open enrollment: anyone who reaches this server can download an enrollment profile \
             and enroll a device without an enrollment token"
        );
    }
    let route = enroll_route::EnrollRoute::new(
        profiles,
        state.enrollment_tokens.clone(),
        config.open_enrollment,
    );
    Ok(super::router(scep).merge(enroll_route::router(route)))
}
