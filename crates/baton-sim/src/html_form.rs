//! Reading HTML forms the way a browser does, enough for a person filling in the sign-in
//! portal: every `<form>` of a page with its `action`, `method` and fields (`<input>`,
//! `<button>`, `<textarea>`), attribute values with or without quotes, in any case, with
//! character references decoded. No fixed offsets: the page may reorder or restyle its markup.
//!
//! What it is not: an HTML5 parser. It does not build a tree, run scripts or apply CSS; comments
//! are skipped, and a form ends at the next `</form>` (forms do not nest in HTML).

/// One field of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormField {
    /// `name`.
    pub name: String,
    /// `type`, lower case (`text` when absent; `textarea` and `button` for those elements).
    pub kind: String,
    /// `value` (the text of a `<textarea>`).
    pub value: String,
}

/// One form of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtmlForm {
    /// `action` as written (empty: the page's own URL).
    pub action: String,
    /// `method`, lower case (`get` when absent).
    pub method: String,
    /// Named fields, in document order.
    pub fields: Vec<FormField>,
}

impl HtmlForm {
    /// True when the form has a field called `name`.
    pub fn has_field(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f.name == name)
    }

    /// True when the form has a password field.
    pub fn has_password(&self) -> bool {
        self.fields.iter().any(|f| f.kind == "password")
    }

    /// What submitting the form sends: every hidden field as rendered (e.g. the CSRF token),
    /// then `typed` (what the person entered). Buttons, checkboxes and unnamed fields are left
    /// out, and a typed value replaces a hidden field of the same name.
    pub fn submission(&self, typed: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .fields
            .iter()
            .filter(|f| f.kind == "hidden" && !typed.iter().any(|(n, _)| *n == f.name))
            .map(|f| (f.name.clone(), f.value.clone()))
            .collect();
        out.extend(
            typed
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        out
    }
}

/// Every form of `html`, in document order.
pub fn forms(html: &str) -> Vec<HtmlForm> {
    let tags = tags(html);
    let mut out = Vec::new();
    let mut current: Option<HtmlForm> = None;
    let mut i = 0;
    while i < tags.len() {
        let tag = &tags[i];
        match tag.name.as_str() {
            "form" => {
                if let Some(f) = current.take() {
                    out.push(f);
                }
                current = Some(HtmlForm {
                    action: tag.attr("action").unwrap_or_default(),
                    method: tag
                        .attr("method")
                        .map_or_else(|| "get".to_owned(), |m| m.to_ascii_lowercase()),
                    fields: Vec::new(),
                });
            }
            "/form" => {
                if let Some(f) = current.take() {
                    out.push(f);
                }
            }
            "input" | "button" | "textarea" => {
                if let (Some(form), Some(name)) = (current.as_mut(), tag.attr("name")) {
                    let kind = match tag.name.as_str() {
                        "input" => tag
                            .attr("type")
                            .map_or_else(|| "text".to_owned(), |t| t.to_ascii_lowercase()),
                        other => other.to_owned(),
                    };
                    let value = if tag.name == "textarea" {
                        decode_entities(&tag.text_after)
                    } else {
                        tag.attr("value").unwrap_or_default()
                    };
                    form.fields.push(FormField { name, kind, value });
                }
            }
            _ => {}
        }
        i += 1;
    }
    if let Some(f) = current {
        out.push(f);
    }
    out
}

/// True when the page reloads itself (`<meta http-equiv="refresh">`): progress pages do until
/// the work is done.
pub fn refreshes(html: &str) -> bool {
    tags(html).iter().any(|t| {
        t.name == "meta"
            && t.attr("http-equiv")
                .is_some_and(|v| v.eq_ignore_ascii_case("refresh"))
    })
}

/// The text of the first `<h1>` (tags inside it dropped, whitespace collapsed).
pub fn heading(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let start = lower.find("<h1")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</h1")?;
    let mut text = String::new();
    let mut in_tag = false;
    for c in html[open_end..close].chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    Some(
        decode_entities(&text)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The visible text of `html` (tags, `<style>` and `<head>` dropped, whitespace collapsed),
/// for error messages.
pub fn text(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let body = lower.find("<body").map_or(0, |i| i);
    let mut out = String::new();
    let mut in_tag = false;
    for c in html[body..].chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    decode_entities(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A start or end tag with its attributes.
#[derive(Debug)]
struct Tag {
    /// Lower-case name; end tags start with `/`.
    name: String,
    attrs: Vec<(String, String)>,
    /// Raw text up to the next tag (for `<textarea>`).
    text_after: String,
}

impl Tag {
    fn attr(&self, name: &str) -> Option<String> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}

/// The tags of `html`, skipping comments and `<!doctype>`.
fn tags(html: &str) -> Vec<Tag> {
    let bytes = html.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = html[i..].find('<') {
        let start = i + off;
        if html[start..].starts_with("<!--") {
            i = html[start..]
                .find("-->")
                .map_or(html.len(), |e| start + e + 3);
            continue;
        }
        // Find the tag's end, skipping `>` inside quoted attribute values.
        let mut j = start + 1;
        let mut quote: Option<u8> = None;
        while j < bytes.len() {
            let b = bytes[j];
            match quote {
                Some(q) if b == q => quote = None,
                Some(_) => {}
                None if b == b'"' || b == b'\'' => quote = Some(b),
                None if b == b'>' => break,
                None => {}
            }
            j += 1;
        }
        if j >= bytes.len() {
            break;
        }
        let inner = &html[start + 1..j];
        i = j + 1;
        if inner.starts_with('!') || inner.starts_with('?') {
            continue;
        }
        let next = html[i..].find('<').map_or(html.len(), |o| i + o);
        if let Some(mut tag) = parse_tag(inner) {
            tag.text_after = html[i..next].to_owned();
            out.push(tag);
        }
    }
    out
}

fn parse_tag(inner: &str) -> Option<Tag> {
    let inner = inner.trim_end_matches('/').trim();
    let name_end = inner
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(inner.len());
    let name = inner[..name_end].to_ascii_lowercase();
    if name.is_empty() || name == "/" {
        return None;
    }
    let rest = &inner.as_bytes()[name_end..];
    let mut attrs = Vec::new();
    let mut k = 0;
    while k < rest.len() {
        while k < rest.len() && (rest[k].is_ascii_whitespace() || rest[k] == b'/') {
            k += 1;
        }
        let n0 = k;
        while k < rest.len() && !rest[k].is_ascii_whitespace() && rest[k] != b'=' && rest[k] != b'/'
        {
            k += 1;
        }
        if n0 == k {
            break;
        }
        let attr_name = String::from_utf8_lossy(&rest[n0..k]).to_ascii_lowercase();
        while k < rest.len() && rest[k].is_ascii_whitespace() {
            k += 1;
        }
        let mut value = String::new();
        if k < rest.len() && rest[k] == b'=' {
            k += 1;
            while k < rest.len() && rest[k].is_ascii_whitespace() {
                k += 1;
            }
            if k < rest.len() && (rest[k] == b'"' || rest[k] == b'\'') {
                let q = rest[k];
                let v0 = k + 1;
                k = v0;
                while k < rest.len() && rest[k] != q {
                    k += 1;
                }
                value = String::from_utf8_lossy(&rest[v0..k.min(rest.len())]).into_owned();
                k += 1;
            } else {
                let v0 = k;
                while k < rest.len() && !rest[k].is_ascii_whitespace() {
                    k += 1;
                }
                value = String::from_utf8_lossy(&rest[v0..k]).into_owned();
            }
        }
        attrs.push((attr_name, decode_entities(&value)));
    }
    Some(Tag {
        name,
        attrs,
        text_after: String::new(),
    })
}

/// Decodes the character references HTML attribute values and text use: the five named
/// escapes, `&nbsp;`, and numeric ones. Unknown references stay as written.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let decoded = after.find(';').filter(|&e| e <= 10).and_then(|end| {
            let name = &after[..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                n if n.starts_with("#x") || n.starts_with("#X") => u32::from_str_radix(&n[2..], 16)
                    .ok()
                    .and_then(char::from_u32),
                n if n.starts_with('#') => n[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            }?;
            Some((c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGN_IN: &str = r#"<!doctype html><html><head>
<meta http-equiv="Refresh" content="2"><title>x</title></head><body>
<!-- <form action="/decoy"> -->
<H1>Sign in <span>to</span> this&nbsp;device</H1>
<FORM Method=POST action='/portal/a&amp;b/sign-in'>
<input type="hidden" name="csrf" value="t&quot;1">
<input id=username name=username value="" autocomplete="username" required autofocus>
<input type="password" name="password" data-x="a>b">
<button type="submit">Sign in</button>
</form>
<form method="post" action="/portal/x/sign-out"><input type=hidden name=csrf value=c2 /></form>
</body></html>"#;

    #[test]
    fn reads_forms_in_any_markup_style() {
        let f = forms(SIGN_IN);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].action, "/portal/a&b/sign-in");
        assert_eq!(f[0].method, "post");
        assert!(f[0].has_field("username") && f[0].has_password());
        assert!(!f[1].has_password());
        assert_eq!(f[1].action, "/portal/x/sign-out");
        assert_eq!(
            f[0].submission(&[("username", "al"), ("password", "pw")]),
            vec![
                ("csrf".to_owned(), "t\"1".to_owned()),
                ("username".to_owned(), "al".to_owned()),
                ("password".to_owned(), "pw".to_owned()),
            ]
        );
        assert_eq!(
            f[1].submission(&[]),
            vec![("csrf".to_owned(), "c2".to_owned())]
        );
    }

    #[test]
    fn refresh_and_heading() {
        assert!(refreshes(SIGN_IN));
        assert!(!refreshes("<meta charset=\"utf-8\"><p>refresh</p>"));
        assert_eq!(heading(SIGN_IN).as_deref(), Some("Sign in to this device"));
        assert_eq!(heading("<p>none</p>"), None);
        assert_eq!(
            text("<head><title>t</title></head><body><p>a&amp;b</p>\n<li>c</li></body>"),
            "a&b c"
        );
    }

    #[test]
    fn entities_and_broken_markup_do_not_panic() {
        assert_eq!(
            decode_entities("a&lt;b&#62;&#x41;&bogus;&"),
            "a<b>A&bogus;&"
        );
        for bad in [
            "<",
            "<form",
            "<form action=\"x",
            "<input name=>",
            "<<>>",
            "</>",
        ] {
            let _ = forms(bad);
            let _ = refreshes(bad);
            let _ = heading(bad);
        }
        assert!(forms("<input name=a>").is_empty(), "input outside a form");
    }
}
