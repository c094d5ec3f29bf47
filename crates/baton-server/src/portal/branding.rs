//! The portal's branding: page title, logo, accent colour and a reminder line, set by the
//! operator (`baton serve --portal-title/--portal-logo-url/--portal-accent-color/
//! --portal-reminder`) and shown on every portal page.

use std::fmt;

/// Why a branding value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BrandingError {
    /// The accent colour is not `#rrggbb`.
    #[error("accent colour must be #rrggbb, got {0:?}")]
    AccentColor(String),
    /// The logo URL is not an `https://` or `http://` URL.
    #[error("logo URL must start with https:// or http://, got {0:?}")]
    LogoUrl(String),
}

/// An accent colour, `#rrggbb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccentColor {
    rgb: [u8; 3],
}

impl AccentColor {
    /// The default accent (a dark blue with good contrast against white).
    pub const DEFAULT: AccentColor = AccentColor {
        rgb: [0x0b, 0x57, 0xd0],
    };

    /// Parses `#rrggbb` (hex digits in either case).
    pub fn parse(s: &str) -> Result<Self, BrandingError> {
        let bad = || BrandingError::AccentColor(s.to_owned());
        let hex = s.strip_prefix('#').ok_or_else(bad)?;
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut rgb = [0u8; 3];
        for (i, c) in rgb.iter_mut().enumerate() {
            *c = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).map_err(|_| bad())?;
        }
        Ok(AccentColor { rgb })
    }

    /// The text colour that contrasts with this accent as a background: black or white,
    /// whichever gives the higher WCAG contrast ratio.
    pub fn text_color(&self) -> &'static str {
        let lin = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.040_45 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        let [r, g, b] = self.rgb;
        let l = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
        // Contrast with black: (l + 0.05) / 0.05; with white: 1.05 / (l + 0.05).
        if (l + 0.05) / 0.05 > 1.05 / (l + 0.05) {
            "#000000"
        } else {
            "#ffffff"
        }
    }
}

impl fmt::Display for AccentColor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [r, g, b] = self.rgb;
        write!(f, "#{r:02x}{g:02x}{b:02x}")
    }
}

/// What the portal pages show besides their content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalBranding {
    /// Heading and `<title>` prefix (default "Baton").
    pub title: String,
    /// A logo image shown above the heading.
    pub logo_url: Option<String>,
    /// Buttons and links.
    pub accent: AccentColor,
    /// A line shown on the sign-in and signed-in pages, e.g. "Sign out of Microsoft apps first".
    pub reminder: Option<String>,
}

impl Default for PortalBranding {
    fn default() -> Self {
        PortalBranding {
            title: "Baton".to_owned(),
            logo_url: None,
            accent: AccentColor::DEFAULT,
            reminder: None,
        }
    }
}

impl PortalBranding {
    /// Checks a logo URL (only `https://` and `http://` are allowed into an `src`).
    pub fn check_logo_url(url: &str) -> Result<(), BrandingError> {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("https://") || lower.starts_with("http://") {
            Ok(())
        } else {
            Err(BrandingError::LogoUrl(url.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accent_colors_parse_and_pick_contrasting_text() {
        let c = AccentColor::parse("#FFcc00").unwrap();
        assert_eq!(c.to_string(), "#ffcc00");
        assert_eq!(c.text_color(), "#000000");
        assert_eq!(
            AccentColor::parse("#002060").unwrap().text_color(),
            "#ffffff"
        );
        for bad in ["ffcc00", "#ffcc0", "#ffcc000", "#gggggg", "", "#ffc"] {
            assert!(AccentColor::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn logo_urls_must_be_http() {
        assert!(PortalBranding::check_logo_url("https://x.example/logo.png").is_ok());
        assert!(PortalBranding::check_logo_url("javascript:alert(1)").is_err());
    }
}
