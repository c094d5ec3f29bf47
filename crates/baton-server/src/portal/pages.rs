//! The portal's pages as [`Page`]s: the sign-in form, the signed-in page with its sign-out
//! form, sign-in progress, sign-out progress, and the plain message pages (not found, bad
//! request, device in use, too large, failure).

use std::fmt::Write;

use super::html::{Page, escape};
use crate::reconciler::hand_off::{HandOff, HandOffState};
use crate::reconciler::progress::{DeviceProgress, ItemState};

/// The uniform message for an unknown user or a wrong password.
pub const WRONG_CREDENTIALS: &str = "Wrong username or password.";
/// Shown when as many attempts as the lockout threshold allows are being checked already.
pub const TOO_MANY_AT_ONCE: &str = "Too many sign-in attempts at once. Try again in a minute.";
/// What a disabled user sees after typing the right password.
pub const DISABLED_USER: &str = "This account cannot sign in. Ask your administrator.";
/// Heading of the page refusing a sign-in on a device someone else holds.
pub const IN_USE_HEADING: &str = "This device is in use";
/// What the device's own portal URL says while someone else's session is open.
pub const SIGN_OUT_WITH_CLIP: &str =
    "Someone is signed in on this device. To sign out, open \"Sign out\" on the Home Screen.";
/// Heading of the page for a session link whose session ended (or never existed).
pub const SESSION_ENDED_HEADING: &str = "This session has ended";
/// What the signed-out page says once the device is clean.
pub const READY_FOR_NEXT: &str = "Device is ready for the next person";
/// Heading of the pages shown while the previous session's items are still on the device.
pub const NOT_FINISHED_HEADING: &str = "Sign-out not finished";

/// `not finished: <what remains>` and what happens next, as paragraphs.
fn not_finished(h: &HandOff) -> String {
    let next = if h.state == HandOffState::GivenUp {
        "Baton stopped trying; your administrator has been told. Ask them before using this device."
    } else {
        "Baton is trying again; this page updates by itself."
    };
    format!(
        "<p role=\"status\">Not finished: {}</p>\n<p>{}</p>",
        escape(&h.remaining_text()),
        escape(next)
    )
}

/// The sign-in form's place while the previous session's items are still on the device: the
/// next person cannot sign in until the device is clean (docs/decisions/0023).
pub fn not_ready_for_next(h: &HandOff) -> Page {
    let mut page = Page::new(NOT_FINISHED_HEADING, not_finished(h));
    page.refresh = h.state == HandOffState::NotClean;
    page
}

fn hidden_csrf(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(csrf)
    )
}

/// The sign-in form; `error` is shown above it (with `role="alert"`).
pub fn sign_in(device_token: &str, csrf: &str, error: Option<&str>, username: &str) -> Page {
    let mut body = String::new();
    if let Some(e) = error {
        let _ = writeln!(body, "<p class=\"alert\" role=\"alert\">{}</p>", escape(e));
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/portal/{token}/sign-in\">\n{csrf}\n\
         <label for=\"username\">Username</label>\n\
         <input type=\"text\" id=\"username\" name=\"username\" value=\"{user}\" \
         autocomplete=\"username\" autocapitalize=\"none\" autocorrect=\"off\" spellcheck=\"false\" \
         required autofocus>\n\
         <label for=\"password\">Password</label>\n\
         <input type=\"password\" id=\"password\" name=\"password\" \
         autocomplete=\"current-password\" required>\n\
         <button type=\"submit\">Sign in</button>\n</form>",
        token = escape(device_token),
        csrf = hidden_csrf(csrf),
        user = escape(username),
    );
    let mut page = Page::new("Sign in to this device", body);
    page.reminder = true;
    page
}

/// When a signed-in session ends on its own, as the portal shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEnd {
    /// Persistent ("Stay signed in" answered yes): until sign-out.
    UntilSignOut,
    /// Leased: automatic sign-out at this time.
    At {
        /// The end, Unix milliseconds.
        end_ms: u64,
        /// True when the end is inside the warning window.
        soon: bool,
        /// Minutes left (rounded up).
        minutes_left: u64,
    },
}

/// `HH:MM UTC` of a Unix-millisecond time.
fn clock(ms: u64) -> String {
    let minutes = (ms / 60_000) % (24 * 60);
    format!("{:02}:{:02} UTC", minutes / 60, minutes % 60)
}

fn session_end_html(end: Option<SessionEnd>) -> String {
    match end {
        None => String::new(),
        Some(SessionEnd::UntilSignOut) => {
            "<p>You stay signed in on this device until you sign out.</p>\n".to_owned()
        }
        Some(SessionEnd::At {
            end_ms,
            soon: true,
            minutes_left,
        }) => format!(
            "<p class=\"alert\" role=\"alert\">You will be signed out automatically at {} \
             (in {} minute{}). Save your work.</p>\n",
            clock(end_ms),
            minutes_left,
            if minutes_left == 1 { "" } else { "s" }
        ),
        Some(SessionEnd::At { end_ms, .. }) => format!(
            "<p>You will be signed out automatically at {}.</p>\n",
            clock(end_ms)
        ),
    }
}

/// "Stay signed in?": yes or no, both posting to the prompt's action.
pub fn stay_signed_in(device_token: &str, csrf: &str) -> Page {
    let body = format!(
        "<p>Stay signed in on this device until you sign out? Choose No if other people \
         use this device.</p>\n\
         <form method=\"post\" action=\"/portal/{token}/stay\">\n{csrf}\n\
         <button type=\"submit\" name=\"answer\" value=\"yes\">Yes</button>\n\
         <button type=\"submit\" name=\"answer\" value=\"no\" class=\"secondary\">No</button>\n\
         </form>",
        token = escape(device_token),
        csrf = hidden_csrf(csrf),
    );
    Page::new("Stay signed in?", body)
}

/// The page of a signed-in device: who, when the session ends, and the sign-out form. `base`
/// is the path the person reached it by: `/portal/{device token}` (with the session's cookie)
/// or `/portal/session/{secret}` (the "Sign out" clip).
pub fn signed_in(base: &str, full_name: &str, csrf: &str, end: Option<SessionEnd>) -> Page {
    let body = format!(
        "{end}<p><a href=\"{base}/progress\">Show setup progress</a></p>\n\
         <form method=\"post\" action=\"{base}/sign-out\">\n{csrf}\n\
         <button type=\"submit\">Sign out</button>\n</form>",
        end = session_end_html(end),
        base = escape(base),
        csrf = hidden_csrf(csrf),
    );
    let mut page = Page::new(format!("Signed in as {full_name}"), body);
    page.reminder = true;
    page
}

fn state_label(state: ItemState) -> &'static str {
    match state {
        ItemState::Installed => "Installed",
        ItemState::Pending => "Pending",
        ItemState::Failed => "Failed",
    }
}

fn item_list(progress: &DeviceProgress) -> String {
    let mut list = String::from("<ul class=\"items\">\n");
    for item in &progress.items {
        let reason = item
            .reason
            .as_deref()
            .map(|r| format!(" <span class=\"reason\">{}</span>", escape(r)))
            .unwrap_or_default();
        let _ = writeln!(
            list,
            "<li><span>{}</span><span class=\"state\">{}</span>{reason}</li>",
            escape(&item.name),
            state_label(item.state)
        );
    }
    list.push_str("</ul>");
    list
}

/// Sign-in progress: every item of the person's desired state, refreshing until ready
/// (`base` as for [`signed_in`]).
pub fn progress(base: &str, progress: &DeviceProgress, end: Option<SessionEnd>) -> Page {
    let installed = progress
        .items
        .iter()
        .filter(|i| i.state == ItemState::Installed)
        .count();
    let mut body = session_end_html(end);
    let _ = writeln!(
        body,
        "<p role=\"status\">{installed} of {} items installed.</p>",
        progress.items.len()
    );
    body.push_str(&item_list(progress));
    let _ = write!(body, "\n<p><a href=\"{}\">Back</a></p>", escape(base));
    // Items Baton gave up on will not change by waiting: stop refreshing once only they are
    // left.
    let settled = progress
        .items
        .iter()
        .all(|i| i.state == ItemState::Installed || i.given_up)
        && progress.removals_pending == 0;
    let heading = if progress.ready {
        "Your device is ready"
    } else if settled {
        "Some items could not be installed"
    } else {
        "Setting up your device…"
    };
    let mut page = Page::new(heading, body);
    page.refresh = !progress.ready && !settled;
    page
}

/// Sign-out progress: the removals still pending, then "ready for the next person".
pub fn signed_out(progress: &DeviceProgress) -> Page {
    if let Some(h) = progress
        .hand_off
        .as_ref()
        .filter(|h| h.state.is_not_clean())
    {
        return not_ready_for_next(h);
    }
    if progress.ready {
        return Page::new(
            READY_FOR_NEXT,
            "<p role=\"status\">You are signed out. Your items were removed.</p>",
        );
    }
    let pending = progress.removals_pending
        + progress
            .items
            .iter()
            .filter(|i| i.state != ItemState::Installed)
            .count();
    let text = if pending == 0 {
        "Checking that nothing of your session is left on this device.".to_owned()
    } else {
        format!("{pending} changes left on this device.")
    };
    let mut page = Page::new("Signing out…", format!("<p role=\"status\">{text}</p>"));
    page.refresh = true;
    page
}

/// A plain message page.
pub fn message(heading: &str, text: &str) -> Page {
    Page::new(heading, format!("<p>{}</p>", escape(text)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portal::branding::PortalBranding;
    use crate::reconciler::progress::ItemProgress;

    #[test]
    fn the_sign_in_form_posts_with_csrf_and_labels() {
        let html = sign_in("tok", "c\"1", Some(WRONG_CREDENTIALS), "<al>")
            .render(&PortalBranding::default());
        assert!(html.contains("action=\"/portal/tok/sign-in\""));
        assert!(html.contains("name=\"csrf\" value=\"c&quot;1\""));
        assert!(html.contains("<label for=\"username\">"));
        assert!(html.contains("<label for=\"password\">"));
        assert!(html.contains("value=\"&lt;al&gt;\""));
        assert!(html.contains("role=\"alert\""));
    }

    #[test]
    fn progress_refreshes_until_ready() {
        let mut p = DeviceProgress {
            assignee: "alice".into(),
            items: vec![ItemProgress {
                item: "mail".into(),
                name: "Mail <corp>".into(),
                state: ItemState::Pending,
                given_up: false,
                reason: None,
            }],
            removals_pending: 0,
            ready: false,
            hand_off: None,
        };
        let b = PortalBranding::default();
        let html = progress("tok", &p, None).render(&b);
        assert!(html.contains("http-equiv=\"refresh\""));
        assert!(html.contains("Mail &lt;corp&gt;"));
        assert!(html.contains("Pending"));
        // Given up: shown with its reason, no more refreshing, never "ready".
        p.items[0].state = ItemState::Failed;
        p.items[0].given_up = true;
        p.items[0].reason = Some("LicenseNotFound <12064>".into());
        let html = progress("tok", &p, None).render(&b);
        assert!(!html.contains("http-equiv=\"refresh\""));
        assert!(html.contains("LicenseNotFound &lt;12064&gt;"));
        assert!(!html.contains("Your device is ready"));
        p.items[0].given_up = false;
        p.items[0].reason = None;
        p.items[0].state = ItemState::Installed;
        p.ready = true;
        let html = progress("tok", &p, None).render(&b);
        assert!(!html.contains("http-equiv=\"refresh\""));
        assert!(html.contains("Your device is ready"));
    }

    #[test]
    fn session_end_is_shown_with_a_warning_when_close() {
        let b = PortalBranding::default();
        // 1970-01-01 17:30 UTC.
        let end_ms = (17 * 60 + 30) * 60_000;
        let calm = signed_in(
            "tok",
            "Alice",
            "c",
            Some(SessionEnd::At {
                end_ms,
                soon: false,
                minutes_left: 90,
            }),
        )
        .render(&b);
        assert!(
            calm.contains("signed out automatically at 17:30 UTC"),
            "{calm}"
        );
        assert!(!calm.contains("role=\"alert\""));
        let soon = signed_in(
            "tok",
            "Alice",
            "c",
            Some(SessionEnd::At {
                end_ms,
                soon: true,
                minutes_left: 1,
            }),
        )
        .render(&b);
        assert!(soon.contains("role=\"alert\""));
        assert!(soon.contains("(in 1 minute)"), "{soon}");
        let kept = signed_in("tok", "Alice", "c", Some(SessionEnd::UntilSignOut)).render(&b);
        assert!(kept.contains("until you sign out"));
    }

    #[test]
    fn the_stay_prompt_offers_yes_and_no_with_csrf() {
        let html = stay_signed_in("tok", "c1").render(&PortalBranding::default());
        assert!(html.contains("action=\"/portal/tok/stay\""));
        assert!(html.contains("name=\"answer\" value=\"yes\""));
        assert!(html.contains("name=\"answer\" value=\"no\""));
        assert!(html.contains("name=\"csrf\" value=\"c1\""));
    }
}
