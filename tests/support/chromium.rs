//! A headless Chromium driven over the Chrome DevTools Protocol, so portal tests can use the
//! pages as a person would: open the web clip's URL, type into the fields, press the buttons,
//! follow the redirects, let the progress page update itself, and keep
//! cookies the way a real browser does. Screenshots come from the same browser.
//!
//! The pages' only script updates a progress page's live region in place; the driver uses
//! `Runtime.evaluate` only to read the DOM and to set field values and click buttons, like a
//! person would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The Chromium binary, when one is installed.
pub fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// The Chromium binary for a test, or None to skip it with a notice. CI sets
/// `BATON_REQUIRE_EXTERNAL=1` (after installing Chromium), which turns a missing browser into
/// a failure instead of a skip.
pub fn binary_for_test(test: &str) -> Option<PathBuf> {
    let found = binary();
    if found.is_none() {
        assert!(
            std::env::var_os("BATON_REQUIRE_EXTERNAL").is_none(),
            "{test}: chromium is not installed and BATON_REQUIRE_EXTERNAL is set"
        );
        eprintln!("NOTICE: chromium is not installed; {test} skipped");
    }
    found
}

/// Where screenshots go: `<target>/portal-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("portal-screenshots")
}

/// One headless Chromium with one page (an iPhone-sized viewport).
pub struct Chromium {
    child: tokio::process::Child,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for Chromium {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chromium")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Chromium {
    /// Starts `binary` headless with a fresh profile and opens a 390x844 page.
    pub async fn launch(binary: &Path) -> anyhow::Result<Self> {
        let profile = tempfile::tempdir()?;
        let mut child = tokio::process::Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "about:blank",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting chromium")?;
        let stderr = child.stderr.take().context("chromium stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(at) = line.find("ws://") {
                    return Ok::<_, anyhow::Error>(line[at..].trim().to_owned());
                }
            }
            bail!("chromium exited before announcing its DevTools endpoint")
        })
        .await
        .context("waiting for the DevTools endpoint")??;
        // Keep draining stderr so Chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .context("connecting to DevTools")?;
        let mut browser = Chromium {
            child,
            ws,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let target = browser
            .call("Target.createTarget", json!({ "url": "about:blank" }))
            .await?;
        let target_id = target["targetId"]
            .as_str()
            .context("no targetId")?
            .to_owned();
        let attached = browser
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await?;
        browser.session = attached["sessionId"]
            .as_str()
            .context("no sessionId")?
            .to_owned();
        browser.call("Page.enable", json!({})).await?;
        browser
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({ "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true }),
            )
            .await?;
        Ok(browser)
    }

    /// Sends one DevTools command (to the page once attached) and waits for its result.
    async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = Value::String(self.session.clone());
        }
        self.ws.send(Message::text(message.to_string())).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = tokio::time::timeout(left, self.ws.next())
                .await
                .with_context(|| format!("{method}: no answer"))?
                .ok_or_else(|| anyhow!("DevTools connection closed"))??;
            let Message::Text(text) = frame else { continue };
            let reply: Value = serde_json::from_str(text.as_str())?;
            if reply["id"].as_u64() != Some(id) {
                continue; // an event
            }
            if let Some(error) = reply.get("error") {
                bail!("{method}: {error}");
            }
            return Ok(reply["result"].clone());
        }
    }

    /// Evaluates `expression` in the page and returns its value.
    pub async fn eval(&mut self, expression: &str) -> anyhow::Result<Value> {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await?;
        if let Some(e) = result.get("exceptionDetails") {
            bail!("evaluating {expression:?}: {e}");
        }
        Ok(result["result"]["value"].clone())
    }

    /// Waits until `condition` (a JavaScript expression) is true, for 30 s at most.
    pub async fn wait_until(&mut self, condition: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // A navigation in progress makes evaluation fail now and then; retry.
            if let Ok(Value::Bool(true)) = self.eval(condition).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                let text = self.text().await.unwrap_or_default();
                bail!("timed out waiting for {condition:?}; page says: {text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Marks the current document, so [`Self::wait_for_new_page`] can see it was replaced.
    async fn mark(&mut self) -> anyhow::Result<()> {
        self.eval("window.__batonOld = true").await?;
        Ok(())
    }

    /// Waits until a new document (not the marked one) has loaded.
    async fn wait_for_new_page(&mut self) -> anyhow::Result<()> {
        self.wait_until("window.__batonOld !== true && document.readyState === 'complete'")
            .await
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&mut self, url: &str) -> anyhow::Result<()> {
        self.mark().await?;
        self.call("Page.navigate", json!({ "url": url })).await?;
        self.wait_for_new_page().await
    }

    /// Types `value` into the field matching `selector`.
    pub async fn fill(&mut self, selector: &str, value: &str) -> anyhow::Result<()> {
        let ok = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({s}); if (!e) return false; \
                 e.focus(); e.value = {v}; return true; }})()",
                s = serde_json::to_string(selector)?,
                v = serde_json::to_string(value)?,
            ))
            .await?;
        if ok != Value::Bool(true) {
            bail!("no field {selector}");
        }
        Ok(())
    }

    /// Clicks the element matching `selector` (a submit button) and waits for the next page.
    pub async fn click(&mut self, selector: &str) -> anyhow::Result<()> {
        self.mark().await?;
        let ok = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({s}); if (!e) return false; \
                 e.click(); return true; }})()",
                s = serde_json::to_string(selector)?,
            ))
            .await?;
        if ok != Value::Bool(true) {
            bail!("nothing to click at {selector}");
        }
        self.wait_for_new_page().await
    }

    /// The page's visible text.
    pub async fn text(&mut self) -> anyhow::Result<String> {
        Ok(self
            .eval("document.body ? document.body.innerText : ''")
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The page's path (`location.pathname`).
    pub async fn path(&mut self) -> anyhow::Result<String> {
        Ok(self
            .eval("location.pathname")
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// True when an element matches `selector`.
    pub async fn has(&mut self, selector: &str) -> anyhow::Result<bool> {
        Ok(self
            .eval(&format!(
                "document.querySelector({}) !== null",
                serde_json::to_string(selector)?
            ))
            .await?
            == Value::Bool(true))
    }

    /// The cookies the browser holds for `url`, as DevTools reports them.
    pub async fn cookies(&mut self, url: &str) -> anyhow::Result<Vec<Value>> {
        let r = self
            .call("Network.getCookies", json!({ "urls": [url] }))
            .await?;
        Ok(r["cookies"].as_array().cloned().unwrap_or_default())
    }

    /// Saves a PNG of the page as `<screenshot dir>/<name>.png` and checks it is not blank.
    pub async fn screenshot(&mut self, name: &str) -> anyhow::Result<PathBuf> {
        let r = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().context("no screenshot data")?)?;
        if png.get(..8) != Some(b"\x89PNG\r\n\x1a\n".as_slice()) {
            bail!("{name}: not a PNG");
        }
        // A blank page compresses to a few hundred bytes; text and buttons make it larger.
        if png.len() < 4_000 {
            bail!("{name}: {} bytes, looks blank", png.len());
        }
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        let file = dir.join(format!("{name}.png"));
        std::fs::write(&file, &png)?;
        Ok(file)
    }

    /// Makes the browser send `accept_language` (e.g. `"ja-JP,ja;q=0.9"`) as its
    /// `Accept-Language`, on navigations and on the page's own requests, as an iPhone set to
    /// that language does.
    pub async fn set_accept_language(&mut self, accept_language: &str) -> anyhow::Result<()> {
        let ua = self.eval("navigator.userAgent").await?;
        self.call(
            "Emulation.setUserAgentOverride",
            json!({ "userAgent": ua, "acceptLanguage": accept_language }),
        )
        .await?;
        Ok(())
    }

    /// Closes the browser.
    pub async fn close(mut self) {
        self.session.clear();
        let _ = self.call("Browser.close", json!({})).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}
