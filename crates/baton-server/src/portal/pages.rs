//! The portal's pages as [`Page`]s: the sign-in form, the signed-in page with its sign-out
//! form, sign-in progress, sign-out progress, and the plain message pages (not found, bad
//! request, device in use, too large, failure). Texts are English message ids looked up in the
//! request's language ([`super::language`]).

use std::fmt::Write;

use super::html::{Page, escape};
use super::language::{fill, tr};
use crate::catalog::defaults::SIGN_OUT_ITEM;
use crate::reconciler::hand_off::{HandOff, HandOffState, Remaining, RemainingKind};
use crate::reconciler::progress::{DeviceProgress, ItemProgress, ItemState};

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
/// Heading of the page answering a sign-in by the person already signed in on the device.
pub const ALREADY_SIGNED_IN_HEADING: &str = "You are already signed in";
/// What that page says.
pub const ALREADY_SIGNED_IN: &str = "You are already signed in on this device. To see your items or sign out, open \"Sign out\" on the Home Screen.";
/// Heading of the page for a session link whose session ended (or never existed).
pub const SESSION_ENDED_HEADING: &str = "This session has ended";
/// What the signed-out page says once the device is clean.
pub const READY_FOR_NEXT: &str = "Device is ready for the next person";
/// Heading of the pages shown while the previous session's items are still on the device.
pub const NOT_FINISHED_HEADING: &str = "Sign-out not finished";

/// One remaining thing for people, in the page's language: `Remove Notes (reason)`.
fn describe_remaining(r: &Remaining) -> String {
    let name = r.label();
    let mut text = match r.kind {
        RemainingKind::Missing => fill(tr("Install {name}"), &[("name", name)]),
        RemainingKind::Unanswered => fill(tr("No answer to {name}"), &[("name", name)]),
        _ => fill(tr("Remove {name}"), &[("name", name)]),
    };
    if let Some(reason) = &r.reason {
        let _ = write!(text, " ({reason})");
    }
    text
}

/// `Not finished:` with what remains (a list) and what happens next, in a live region that
/// is done once Baton gave up.
fn not_finished(h: &HandOff) -> String {
    let given_up = h.state == HandOffState::GivenUp;
    let next = if given_up {
        "Baton stopped trying; your administrator has been told. Ask them before using this device."
    } else {
        "Baton is trying again; this page updates by itself."
    };
    let mut live = format!(
        "<p class=\"status\">{}</p>\n<ul class=\"items\">\n",
        escape(tr("Not finished:"))
    );
    for r in &h.remaining {
        let _ = writeln!(
            live,
            "<li><span class=\"name\">{}</span></li>",
            escape(&describe_remaining(r))
        );
    }
    live.push_str("</ul>\n");
    let _ = write!(live, "<p>{}</p>", escape(tr(next)));
    Page::live_region(&live, given_up)
}

/// The sign-in form's place while the previous session's items are still on the device: the
/// next person cannot sign in until the device is clean (docs/decisions/0023). The live
/// region reloads the page once the device is clean (the sign-in form has none).
pub fn not_ready_for_next(h: &HandOff) -> Page {
    let mut page = Page::new(tr(NOT_FINISHED_HEADING), not_finished(h));
    page.live = h.state == HandOffState::NotClean;
    page
}

fn hidden_csrf(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(csrf)
    )
}

/// The sign-in form; `error` (an English message id) is shown above it (with `role="alert"`).
///
/// The device is shared: the password field is `autocomplete="off"` (not `current-password`,
/// which makes Safari offer to save the password on the device for the next person to find),
/// and the form says so.
pub fn sign_in(device_token: &str, csrf: &str, error: Option<&str>, username: &str) -> Page {
    let mut body = String::new();
    if let Some(e) = error {
        let _ = writeln!(
            body,
            "<p class=\"alert\" role=\"alert\">{}</p>",
            escape(tr(e))
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/portal/{token}/sign-in\" autocomplete=\"off\">\n{csrf}\n\
         <label for=\"username\">{username_label}</label>\n\
         <input type=\"text\" id=\"username\" name=\"username\" value=\"{user}\" \
         autocomplete=\"off\" autocapitalize=\"none\" autocorrect=\"off\" spellcheck=\"false\" \
         required autofocus>\n\
         <label for=\"password\">{password_label}</label>\n\
         <input type=\"password\" id=\"password\" name=\"password\" \
         autocomplete=\"off\" required>\n\
         <p class=\"hint\">{shared}</p>\n\
         <button type=\"submit\">{submit}</button>\n</form>",
        token = escape(device_token),
        csrf = hidden_csrf(csrf),
        user = escape(username),
        username_label = escape(tr("Username")),
        password_label = escape(tr("Password")),
        shared = escape(tr(
            "This device is shared: your password is not saved on it."
        )),
        submit = escape(tr("Sign in")),
    );
    let mut page = Page::new(tr("Sign in to this device"), body);
    page.reminder = true;
    page
}

/// When a signed-in session ends on its own, as the portal shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEnd {
    /// Persistent ("Stay signed in" answered yes): until sign-out.
    UntilSignOut,
    /// Leased: automatic sign-out at this time.
    At {
        /// The end with its date, in the operator's time zone (`2026-12-08 07:00 JST`).
        at: String,
        /// True when the end is inside the warning window.
        soon: bool,
        /// Minutes left (rounded up).
        minutes_left: u64,
    },
}

fn session_end_html(end: Option<&SessionEnd>) -> String {
    match end {
        None => String::new(),
        Some(SessionEnd::UntilSignOut) => format!(
            "<p>{}</p>\n",
            escape(tr("You stay signed in on this device until you sign out."))
        ),
        Some(SessionEnd::At {
            at,
            soon: true,
            minutes_left,
        }) => format!(
            "<p class=\"alert\" role=\"alert\">{}</p>\n",
            escape(&fill(
                tr(
                    "You will be signed out automatically at {at} (in {minutes} min). Save your work."
                ),
                &[("at", at), ("minutes", &minutes_left.to_string())]
            ))
        ),
        Some(SessionEnd::At { at, .. }) => format!(
            "<p>{}</p>\n",
            escape(&fill(
                tr("You will be signed out automatically at {at}."),
                &[("at", at)]
            ))
        ),
    }
}

/// "Stay signed in?": both answers post to the prompt's action. No (a leased session, the
/// right answer on a device others use) comes first and is the highlighted choice; Yes is the
/// plain one.
pub fn stay_signed_in(device_token: &str, csrf: &str) -> Page {
    let body = format!(
        "<p>{question}</p>\n\
         <form method=\"post\" action=\"/portal/{token}/stay\">\n{csrf}\n\
         <button type=\"submit\" name=\"answer\" value=\"no\">{no}</button>\n\
         <button type=\"submit\" name=\"answer\" value=\"yes\" class=\"secondary\">{yes}</button>\n\
         </form>",
        question = escape(tr(
            "Stay signed in on this device until you sign out? Choose No if other people use this device."
        )),
        token = escape(device_token),
        csrf = hidden_csrf(csrf),
        no = escape(tr("No, sign me out when my time ends")),
        yes = escape(tr("Yes, stay signed in")),
    );
    Page::new(tr("Stay signed in?"), body)
}

/// The page of a signed-in device: who, when the session ends, and the sign-out form. `base`
/// is the path the person reached it by: `/portal/{device token}` (with the session's cookie)
/// or `/portal/session/{secret}` (the "Sign out" clip).
pub fn signed_in(base: &str, full_name: &str, csrf: &str, end: Option<SessionEnd>) -> Page {
    let body = format!(
        "{end}<a class=\"button secondary\" href=\"{base}/progress\">{progress}</a>\n\
         <form method=\"post\" action=\"{base}/sign-out\">\n{csrf}\n\
         <button type=\"submit\">{sign_out}</button>\n</form>",
        end = session_end_html(end.as_ref()),
        base = escape(base),
        csrf = hidden_csrf(csrf),
        progress = escape(tr("Show setup progress")),
        sign_out = escape(tr("Sign out")),
    );
    let mut page = Page::new(
        fill(tr("Signed in as {name}"), &[("name", full_name)]),
        body,
    );
    page.reminder = true;
    page
}

fn state_label(state: ItemState) -> &'static str {
    tr(match state {
        ItemState::Installed => "Installed",
        ItemState::Pending => "Pending",
        ItemState::Failed => "Failed",
    })
}

/// The person's own items: every item of the desired state but the "Sign out" clip, which
/// is the portal's, not theirs.
fn own_items(progress: &DeviceProgress) -> impl Iterator<Item = &ItemProgress> {
    progress.items.iter().filter(|i| i.item != SIGN_OUT_ITEM)
}

fn item_list(progress: &DeviceProgress) -> String {
    let mut list = String::from("<ul class=\"items\">\n");
    for item in own_items(progress) {
        let mut detail = String::new();
        if item.state == ItemState::Failed {
            if let Some(r) = item.reason.as_deref() {
                let _ = write!(
                    detail,
                    "<span class=\"reason\">{}</span>",
                    escape(&fill(tr("Reason: {reason}"), &[("reason", r)]))
                );
            }
            let next = if item.given_up {
                "Baton stopped retrying. Ask your administrator; you can use the device meanwhile."
            } else {
                "Baton retries this automatically. Keep the device on Wi-Fi and unlocked."
            };
            let _ = write!(detail, "<span class=\"next\">{}</span>", escape(tr(next)));
        }
        let _ = writeln!(
            list,
            "<li><span class=\"name\">{}</span><span class=\"state state-{}\">{}</span>{detail}</li>",
            escape(&item.name),
            match item.state {
                ItemState::Installed => "installed",
                ItemState::Pending => "pending",
                ItemState::Failed => "failed",
            },
            escape(state_label(item.state))
        );
    }
    list.push_str("</ul>");
    list
}

/// Sign-in progress: every item of the person's desired state (the "Sign out" clip aside),
/// updated in place until ready (`base` as for [`signed_in`]).
pub fn progress(base: &str, progress: &DeviceProgress, end: Option<SessionEnd>) -> Page {
    let own: Vec<&ItemProgress> = own_items(progress).collect();
    let installed = own
        .iter()
        .filter(|i| i.state == ItemState::Installed)
        .count();
    // Items Baton gave up on will not change by waiting: stop updating once only they are
    // left.
    let settled = own
        .iter()
        .all(|i| i.state == ItemState::Installed || i.given_up)
        && progress.removals_pending == 0;
    let done = progress.ready || settled;
    let heading = if progress.ready {
        tr("Your device is ready")
    } else if settled {
        tr("Some items could not be installed")
    } else {
        tr("Setting up your device…")
    };
    let mut live = format!(
        "<p class=\"status\">{}</p>\n",
        escape(&fill(
            tr("{done} of {total} items installed."),
            &[
                ("done", &installed.to_string()),
                ("total", &own.len().to_string())
            ]
        ))
    );
    live.push_str(&item_list(progress));
    let mut body = session_end_html(end.as_ref());
    body.push_str(&Page::live_region(&live, done));
    let _ = write!(
        body,
        "\n<a class=\"button secondary\" href=\"{}\">{}</a>",
        escape(base),
        escape(tr("Back"))
    );
    let mut page = Page::new(heading, body);
    page.live = !done;
    page
}

/// Sign-out progress: the changes still pending, named, then "ready for the next person"
/// with a button to the sign-in form (`sign_in_href`, the device's portal page).
pub fn signed_out(progress: &DeviceProgress, sign_in_href: &str) -> Page {
    if let Some(h) = progress
        .hand_off
        .as_ref()
        .filter(|h| h.state.is_not_clean())
    {
        return not_ready_for_next(h);
    }
    if progress.ready {
        // The button is inside the live region: a signing-out page updated in place to this
        // one gets it too.
        let live = format!(
            "<p class=\"status\">{}</p>\n<a class=\"button\" href=\"{}\">{}</a>\n",
            escape(tr("You are signed out. Your items were removed.")),
            escape(sign_in_href),
            escape(tr("Sign in"))
        );
        return Page::new(tr(READY_FOR_NEXT), Page::live_region(&live, true));
    }
    let mut changes: Vec<String> = progress
        .removals
        .iter()
        .map(|name| fill(tr("Remove {name}"), &[("name", name)]))
        .collect();
    changes.extend(
        progress
            .items
            .iter()
            .filter(|i| i.state != ItemState::Installed && i.item != SIGN_OUT_ITEM)
            .map(|i| fill(tr("Install {name}"), &[("name", &i.name)])),
    );
    // Nothing pending: the hand-off round is asking the device's lists.
    let status = if changes.is_empty() {
        tr("Checking that nothing of your session is left on this device.").to_owned()
    } else {
        fill(
            tr("{n} changes left on this device:"),
            &[("n", &changes.len().to_string())],
        )
    };
    let mut live = format!(
        "<p class=\"status\">{}</p>\n<ul class=\"items\">\n",
        escape(&status)
    );
    for change in &changes {
        let _ = writeln!(
            live,
            "<li><span class=\"name\">{}</span></li>",
            escape(change)
        );
    }
    live.push_str("</ul>\n");
    let _ = write!(
        live,
        "<p>{}</p>",
        escape(tr(
            "Keep the device on Wi-Fi and unlocked until this finishes."
        ))
    );
    let mut page = Page::new(tr("Signing out…"), Page::live_region(&live, false));
    page.live = true;
    page
}

/// A plain message page (`heading` and `text` are English message ids).
pub fn message(heading: &str, text: &str) -> Page {
    Page::new(tr(heading), format!("<p>{}</p>", escape(tr(text))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portal::branding::PortalBranding;
    use crate::portal::language::{JA, Lang, with_lang};
    use crate::reconciler::progress::ItemProgress;

    fn item(id: &str, name: &str, state: ItemState) -> ItemProgress {
        ItemProgress {
            item: id.into(),
            name: name.into(),
            state,
            given_up: false,
            reason: None,
        }
    }

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
        // A shared phone: nothing invites Safari to save the password.
        assert!(!html.contains("current-password"), "{html}");
        assert!(!html.contains("autocomplete=\"username\""));
        assert!(html.contains("id=\"password\" name=\"password\" autocomplete=\"off\""));
    }

    #[test]
    fn progress_updates_in_place_until_ready_and_skips_the_sign_out_clip() {
        let mut p = DeviceProgress {
            assignee: "alice".into(),
            items: vec![
                item("mail", "Mail <corp>", ItemState::Pending),
                item(SIGN_OUT_ITEM, "Sign out", ItemState::Installed),
            ],
            removals_pending: 0,
            removals: Vec::new(),
            ready: false,
            hand_off: None,
        };
        let b = PortalBranding::default();
        let html = progress("tok", &p, None).render(&b);
        assert!(!html.contains("http-equiv=\"refresh\" content=\"2\""));
        assert!(html.contains("aria-live=\"polite\" data-done=\"0\""));
        assert!(html.contains("live.js"));
        assert!(html.contains("Mail &lt;corp&gt;"));
        assert!(html.contains("0 of 1 items installed."), "{html}");
        assert!(
            !html.contains(">Sign out<"),
            "the clip is not one of your items"
        );
        // Given up: its reason and the next step, no more updates, never "ready".
        p.items[0].state = ItemState::Failed;
        p.items[0].given_up = true;
        p.items[0].reason = Some("LicenseNotFound <12064>".into());
        let html = progress("tok", &p, None).render(&b);
        assert!(!html.contains("live.js"));
        assert!(html.contains("data-done=\"1\""));
        assert!(html.contains("Reason: LicenseNotFound &lt;12064&gt;"));
        assert!(html.contains("Ask your administrator"));
        assert!(!html.contains("Your device is ready"));
        // Failed but still retried: says so.
        p.items[0].given_up = false;
        let html = progress("tok", &p, None).render(&b);
        assert!(html.contains("retries this automatically"), "{html}");
        assert!(html.contains("live.js"));
        p.items[0].reason = None;
        p.items[0].state = ItemState::Installed;
        p.ready = true;
        let html = progress("tok", &p, None).render(&b);
        assert!(!html.contains("live.js"));
        assert!(html.contains("Your device is ready"));
        assert!(html.contains("1 of 1 items installed."));
    }

    #[test]
    fn signing_out_names_the_changes_left_and_ready_offers_sign_in() {
        let b = PortalBranding::default();
        let mut p = DeviceProgress {
            assignee: "nobody".into(),
            items: vec![item("sign-in", "Sign in", ItemState::Pending)],
            removals_pending: 2,
            removals: vec!["Mail <corp>".into(), "com.example.notes".into()],
            ready: false,
            hand_off: None,
        };
        let html = signed_out(&p, "/portal/tok2").render(&b);
        assert!(html.contains("3 changes left on this device:"), "{html}");
        assert!(html.contains("Remove Mail &lt;corp&gt;"));
        assert!(html.contains("Remove com.example.notes"));
        assert!(html.contains("Install Sign in"));
        assert!(html.contains("live.js"));
        p.items[0].state = ItemState::Installed;
        p.removals.clear();
        p.removals_pending = 0;
        p.ready = true;
        let html = signed_out(&p, "/portal/tok2").render(&b);
        assert!(html.contains(READY_FOR_NEXT));
        assert!(html.contains("<a class=\"button\" href=\"/portal/tok2\">Sign in</a>"));
        assert!(!html.contains("live.js"));
    }

    #[test]
    fn a_not_clean_hand_off_names_what_remains_in_the_pages_language() {
        use crate::reconciler::hand_off::HandOffPolicy;
        let b = PortalBranding::default();
        let mut h = HandOff::started(Some("alice".into()), None, 1);
        h.conclude(
            vec![
                Remaining {
                    kind: RemainingKind::App,
                    identifier: "com.example.notes".into(),
                    item: None,
                    name: None,
                    reason: Some("MCMDMErrorDomain 12036".into()),
                },
                Remaining {
                    kind: RemainingKind::Missing,
                    identifier: "x".into(),
                    item: Some("sign-in".into()),
                    name: Some("Sign in".into()),
                    reason: None,
                },
            ],
            &HandOffPolicy::default(),
            2,
        );
        let p = DeviceProgress {
            assignee: "nobody".into(),
            items: Vec::new(),
            removals_pending: 0,
            removals: Vec::new(),
            ready: false,
            hand_off: Some(h.clone()),
        };
        let html = signed_out(&p, "/portal/tok2").render(&b);
        assert!(html.contains(NOT_FINISHED_HEADING), "{html}");
        assert!(html.contains("Remove com.example.notes (MCMDMErrorDomain 12036)"));
        assert!(html.contains("Install Sign in"), "the catalog name: {html}");
        assert!(html.contains("trying again"));
        assert!(html.contains("live.js"), "updates until clean");
        assert!(!html.contains("were removed"));
        let ja = super::super::language::with_lang(super::super::language::Lang::Ja, || {
            signed_out(&p, "/portal/tok2").render(&b)
        });
        assert!(ja.contains("サインアウトが終わっていません"), "{ja}");
        assert!(ja.contains("com.example.notesを削除"));
        // Given up: no more updates, the administrator's turn.
        h.state = HandOffState::GivenUp;
        let html = not_ready_for_next(&h).render(&b);
        assert!(!html.contains("live.js"));
        assert!(html.contains("administrator"));
    }

    #[test]
    fn session_end_is_shown_with_its_date_and_a_warning_when_close() {
        let b = PortalBranding::default();
        // 2026-12-07 22:04 UTC, shown in Tokyo: the next day's date.
        let tokyo = crate::session_policy::OperatorZone::parse("Asia/Tokyo").unwrap();
        let at = tokyo.format(1_796_681_040_000);
        let calm = signed_in(
            "tok",
            "Alice",
            "c",
            Some(SessionEnd::At {
                at: at.clone(),
                soon: false,
                minutes_left: 90,
            }),
        )
        .render(&b);
        assert!(
            calm.contains("signed out automatically at 2026-12-08 07:04 JST"),
            "{calm}"
        );
        assert!(!calm.contains("role=\"alert\""));
        assert!(calm.contains("class=\"button secondary\" href=\"tok/progress\""));
        let soon = signed_in(
            "tok",
            "Alice",
            "c",
            Some(SessionEnd::At {
                at,
                soon: true,
                minutes_left: 1,
            }),
        )
        .render(&b);
        assert!(soon.contains("role=\"alert\""));
        assert!(soon.contains("(in 1 min)"), "{soon}");
        let kept = signed_in("tok", "Alice", "c", Some(SessionEnd::UntilSignOut)).render(&b);
        assert!(kept.contains("until you sign out"));
    }

    #[test]
    fn the_stay_prompt_makes_no_the_primary_choice() {
        let html = stay_signed_in("tok", "c1").render(&PortalBranding::default());
        assert!(html.contains("action=\"/portal/tok/stay\""));
        assert!(html.contains("name=\"csrf\" value=\"c1\""));
        let no = html.find("value=\"no\"").unwrap();
        let yes = html.find("value=\"yes\"").unwrap();
        assert!(no < yes, "No comes first");
        assert!(
            html.contains("name=\"answer\" value=\"no\">"),
            "No is the accent button"
        );
        assert!(html.contains("name=\"answer\" value=\"yes\" class=\"secondary\""));
    }

    #[test]
    fn every_page_is_fully_translated_to_japanese() {
        let b = PortalBranding::default();
        let p = DeviceProgress {
            assignee: "alice".into(),
            items: vec![ItemProgress {
                reason: Some("x".into()),
                given_up: true,
                ..item("mail", "Mail", ItemState::Failed)
            }],
            removals_pending: 1,
            removals: vec!["Notes".into()],
            ready: false,
            hand_off: None,
        };
        let mut not_clean = HandOff::started(Some("alice".into()), None, 1);
        not_clean.conclude(
            vec![Remaining {
                kind: RemainingKind::Unanswered,
                identifier: "ProfileList".into(),
                item: None,
                name: None,
                reason: None,
            }],
            &crate::reconciler::hand_off::HandOffPolicy::default(),
            2,
        );
        let mut given_up = not_clean.clone();
        given_up.state = HandOffState::GivenUp;
        let pages = with_lang(Lang::Ja, || {
            vec![
                sign_in("t", "c", Some(WRONG_CREDENTIALS), ""),
                stay_signed_in("t", "c"),
                signed_in(
                    "t",
                    "Alice",
                    "c",
                    Some(SessionEnd::At {
                        at: "2026-12-08 07:04 JST".into(),
                        soon: true,
                        minutes_left: 5,
                    }),
                ),
                signed_in("t", "Alice", "c", Some(SessionEnd::UntilSignOut)),
                progress("t", &p, None),
                signed_out(&p, "/portal/t"),
                signed_out(
                    &DeviceProgress {
                        ready: true,
                        ..p.clone()
                    },
                    "/portal/t",
                ),
                signed_out(
                    &DeviceProgress {
                        items: Vec::new(),
                        removals: Vec::new(),
                        removals_pending: 0,
                        ..p.clone()
                    },
                    "/portal/t",
                ),
                not_ready_for_next(&not_clean),
                not_ready_for_next(&given_up),
                message(IN_USE_HEADING, SIGN_OUT_WITH_CLIP),
                message(ALREADY_SIGNED_IN_HEADING, ALREADY_SIGNED_IN),
            ]
        });
        for page in pages {
            let html = page.render(&b);
            assert!(html.contains("<html lang=\"ja\">"));
            for (en, _) in JA {
                // Placeholder-free ids must not appear in English.
                if !en.contains('{') && en.len() > 6 {
                    assert!(!html.contains(&escape(en)), "untranslated {en:?} in {html}");
                }
            }
        }
        let html = with_lang(Lang::Ja, || progress("t", &p, None)).render(&b);
        assert!(html.contains("失敗"), "{html}");
        assert!(html.contains("理由: x"));
    }
}
