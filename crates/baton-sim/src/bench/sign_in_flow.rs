//! One person with one simulated device going through the sign-in portal, as the
//! `sign-in-to-ready` and `shift-change` scenarios (and end-to-end tests) drive it:
//!
//! - **sign-in** ([`sign_in_until_ready`]): tap the sign-in web clip (the URL of the
//!   `com.apple.webClip.managed` payload the server installed), open it in that clip's own web
//!   app ([`SimDevice::open_web_clip`]: one cookie jar per clip, emptied when the clip is
//!   removed), find the form with a password field, submit `username` and `password` (plus the
//!   hidden CSRF field), follow the redirect to the progress page; then the device processes
//!   its commands (on push, see [`Wake`]) and the person reloads the progress page until it
//!   stops refreshing: ready. When the sign-in clip is removed under them (its web app and
//!   cookie go with it), they watch the same progress in the "Sign out" clip
//!   (`{its URL}/progress`), as docs/decisions/0011 says.
//! - **sign-out** ([`sign_out_until_done`]): tap the "Sign out" clip (its own web app, a fresh
//!   jar), submit the signed-in page's form (the one without a password), follow to the
//!   signed-out page; the device processes the removals and the inventory queries until the
//!   page says the device is ready for the next person. [`wait_clean_hand_off`] then reads the session log until the
//!   server recorded the hand-off as clean.
//!
//! Pages are read with [`crate::html_form`], never by fixed offsets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_apns::mock::MockApns;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value as Json;

use crate::browser::{Browser, WebPage};
use crate::html_form::{self, HtmlForm};
use crate::transport::origin_of;
use crate::{AdminApi, SimDevice, SimError};

/// How a device learns that it has commands.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Wake {
    /// The device connects right after the portal answers (and again every poll interval
    /// while not done), as if pushed. For servers without a push certificate; the
    /// `command-cycle` scenario signals devices the same way.
    #[default]
    Direct,
    /// The device connects when this mock APNs server received a push for its token (or,
    /// as iOS would eventually, after [`FlowSettings::push_wait`] without one).
    MockApns(Arc<MockApns>),
}

/// Settings shared by the sign-in and sign-out flows.
#[derive(Debug, Clone)]
pub struct FlowSettings {
    /// Origin the portal is opened on (`scheme://host:port`). The clip's path and query are
    /// opened there when the clip's own origin differs (a server's public URL need not be
    /// where a benchmark reaches it).
    pub server: String,
    /// Label of the sign-in web clip.
    pub sign_in_label: String,
    /// Label of the sign-out web clip (the sign-in clip's URL is used when it is missing).
    pub sign_out_label: String,
    /// How devices are woken.
    pub wake: Wake,
    /// Give up on one device after this long.
    pub timeout: Duration,
    /// Pause between a device's sessions while its page still refreshes ([`Wake::Direct`]).
    pub poll: Duration,
    /// Longest wait for a push before connecting anyway ([`Wake::MockApns`]).
    pub push_wait: Duration,
}

impl FlowSettings {
    /// Defaults for `server`: labels `Sign in` / `Sign out`, direct wake, 120 s timeout,
    /// 50 ms poll, 2 s push wait.
    pub fn new(server: &str) -> Result<Self, SimError> {
        Ok(Self {
            server: origin_of(server)?,
            sign_in_label: "Sign in".to_owned(),
            sign_out_label: "Sign out".to_owned(),
            wake: Wake::Direct,
            timeout: Duration::from_secs(120),
            poll: Duration::from_millis(50),
            push_wait: Duration::from_secs(2),
        })
    }
}

/// What one sign-in took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignInTiming {
    /// The sign-in POST (credentials check, assignment, reconcile, enqueue, push notice).
    pub post: Duration,
    /// From sending the POST until the progress page said ready.
    pub ready: Duration,
    /// Commands the device processed.
    pub commands: usize,
    /// Command-channel sessions it took.
    pub sessions: usize,
}

/// What one sign-out took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignOutTiming {
    /// The sign-out POST.
    pub post: Duration,
    /// From sending the POST until the signed-out page said ready for the next person.
    pub done: Duration,
    /// Commands the device processed.
    pub commands: usize,
}

/// The portal URL the web clip labelled `label` opens, on [`FlowSettings::server`].
pub fn clip_url(
    settings: &FlowSettings,
    device: &SimDevice,
    label: &str,
) -> Result<String, SimError> {
    let url = device.tap_web_clip(Some(label)).ok_or_else(|| {
        SimError::Portal(format!(
            "device {} has no web clip {label:?}",
            device.udid()
        ))
    })?;
    let origin = origin_of(&url)?;
    if origin == settings.server {
        return Ok(url);
    }
    Ok(format!("{}{}", settings.server, &url[origin.len()..]))
}

/// Taps the clip labelled `label`: the URL to open (see [`clip_url`]) and the clip's web app.
pub fn open_clip(
    settings: &FlowSettings,
    device: &mut SimDevice,
    label: &str,
) -> Result<(String, Browser), SimError> {
    let url = clip_url(settings, device, label)?;
    let (_, app) = device.open_web_clip(label).ok_or_else(|| {
        SimError::Portal(format!(
            "device {} has no web clip {label:?}",
            device.udid()
        ))
    })?;
    Ok((url, app))
}

/// True when a portal page is final: 200, not refreshing, and not a sign-in form.
pub fn page_settled(page: &WebPage) -> bool {
    page.status == 200
        && !html_form::refreshes(&page.html)
        && !page.forms().iter().any(HtmlForm::has_password)
}

fn refused(what: &str, page: &WebPage) -> SimError {
    SimError::Portal(format!(
        "{what}: HTTP {} at {} ({})",
        page.status,
        page.url,
        html_form::heading(&page.html).unwrap_or_default()
    ))
}

fn pushes_for(mock: &MockApns, token: &str) -> usize {
    mock.pushes()
        .iter()
        .filter(|p| p.status == 200 && p.token.as_deref() == Some(token))
        .count()
}

/// Waits for the next reason to connect: nothing (first round, direct), the poll interval
/// (later rounds, direct), or a push beyond `seen` (mock APNs).
async fn wake(settings: &FlowSettings, token: &str, seen: &mut usize, first: bool) {
    match &settings.wake {
        Wake::Direct => {
            if !first {
                tokio::time::sleep(settings.poll).await;
            }
        }
        Wake::MockApns(mock) => {
            let deadline = Instant::now() + settings.push_wait;
            loop {
                let n = pushes_for(mock, token);
                if n > *seen || Instant::now() >= deadline {
                    *seen = n;
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

fn pushes_now(settings: &FlowSettings, token: &str) -> usize {
    match &settings.wake {
        Wake::Direct => 0,
        Wake::MockApns(mock) => pushes_for(mock, token),
    }
}

/// The device processes commands (on each wake) and the person reloads `page` until it is
/// settled. With `follow_to_sign_out`, once the sign-in clip is gone (and its web app with
/// it) the person watches the progress in the "Sign out" clip instead. Returns the settled
/// page, commands processed and sessions run.
#[allow(clippy::too_many_arguments)]
async fn converge(
    device: &mut SimDevice,
    mut browser: Browser,
    settings: &FlowSettings,
    mut page: WebPage,
    mut seen: usize,
    started: Instant,
    what: &str,
    follow_to_sign_out: bool,
) -> Result<(WebPage, usize, usize), SimError> {
    let token = device.push_token_hex().to_owned();
    let mut commands = 0;
    let mut sessions = 0;
    let mut first = true;
    loop {
        wake(settings, &token, &mut seen, first).await;
        first = false;
        commands += device.connect_until_idle().await?.len();
        sessions += 1;
        if follow_to_sign_out && device.tap_web_clip(Some(&settings.sign_in_label)).is_none() {
            let (url, app) = open_clip(settings, device, &settings.sign_out_label)?;
            browser = app;
            page = browser.open(&format!("{url}/progress")).await?;
        } else {
            page = browser.open(&page.url).await?;
        }
        if page_settled(&page) {
            return Ok((page, commands, sessions));
        }
        if page.status != 200 {
            return Err(refused(what, &page));
        }
        if started.elapsed() > settings.timeout {
            let shown: String = html_form::text(&page.html).chars().take(600).collect();
            return Err(SimError::Portal(format!(
                "{what}: device {} not done after {:?} ({commands} commands); the page says: \
                 {shown}",
                device.udid(),
                settings.timeout
            )));
        }
    }
}

/// A person signs in as `username` on `device` through the portal and waits until the
/// progress page says the device is ready.
pub async fn sign_in_until_ready(
    device: &mut SimDevice,
    username: &str,
    password: &str,
    settings: &FlowSettings,
) -> Result<SignInTiming, SimError> {
    let (url, mut browser) = open_clip(settings, device, &settings.sign_in_label)?;
    let page = browser.open(&url).await?;
    if page.status != 200 {
        return Err(refused("sign-in page", &page));
    }
    let form = page
        .forms()
        .into_iter()
        .find(|f| f.has_password() && f.has_field("username"))
        .ok_or_else(|| SimError::Portal(format!("no sign-in form at {}", page.url)))?;
    let seen = pushes_now(settings, device.push_token_hex());
    let started = Instant::now();
    let (post, progress) = browser
        .submit(
            &page,
            &form,
            &[("username", username), ("password", password)],
        )
        .await?;
    if progress.status != 200 || progress.forms().iter().any(HtmlForm::has_password) {
        return Err(refused("sign-in", &progress));
    }
    let (_, commands, sessions) = converge(
        device, browser, settings, progress, seen, started, "sign-in", true,
    )
    .await?;
    Ok(SignInTiming {
        post,
        ready: started.elapsed(),
        commands,
        sessions,
    })
}

/// The signed-in person signs out on `device` through the portal and waits until the
/// signed-out page says the device is ready for the next person.
pub async fn sign_out_until_done(
    device: &mut SimDevice,
    settings: &FlowSettings,
) -> Result<SignOutTiming, SimError> {
    let (url, mut browser) = open_clip(settings, device, &settings.sign_out_label)
        .or_else(|_| open_clip(settings, device, &settings.sign_in_label))?;
    let page = browser.open(&url).await?;
    if page.status != 200 {
        return Err(refused("signed-in page", &page));
    }
    let forms = page.forms();
    if forms.iter().any(HtmlForm::has_password) {
        return Err(SimError::Portal(format!(
            "device {} is not signed in (the portal shows the sign-in form)",
            device.udid()
        )));
    }
    let form = forms
        .into_iter()
        .find(|f| f.method == "post")
        .ok_or_else(|| SimError::Portal(format!("no sign-out form at {}", page.url)))?;
    let seen = pushes_now(settings, device.push_token_hex());
    let started = Instant::now();
    let (post, signed_out) = browser.submit(&page, &form, &[]).await?;
    if signed_out.status != 200 {
        return Err(refused("sign-out", &signed_out));
    }
    let (_, commands, _) = converge(
        device, browser, settings, signed_out, seen, started, "sign-out", false,
    )
    .await?;
    Ok(SignOutTiming {
        post,
        done: started.elapsed(),
        commands,
    })
}

/// Reads the session log of the device until the newest ended session of `username` has a
/// clean hand-off: Ok when clean; an error when it is still not clean when the flow's timeout
/// ends (a not-clean hand-off is checked again by the server and may become clean) or not
/// recorded by then. Meanwhile the device answers what wakes it (a push, or the bench's poll
/// with [`Wake::Direct`]): a device whose connection dropped mid-queue finishes its queue then.
pub async fn wait_clean_hand_off(
    admin: &AdminApi,
    device: &mut SimDevice,
    username: &str,
    settings: &FlowSettings,
) -> Result<(), SimError> {
    let (timeout, poll) = (settings.timeout, settings.poll);
    let udid = device.udid().to_owned();
    let token = device.push_token_hex().to_owned();
    let mut pushes = pushes_now(settings, &token);
    let deadline = Instant::now() + timeout;
    loop {
        let sessions = admin.sessions(&udid).await?;
        let last = sessions
            .iter()
            .rev()
            .find(|s| s["username"] == username && !s["ended_at"].is_null());
        match last.map(|s| (&s["clean_hand_off"], &s["hand_off_remaining"])) {
            Some((Json::Bool(true), _)) => return Ok(()),
            Some((Json::Bool(false), remaining)) if Instant::now() >= deadline => {
                return Err(SimError::Portal(format!(
                    "device {udid}: the hand-off after {username} was not clean: {remaining}"
                )));
            }
            _ if Instant::now() >= deadline => {
                return Err(SimError::Portal(format!(
                    "device {udid}: no clean hand-off recorded for {username} within {timeout:?}"
                )));
            }
            _ => {
                let woken = match &settings.wake {
                    Wake::Direct => true,
                    Wake::MockApns(mock) => {
                        let n = pushes_for(mock, &token);
                        std::mem::replace(&mut pushes, n) < n
                    }
                };
                if woken {
                    device.connect_until_idle().await?;
                }
                tokio::time::sleep(poll).await;
            }
        }
    }
}

/// Connections a device makes in a row while they drop, before the baseline gives up.
const SETTLE_ATTEMPTS: usize = 50;

/// Brings every device of `devices` to the signed-out baseline with the sign-in clip
/// installed: each connects; one still signed in (e.g. by an earlier run) is signed out
/// through the admin API and connects again. Returns how many needed that.
pub async fn prepare_signed_out(
    devices: &mut [SimDevice],
    admin: &AdminApi,
    settings: &FlowSettings,
    concurrency: usize,
    show_progress: bool,
) -> Result<usize, SimError> {
    use futures::StreamExt as _;
    let bar = progress_bar(devices.len(), "baseline", show_progress);
    let results: Vec<Result<bool, SimError>> = futures::stream::iter(devices.iter_mut())
        .map(|device| {
            let bar = bar.clone();
            async move {
                // A dropped connection is followed by the next (the device would retry by
                // itself): the baseline is what the server queued, not half of it.
                device.connect_until_settled(SETTLE_ATTEMPTS).await?;
                let mut forced = false;
                if device.tap_web_clip(Some(&settings.sign_in_label)).is_none() {
                    admin.sign_out(device.udid()).await?;
                    device.connect_until_settled(SETTLE_ATTEMPTS).await?;
                    forced = true;
                }
                bar.inc(1);
                if device.tap_web_clip(Some(&settings.sign_in_label)).is_none() {
                    return Err(SimError::Portal(format!(
                        "device {} got no {:?} web clip: is the server's sign-in clip enabled?",
                        device.udid(),
                        settings.sign_in_label
                    )));
                }
                Ok(forced)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    bar.finish_and_clear();
    let mut forced = 0;
    for r in results {
        if r? {
            forced += 1;
        }
    }
    Ok(forced)
}

/// A progress bar like the other scenarios' (hidden when `show` is false).
pub(crate) fn progress_bar(len: usize, what: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(status: u16, html: &str) -> WebPage {
        WebPage {
            url: "http://h/portal/t/progress".into(),
            status,
            html: html.into(),
        }
    }

    #[test]
    fn settled_pages() {
        let refreshing = "<meta http-equiv=\"refresh\" content=\"2\"><h1>Setting up</h1>";
        assert!(!page_settled(&page(200, refreshing)));
        assert!(page_settled(&page(200, "<h1>Your device is ready</h1>")));
        assert!(!page_settled(&page(500, "<h1>Something went wrong</h1>")));
        let form = "<form method=post action=/x><input type=password name=password></form>";
        assert!(!page_settled(&page(200, form)), "back at the sign-in form");
    }
}
