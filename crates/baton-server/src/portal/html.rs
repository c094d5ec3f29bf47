//! The portal's small HTML renderer: escaping ([`escape`]) and the page shell ([`Page`]):
//! `lang`, viewport meta, one `<h1>`, the operator's branding, readable contrast, large touch
//! targets, an optional 2-second refresh. Every dynamic string goes through [`escape`].

use std::fmt::Write;

use super::branding::PortalBranding;

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
    /// Reload every 2 seconds (progress pages).
    pub refresh: bool,
    /// Show the operator's reminder line.
    pub reminder: bool,
}

impl Page {
    /// A page with `heading` and `body` HTML.
    pub fn new(heading: impl Into<String>, body: impl Into<String>) -> Self {
        Page {
            heading: heading.into(),
            body: body.into(),
            refresh: false,
            reminder: false,
        }
    }

    /// The whole document.
    pub fn render(&self, branding: &PortalBranding) -> String {
        let accent = branding.accent.to_string();
        let on_accent = branding.accent.text_color();
        let mut html = String::with_capacity(2048 + self.body.len());
        html.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        html.push_str("<meta name=\"referrer\" content=\"no-referrer\">\n");
        if self.refresh {
            html.push_str("<meta http-equiv=\"refresh\" content=\"2\">\n");
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
             button{{width:100%;min-height:48px;margin-top:1.5rem;font-size:1.125rem;font-weight:600;\
             border:0;border-radius:8px;background:var(--accent);color:var(--on-accent)}}\n\
             button.secondary{{background:#fff;color:#111;border:2px solid #555}}\n\
             :focus-visible{{outline:3px solid #111;outline-offset:2px}}\n\
             .alert{{border-left:6px solid #b00020;background:#fdecee;padding:.75rem 1rem;color:#5f0010}}\n\
             .reminder{{background:#f3f3f3;padding:.75rem 1rem;border-radius:8px}}\n\
             ul.items{{list-style:none;padding:0}}\n\
             ul.items li{{display:flex;justify-content:space-between;gap:1rem;padding:.6rem 0;\
             border-bottom:1px solid #ddd}}\n\
             .state{{font-weight:600}}\n\
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
        assert!(html.contains("name=\"viewport\""));
        assert!(html.contains("Ward &lt;7&gt;"));
        assert!(html.contains("l.png?a=1&amp;b=2"));
        assert!(html.contains("Sign out of Microsoft apps first"));
        assert!(!html.contains("http-equiv=\"refresh\""));
        page.refresh = true;
        assert!(
            page.render(&branding)
                .contains("http-equiv=\"refresh\" content=\"2\"")
        );
    }
}
