//! The portal branding flags of `baton serve` (`--portal-title`, `--portal-logo-url`,
//! `--portal-accent-color`, `--portal-reminder`), with their `BATON_*` variables, turned into
//! the server's typed [`PortalBranding`] (the accent colour must be `#rrggbb`).

use baton_server::portal::{AccentColor, PortalBranding};
use clap::Args;

/// Portal branding on the command line.
#[derive(Debug, Args)]
pub struct PortalArgs {
    /// Title shown on the sign-in portal pages [default: Baton].
    #[arg(long, env = "BATON_PORTAL_TITLE", value_name = "TEXT")]
    portal_title: Option<String>,
    /// Logo image URL (https:// or http://) shown on the portal pages.
    #[arg(long, env = "BATON_PORTAL_LOGO_URL", value_name = "URL")]
    portal_logo_url: Option<String>,
    /// Accent colour of the portal's buttons, `#rrggbb` [default: #0b57d0].
    #[arg(long, env = "BATON_PORTAL_ACCENT_COLOR", value_name = "#RRGGBB",
        value_parser = AccentColor::parse)]
    portal_accent_color: Option<AccentColor>,
    /// A reminder shown on the sign-in and signed-in pages, e.g. "Sign out of Microsoft apps
    /// first".
    #[arg(long, env = "BATON_PORTAL_REMINDER", value_name = "TEXT")]
    portal_reminder: Option<String>,
}

/// The same settings from the config file (`baton serve --config`).
#[derive(Debug, Default)]
pub struct PortalFileValues {
    pub portal_title: Option<String>,
    pub portal_logo_url: Option<String>,
    /// `#rrggbb`, checked like the flag.
    pub portal_accent_color: Option<String>,
    pub portal_reminder: Option<String>,
}

impl PortalArgs {
    /// Fills what the flags and variables left unset from the config file.
    pub fn with_file(self, file: PortalFileValues) -> anyhow::Result<Self> {
        let accent = match (self.portal_accent_color, file.portal_accent_color) {
            (Some(a), _) => Some(a),
            (None, Some(text)) => Some(
                AccentColor::parse(&text)
                    .map_err(|e| anyhow::anyhow!("portal-accent-color in the config file: {e}"))?,
            ),
            (None, None) => None,
        };
        Ok(PortalArgs {
            portal_title: self.portal_title.or(file.portal_title),
            portal_logo_url: self.portal_logo_url.or(file.portal_logo_url),
            portal_accent_color: accent,
            portal_reminder: self.portal_reminder.or(file.portal_reminder),
        })
    }

    /// The branding, or why a value is refused.
    pub fn into_branding(self) -> anyhow::Result<PortalBranding> {
        let mut branding = PortalBranding::default();
        if let Some(title) = self.portal_title.filter(|t| !t.trim().is_empty()) {
            branding.title = title;
        }
        if let Some(url) = self.portal_logo_url {
            PortalBranding::check_logo_url(&url)?;
            branding.logo_url = Some(url);
        }
        if let Some(accent) = self.portal_accent_color {
            branding.accent = accent;
        }
        branding.reminder = self.portal_reminder.filter(|r| !r.trim().is_empty());
        Ok(branding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: PortalArgs,
    }

    fn parse(argv: &[&str]) -> Result<PortalArgs, clap::Error> {
        Wrapper::try_parse_from(std::iter::once("serve").chain(argv.iter().copied()))
            .map(|w| w.args)
    }

    #[test]
    fn flags_become_branding() {
        let b = parse(&[
            "--portal-title",
            "Ward 7",
            "--portal-accent-color",
            "#AA0011",
            "--portal-reminder",
            "Sign out of Microsoft apps first",
            "--portal-logo-url",
            "https://x.example/logo.png",
        ])
        .unwrap()
        .into_branding()
        .unwrap();
        assert_eq!(b.title, "Ward 7");
        assert_eq!(b.accent.to_string(), "#aa0011");
        assert_eq!(
            b.reminder.as_deref(),
            Some("Sign out of Microsoft apps first")
        );
        assert_eq!(
            parse(&[]).unwrap().into_branding().unwrap(),
            PortalBranding::default()
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&["--portal-accent-color", "red"]).is_err());
        assert!(
            parse(&["--portal-logo-url", "javascript:alert(1)"])
                .unwrap()
                .into_branding()
                .is_err()
        );
    }
}
