//! The portal's pages as [`Page`]s: the sign-in form, the signed-in page with its sign-out
//! form, sign-in progress, sign-out progress, and the plain message pages (not found, bad
//! request, device in use, too large, failure).

use std::fmt::Write;

use super::html::{Page, escape};
use crate::reconciler::progress::{DeviceProgress, ItemState};

/// The uniform message for an unknown user or a wrong password.
pub const WRONG_CREDENTIALS: &str = "Wrong username or password.";
/// Heading of the page refusing a sign-in on a device someone else holds.
pub const IN_USE_HEADING: &str = "This device is in use";
/// What the signed-out page says once the device is clean.
pub const READY_FOR_NEXT: &str = "Device is ready for the next person";

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

/// The page of a signed-in device: who, and the sign-out form.
pub fn signed_in(device_token: &str, full_name: &str, csrf: &str) -> Page {
    let body = format!(
        "<p><a href=\"/portal/{token}/progress\">Show setup progress</a></p>\n\
         <form method=\"post\" action=\"/portal/{token}/sign-out\">\n{csrf}\n\
         <button type=\"submit\">Sign out</button>\n</form>",
        token = escape(device_token),
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
        let _ = writeln!(
            list,
            "<li><span>{}</span><span class=\"state\">{}</span></li>",
            escape(&item.name),
            state_label(item.state)
        );
    }
    list.push_str("</ul>");
    list
}

/// Sign-in progress: every item of the person's desired state, refreshing until ready.
pub fn progress(device_token: &str, progress: &DeviceProgress) -> Page {
    let installed = progress
        .items
        .iter()
        .filter(|i| i.state == ItemState::Installed)
        .count();
    let mut body = format!(
        "<p role=\"status\">{installed} of {} items installed.</p>\n",
        progress.items.len()
    );
    body.push_str(&item_list(progress));
    let _ = write!(
        body,
        "\n<p><a href=\"/portal/{}\">Back</a></p>",
        escape(device_token)
    );
    let heading = if progress.ready {
        "Your device is ready"
    } else {
        "Setting up your device…"
    };
    let mut page = Page::new(heading, body);
    page.refresh = !progress.ready;
    page
}

/// Sign-out progress: the removals still pending, then "ready for the next person".
pub fn signed_out(progress: &DeviceProgress) -> Page {
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
    let mut page = Page::new(
        "Signing out…",
        format!("<p role=\"status\">{pending} changes left on this device.</p>"),
    );
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
            }],
            removals_pending: 0,
            ready: false,
        };
        let b = PortalBranding::default();
        let html = progress("tok", &p).render(&b);
        assert!(html.contains("http-equiv=\"refresh\""));
        assert!(html.contains("Mail &lt;corp&gt;"));
        assert!(html.contains("Pending"));
        p.items[0].state = ItemState::Installed;
        p.ready = true;
        let html = progress("tok", &p).render(&b);
        assert!(!html.contains("http-equiv=\"refresh\""));
        assert!(html.contains("Your device is ready"));
    }
}
