//! Capturing what a real device sends, for fixtures: `baton serve --capture-device-requests DIR`.
//!
//! Off by default. When on, the first `max_requests` device requests (`/mdm/checkin`,
//! `/mdm/connect` and SCEP `PKIOperation`) are written to `DIR` exactly as received, before any
//! parsing: the body, the raw `Mdm-Signature` header, and a small JSON file with the method, path,
//! query, content type, user agent, the answer's status and the time. This is how the first real
//! iPhone's BER signature, SCEP request and check-in messages become the project's fixtures
//! (docs/operations.md, "The first real iPhone"). The files hold device secrets (a TokenUpdate
//! carries the push token, PushMagic and perhaps an UnlockToken): they are written mode 0600 and
//! must be reviewed before anything leaves the machine.
//!
//! Not here: redaction, or capturing anything after the limit (the counter never resets while the
//! server runs).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;

/// Largest body captured (device bodies are smaller; larger ones are passed on uncaptured).
const MAX_CAPTURED_BODY: usize = 4 * 1024 * 1024;

/// Where and how much to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSettings {
    /// The directory the files go to (created if missing, mode 0700).
    pub dir: PathBuf,
    /// How many requests to capture before stopping.
    pub max_requests: usize,
}

/// The capture state shared by the middleware.
#[derive(Debug)]
pub struct DeviceCapture {
    settings: CaptureSettings,
    taken: AtomicUsize,
}

impl DeviceCapture {
    /// Prepares the directory.
    pub fn new(settings: CaptureSettings) -> std::io::Result<Arc<Self>> {
        fs::create_dir_all(&settings.dir)?;
        restrict(&settings.dir, 0o700)?;
        tracing::warn!(dir = %settings.dir.display(), max_requests = settings.max_requests,
            "capturing device requests to disk: the files hold device secrets");
        Ok(Arc::new(Self {
            settings,
            taken: AtomicUsize::new(0),
        }))
    }

    /// Requests captured so far.
    pub fn captured(&self) -> usize {
        self.taken
            .load(Ordering::Relaxed)
            .min(self.settings.max_requests)
    }

    /// Reserves the next sequence number, or `None` once the limit is reached.
    fn reserve(&self) -> Option<usize> {
        let n = self.taken.fetch_add(1, Ordering::Relaxed);
        (n < self.settings.max_requests).then_some(n + 1)
    }
}

/// Which requests are device traffic worth capturing, and their short name.
fn endpoint(request: &Request) -> Option<&'static str> {
    match request.uri().path() {
        "/mdm/checkin" => Some("checkin"),
        "/mdm/connect" => Some("connect"),
        "/scep"
            if request
                .uri()
                .query()
                .is_some_and(|q| q.contains("operation=PKIOperation")) =>
        {
            Some("scep")
        }
        _ => None,
    }
}

/// Middleware: captures matching requests as received, then passes them on unchanged.
pub async fn record(
    State(capture): State<Arc<DeviceCapture>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(name) = endpoint(&request) else {
        return next.run(request).await;
    };
    let Some(seq) = capture.reserve() else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_CAPTURED_BODY).await else {
        // Too large or broken: the route's own limits answer it; nothing to pass on.
        return next.run(Request::from_parts(parts, Body::empty())).await;
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let signature = header("mdm-signature");
    let meta = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "content_type": header("content-type"),
        "user_agent": header("user-agent"),
        "received_at_unix_ms": SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis()),
    });
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes.clone())))
        .await;
    let status = response.status().as_u16();
    let dir = capture.settings.dir.clone();
    let written = tokio::task::spawn_blocking(move || {
        write_capture(&dir, seq, name, &bytes, signature.as_deref(), meta, status)
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, seq, "capturing a device request failed"),
        Err(error) => tracing::warn!(%error, seq, "capturing a device request failed"),
    }
    response
}

fn write_capture(
    dir: &Path,
    seq: usize,
    name: &str,
    body: &Bytes,
    signature: Option<&str>,
    mut meta: serde_json::Value,
    status: u16,
) -> std::io::Result<()> {
    let stem = format!("{seq:04}-{name}");
    write_private(&dir.join(format!("{stem}.body")), body)?;
    if let Some(signature) = signature {
        write_private(
            &dir.join(format!("{stem}.mdm-signature")),
            signature.as_bytes(),
        )?;
    }
    meta["status"] = status.into();
    let text = serde_json::to_vec_pretty(&meta).map_err(std::io::Error::other)?;
    write_private(&dir.join(format!("{stem}.json")), &text)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::File::create(path)?;
    restrict(path, 0o600)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let capture = DeviceCapture::new(CaptureSettings {
            dir: dir.path().join("capture"),
            max_requests: 2,
        })
        .unwrap();
        assert_eq!(capture.reserve(), Some(1));
        assert_eq!(capture.reserve(), Some(2));
        assert_eq!(capture.reserve(), None);
        assert_eq!(capture.captured(), 2);
    }
}
