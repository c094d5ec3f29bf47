//! Per-session portal secrets: an unguessable random secret created at each sign-in, carried
//! by the "Sign out" web clip's URL (`$DEVICE.portal_session`) and by the portal cookie of
//! the web app where the person signed in. Everything about the signed-in person (their name,
//! progress, sign-out) needs it; the device's portal token alone only reaches the sign-in form.
//! It ends with the session (sign-out, a new sign-in, re-enrollment), so an earlier person's
//! copy of a URL or cookie is useless. Stored both ways: [`SESSION_TO_DEVICE`] and
//! [`DEVICE_TO_SESSION`]. Secrets: never logged.

use baton_proto::EnrollmentId;
use baton_store::{Collection, Keyspace, KeyspaceBatch, StoreError};

/// The device attribute the secret is exposed as in templates (only while someone is signed in).
pub const PORTAL_SESSION_ATTRIBUTE: &str = "portal_session";
/// Keyspace collection: secret -> device id.
pub const SESSION_TO_DEVICE: &str = "portal_session_device";
/// Keyspace collection: device id -> secret.
pub const DEVICE_TO_SESSION: &str = "device_portal_session";

/// A fresh secret (the same shape as a portal token: 32 random bytes, URL-safe base64).
pub fn new_secret() -> Result<String, openssl::error::ErrorStack> {
    super::portal_token::new_token()
}

/// The secret of the device's current session, if someone is signed in.
pub fn secret_of(
    store: &dyn Keyspace,
    device: &EnrollmentId,
) -> Result<Option<String>, StoreError> {
    Ok(store
        .get(
            &Collection::new(DEVICE_TO_SESSION)?,
            device.as_str().as_bytes(),
        )?
        .and_then(|v| String::from_utf8(v).ok()))
}

/// The device whose current session has `secret`.
pub fn device_of(store: &dyn Keyspace, secret: &str) -> Result<Option<EnrollmentId>, StoreError> {
    if secret.is_empty() || secret.len() > 128 {
        return Ok(None);
    }
    Ok(store
        .get(&Collection::new(SESSION_TO_DEVICE)?, secret.as_bytes())?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| EnrollmentId::parse(&s).ok()))
}

/// True when `presented` is the secret of the device's current session (compared by their
/// SHA-256, so the comparison's time says nothing about the secret).
pub fn is_current(
    store: &dyn Keyspace,
    device: &EnrollmentId,
    presented: &str,
) -> Result<bool, StoreError> {
    Ok(secret_of(store, device)?.is_some_and(|current| {
        openssl::sha::sha256(current.as_bytes()) == openssl::sha::sha256(presented.as_bytes())
    }))
}

/// Adds to `batch` the writes that start a session with `secret` on `device` (ending the
/// previous one's secret).
pub fn start(
    store: &dyn Keyspace,
    batch: &mut KeyspaceBatch,
    device: &EnrollmentId,
    secret: &str,
) -> Result<(), StoreError> {
    end(store, batch, device)?;
    batch.put(
        &Collection::new(SESSION_TO_DEVICE)?,
        secret.as_bytes(),
        device.as_str().as_bytes(),
    );
    batch.put(
        &Collection::new(DEVICE_TO_SESSION)?,
        device.as_str().as_bytes(),
        secret.as_bytes(),
    );
    Ok(())
}

/// Adds to `batch` the writes that end the device's session secret, if any.
pub fn end(
    store: &dyn Keyspace,
    batch: &mut KeyspaceBatch,
    device: &EnrollmentId,
) -> Result<(), StoreError> {
    if let Some(old) = secret_of(store, device)? {
        batch.delete(&Collection::new(SESSION_TO_DEVICE)?, old.as_bytes());
    }
    batch.delete(
        &Collection::new(DEVICE_TO_SESSION)?,
        device.as_str().as_bytes(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use baton_store::SledStore;

    use super::*;

    #[test]
    fn a_new_session_ends_the_old_secret() {
        let store = SledStore::temporary().unwrap();
        let device = EnrollmentId::device("UDID-1").unwrap();
        let mut batch = KeyspaceBatch::new();
        start(&store, &mut batch, &device, "first").unwrap();
        store.apply(&batch).unwrap();
        assert!(is_current(&store, &device, "first").unwrap());
        let mut batch = KeyspaceBatch::new();
        start(&store, &mut batch, &device, "second").unwrap();
        store.apply(&batch).unwrap();
        assert_eq!(device_of(&store, "first").unwrap(), None);
        assert_eq!(device_of(&store, "second").unwrap(), Some(device.clone()));
        assert!(!is_current(&store, &device, "first").unwrap());
        let mut batch = KeyspaceBatch::new();
        end(&store, &mut batch, &device).unwrap();
        store.apply(&batch).unwrap();
        assert_eq!(device_of(&store, "second").unwrap(), None);
        assert_eq!(secret_of(&store, &device).unwrap(), None);
    }
}
