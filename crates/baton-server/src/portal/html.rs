//! The portal's small HTML renderer: escaping ([`escape`]) and the page shell ([`Page`]):
//! `lang`, viewport meta, one `<h1>`, the operator's branding, readable contrast, large touch
//! targets (48 px buttons, links styled as buttons), and for pages that change on their own a
//! live region ([`Page::live_region`]) that [`LIVE_SCRIPT`] updates in place, so a screen
//! reader announces what changed instead of re-reading a reloaded page. Every dynamic string
//! goes through [`escape`].

use std::fmt::Write;

use super::branding::PortalBranding;
use super::language::Lang;

/// Path of [`LIVE_SCRIPT`].
pub const LIVE_SCRIPT_PATH: &str = "/portal/assets/live.js";

/// Updates a page's `#live` region in place: every 2 seconds it fetches the same URL, and
/// when the new page's region differs it replaces the region's content and the heading
/// (the region is `aria-live="polite"`, so only the change is announced). It stops when the
/// region says `data-done="1"`, after 900 polls (30 minutes), or follows a page without a
/// region (the session ended: a redirect) by loading it.
pub const LIVE_SCRIPT: &str = r#"(function () {
  var region = document.getElementById("live");
  if (!region || region.getAttribute("data-done") === "1") return;
  var polls = 0;
  function tick() {
    if (++polls > 900) return;
    fetch(location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.redirected) { location.replace(r.url); return null; }
        return r.text();
      })
      .then(function (text) {
        if (text === null) return;
        var doc = new DOMParser().parseFromString(text, "text/html");
        var next = doc.getElementById("live");
        if (!next) { location.reload(); return; }
        if (next.innerHTML !== region.innerHTML) region.innerHTML = next.innerHTML;
        var h = doc.querySelector("h1"), mine = document.querySelector("h1");
        if (h && mine && h.textContent !== mine.textContent) mine.textContent = h.textContent;
        if (next.getAttribute("data-done") === "1") {
          region.setAttribute("data-done", "1");
          return;
        }
        setTimeout(tick, 2000);
      })
      .catch(function () { setTimeout(tick, 5000); });
  }
  setTimeout(tick, 2000);
})();
"#;

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page under construction: a heading and body HTML (already escaped by the caller).
#[derive(Debug, Clone)]
pub struct Page {
    /// The `<h1>` text (escaped here).
    pub heading: String,
    /// Body HTML below the heading.
    pub body: String,
    /// The page has a live region still changing: load [`LIVE_SCRIPT`] (and, without
    /// scripts, reload every 5 seconds).
    pub live: bool,
    /// The page's language (`<html lang>`), the request's when the page was made.
    pub lang: Lang,
    /// Show the operator's reminder line.
    pub reminder: bool,
}

impl Page {
    /// A page with `heading` and `body` HTML.
    pub fn new(heading: impl Into<String>, body: impl Into<String>) -> Self {
        Page {
            heading: heading.into(),
            body: body.into(),
            live: false,
            lang: Lang::current(),
            reminder: false,
        }
    }

    /// A live region around `inner` (HTML): `role="status"` and `aria-live="polite"`, with
    /// `data-done="1"` once nothing will change.
    pub fn live_region(inner: &str, done: bool) -> String {
        format!(
            "<div id=\"live\" role=\"status\" aria-live=\"polite\" data-done=\"{}\">\n{inner}</div>",
            if done { "1" } else { "0" }
        )
    }

    /// The whole document.
    pub fn render(&self, branding: &PortalBranding) -> String {
        let accent = branding.accent.to_string();
        let on_accent = branding.accent.text_color();
        let mut html = String::with_capacity(2048 + self.body.len());
        let _ = write!(
            html,
            "<!doctype html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n",
            self.lang.code()
        );
        html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        html.push_str("<meta name=\"referrer\" content=\"no-referrer\">\n");
        if self.live {
            let _ = writeln!(html, "<script src=\"{LIVE_SCRIPT_PATH}\" defer></script>");
            html.push_str("<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>\n");
        }
        let _ = writeln!(
            html,
            "<title>{} – {}</title>",
            escape(&self.heading),
            escape(&branding.title)
        );
        let _ = write!(
            html,
            "<style>\n\
             :root{{--accent:{accent};--on-accent:{on_accent}}}\n\
             body{{margin:0;font-family:-apple-system,system-ui,sans-serif;font-size:1.125rem;\
             line-height:1.5;color:#111;background:#fff}}\n\
             main{{max-width:30rem;margin:0 auto;padding:1.5rem 1.25rem}}\n\
             .brand{{font-size:1rem;font-weight:600;color:#333;margin:0 0 .5rem}}\n\
             .brand img{{max-height:3rem;max-width:100%;display:block;margin-bottom:.5rem}}\n\
             h1{{font-size:1.6rem;margin:.25rem 0 1rem}}\n\
             label{{display:block;font-weight:600;margin:1rem 0 .35rem}}\n\
             input[type=text],input[type=password]{{box-sizing:border-box;width:100%;min-height:48px;\
             font-size:1.125rem;padding:.6rem .75rem;border:2px solid #555;border-radius:8px}}\n\
             button,a.button{{display:block;box-sizing:border-box;width:100%;min-height:52px;\
             margin-top:1.25rem;padding:.8rem 1rem;font-size:1.2rem;font-weight:600;text-align:center;\
             text-decoration:none;border:0;border-radius:10px;background:var(--accent);\
             color:var(--on-accent)}}\n\
             button.secondary,a.button.secondary{{background:#fff;color:#111;border:2px solid #555}}\n\
             .hint{{font-size:1rem;color:#333;margin:.75rem 0 0}}\n\
             :focus-visible{{outline:3px solid #111;outline-offset:2px}}\n\
             .alert{{border-left:6px solid #b00020;background:#fdecee;padding:.75rem 1rem;color:#5f0010}}\n\
             .reminder{{background:#f3f3f3;padding:.75rem 1rem;border-radius:8px}}\n\
             ul.items{{list-style:none;padding:0}}\n\
             ul.items li{{display:flex;flex-wrap:wrap;justify-content:space-between;gap:.25rem 1rem;\
             padding:.75rem 0;border-bottom:1px solid #ddd}}\n\
             .state{{font-weight:600}}\n\
             .state-failed{{color:#b00020}}\n\
             .reason,.next{{flex-basis:100%;font-size:1rem;color:#333}}\n\
             </style>\n</head>\n<body>\n<main>\n"
        );
        html.push_str("<header class=\"brand\">");
        if let Some(logo) = &branding.logo_url {
            let _ = write!(html, "<img src=\"{}\" alt=\"\">", escape(logo));
        }
        let _ = writeln!(html, "<span>{}</span></header>", escape(&branding.title));
        let _ = writeln!(html, "<h1>{}</h1>", escape(&self.heading));
        if self.reminder
            && let Some(r) = &branding.reminder
        {
            let _ = writeln!(html, "<p class=\"reminder\">{}</p>", escape(r));
        }
        html.push_str(&self.body);
        html.push_str("\n</main>\n</body>\n</html>\n");
        html
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_shell_is_accessible_and_branded() {
        let branding = PortalBranding {
            title: "Ward <7>".into(),
            logo_url: Some("https://x.example/l.png?a=1&b=2".into()),
            reminder: Some("Sign out of Microsoft apps first".into()),
            ..PortalBranding::default()
        };
        let mut page = Page::new("Sign in", "<p>x</p>");
        page.reminder = true;
        let html = page.render(&branding);
        assert!(html.contains("<html lang=\"en\">"));
        let ja =
            super::super::language::with_lang(Lang::Ja, || Page::new("x", "")).render(&branding);
        assert!(ja.contains("<html lang=\"ja\">"));
        assert!(html.contains("name=\"viewport\""));
        assert!(html.contains("Ward &lt;7&gt;"));
        assert!(html.contains("l.png?a=1&amp;b=2"));
        assert!(html.contains("Sign out of Microsoft apps first"));
        assert!(!html.contains(LIVE_SCRIPT_PATH));
        page.live = true;
        let live = page.render(&branding);
        assert!(live.contains(&format!("<script src=\"{LIVE_SCRIPT_PATH}\" defer>")));
        // Without scripts only: a page that reloads itself is re-read from the top.
        assert!(live.contains("<noscript><meta http-equiv=\"refresh\""));
    }
}
