//! The portal's languages: English and Japanese, chosen by the browser's `Accept-Language`
//! ([`Lang::from_accept_language`], q-values honoured, English when nothing matches).
//!
//! Texts are written in English in the pages and looked up with [`tr`] (the English text is
//! the message id, as in gettext); [`JA`] holds the Japanese ones. Placeholders `{name}` are
//! filled by [`fill`] after the lookup. The language of the request is set for the blocking
//! section that builds the page ([`with_lang`]); pages read it with [`Lang::current`].

use std::cell::Cell;
use std::convert::Infallible;

use axum::extract::FromRequestParts;
use http::request::Parts;

/// A language of the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Lang {
    /// English (the default).
    #[default]
    En,
    /// Japanese.
    Ja,
}

thread_local! {
    static CURRENT: Cell<Lang> = const { Cell::new(Lang::En) };
}

impl Lang {
    /// The BCP 47 code for `<html lang>`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    /// The best language for an `Accept-Language` value: the supported language with the
    /// highest q (ties: the first listed), English when none is acceptable.
    pub fn from_accept_language(header: Option<&str>) -> Lang {
        let Some(header) = header else {
            return Lang::En;
        };
        let mut best: Option<(u16, Lang)> = None;
        for part in header.split(',').take(32) {
            let mut fields = part.split(';');
            let tag = fields.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = fields
                .find_map(|f| f.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .map_or(1000, |q| (q.clamp(0.0, 1.0) * 1000.0) as u16);
            let primary = tag.split('-').next().unwrap_or("");
            let lang = match primary {
                "ja" => Lang::Ja,
                "en" => Lang::En,
                _ => continue,
            };
            if q > 0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::En, |(_, l)| l)
    }

    /// The language of the page being built on this thread (see [`with_lang`]).
    pub fn current() -> Lang {
        CURRENT.with(Cell::get)
    }
}

/// Runs `f` with `lang` as [`Lang::current`] on this thread, then restores the previous one.
pub fn with_lang<T>(lang: Lang, f: impl FnOnce() -> T) -> T {
    struct Restore(Lang);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(lang)));
    f()
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Lang::from_accept_language(
            parts
                .headers
                .get(http::header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
        ))
    }
}

/// `english` in the current language (itself when no translation is known).
pub fn tr(english: &str) -> &str {
    match Lang::current() {
        Lang::En => english,
        Lang::Ja => JA
            .iter()
            .find(|(en, _)| *en == english)
            .map_or(english, |(_, ja)| *ja),
    }
}

/// Replaces each `{name}` in `text` with its value.
pub fn fill(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = text.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// English message id -> Japanese.
pub const JA: &[(&str, &str)] = &[
    (
        "Wrong username or password.",
        "ユーザー名またはパスワードが違います。",
    ),
    (
        "Too many sign-in attempts at once. Try again in a minute.",
        "同時にサインインが多すぎます。1分後にもう一度お試しください。",
    ),
    (
        "This account cannot sign in. Ask your administrator.",
        "このアカウントはサインインできません。管理者に連絡してください。",
    ),
    ("This device is in use", "このデバイスは使用中です"),
    (
        "Someone is signed in on this device. To sign out, open \"Sign out\" on the Home Screen.",
        "このデバイスには他の人がサインインしています。サインアウトするには、ホーム画面の「サインアウト」を開いてください。",
    ),
    ("This session has ended", "このセッションは終了しました"),
    (
        "Device is ready for the next person",
        "次の人が使える状態になりました",
    ),
    ("Username", "ユーザー名"),
    ("Password", "パスワード"),
    ("Sign in", "サインイン"),
    ("Sign in to this device", "このデバイスにサインイン"),
    (
        "This device is shared: your password is not saved on it.",
        "このデバイスは共用です。パスワードはデバイスに保存されません。",
    ),
    (
        "You stay signed in on this device until you sign out.",
        "サインアウトするまで、このデバイスにサインインしたままになります。",
    ),
    (
        "You will be signed out automatically at {at} (in {minutes} min). Save your work.",
        "{at}（あと{minutes}分）に自動的にサインアウトされます。作業内容を保存してください。",
    ),
    (
        "You will be signed out automatically at {at}.",
        "{at}に自動的にサインアウトされます。",
    ),
    ("Stay signed in?", "サインインしたままにしますか？"),
    (
        "Stay signed in on this device until you sign out? Choose No if other people use this device.",
        "サインアウトするまで、このデバイスにサインインしたままにしますか？ 他の人もこのデバイスを使う場合は「いいえ」を選んでください。",
    ),
    (
        "No, sign me out when my time ends",
        "いいえ、時間が来たらサインアウトする",
    ),
    ("Yes, stay signed in", "はい、サインインしたままにする"),
    ("Signed in as {name}", "{name}としてサインイン中"),
    ("Show setup progress", "設定の進み具合を見る"),
    ("Sign out", "サインアウト"),
    ("Installed", "インストール済み"),
    ("Pending", "待機中"),
    ("Failed", "失敗"),
    (
        "{done} of {total} items installed.",
        "{total}件中{done}件をインストールしました。",
    ),
    ("Back", "戻る"),
    ("Your device is ready", "デバイスの準備ができました"),
    (
        "Some items could not be installed",
        "一部の項目をインストールできませんでした",
    ),
    ("Setting up your device…", "デバイスを設定しています…"),
    (
        "Baton stopped retrying. Ask your administrator; you can use the device meanwhile.",
        "再試行を終了しました。管理者に連絡してください。その間もデバイスは使えます。",
    ),
    (
        "Baton retries this automatically. Keep the device on Wi-Fi and unlocked.",
        "自動的に再試行します。デバイスをWi-Fiにつないだまま、ロックを解除しておいてください。",
    ),
    ("Reason: {reason}", "理由: {reason}"),
    (
        "You are signed out. Your items were removed.",
        "サインアウトしました。あなたの項目は削除されました。",
    ),
    ("Signing out…", "サインアウトしています…"),
    (
        "{n} changes left on this device:",
        "このデバイスで残りの変更が{n}件あります:",
    ),
    ("Remove {name}", "{name}を削除"),
    ("Install {name}", "{name}をインストール"),
    (
        "Keep the device on Wi-Fi and unlocked until this finishes.",
        "終わるまで、デバイスをWi-Fiにつないだまま、ロックを解除しておいてください。",
    ),
    (
        "Checking that nothing of your session is left on this device.",
        "このデバイスにあなたのものが残っていないか確認しています。",
    ),
    ("Sign-out not finished", "サインアウトが終わっていません"),
    ("Not finished:", "終わっていない項目:"),
    ("No answer to {name}", "{name}に応答がありません"),
    (
        "Baton stopped trying; your administrator has been told. Ask them before using this device.",
        "再試行を終了し、管理者に通知しました。このデバイスを使う前に管理者に確認してください。",
    ),
    (
        "Baton is trying again; this page updates by itself.",
        "再試行しています。このページは自動的に更新されます。",
    ),
    ("You are already signed in", "すでにサインインしています"),
    (
        "You are already signed in on this device. To see your items or sign out, open \"Sign out\" on the Home Screen.",
        "このデバイスにはすでにサインインしています。項目を確認するかサインアウトするには、ホーム画面の「サインアウト」を開いてください。",
    ),
    ("Page not found", "ページが見つかりません"),
    ("Too much input", "入力が多すぎます"),
    (
        "The form was too large. Please try again.",
        "フォームが大きすぎます。もう一度お試しください。",
    ),
    ("Not your question", "この質問には答えられません"),
    (
        "This link belonged to a session that has ended.",
        "このリンクは終了したセッションのものです。",
    ),
    ("This link is not valid.", "このリンクは無効です。"),
    (
        "This form has expired",
        "このフォームは有効期限が切れました",
    ),
    (
        "Go back, reload the page and try again.",
        "戻ってページを再読み込みし、もう一度お試しください。",
    ),
    (
        "Someone is signed in on this device. They must sign out first.",
        "このデバイスには他の人がサインインしています。先にその人がサインアウトする必要があります。",
    ),
    ("Something went wrong", "問題が発生しました"),
    (
        "Please try again in a moment.",
        "しばらくしてからもう一度お試しください。",
    ),
    (
        "Too many sign-in attempts. Try again in {minutes} min.",
        "サインインの試行が多すぎます。{minutes}分後にもう一度お試しください。",
    ),
    (
        "This page is no longer valid. Open \"Sign in\" on the Home Screen.",
        "このページは無効になりました。ホーム画面の「サインイン」を開いてください。",
    ),
    (
        "Only the browser that signed in can answer \"Stay signed in?\".",
        "「サインインしたままにしますか？」に答えられるのは、サインインしたブラウザだけです。",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_supported() {
        let pick = |h: &str| Lang::from_accept_language(Some(h));
        assert_eq!(Lang::from_accept_language(None), Lang::En);
        assert_eq!(pick("ja"), Lang::Ja);
        assert_eq!(pick("ja-JP,ja;q=0.9,en-US;q=0.8"), Lang::Ja);
        assert_eq!(pick("en-US,en;q=0.9,ja;q=0.8"), Lang::En);
        assert_eq!(pick("fr-FR,ja;q=0.5"), Lang::Ja);
        assert_eq!(pick("fr-FR,de;q=0.5"), Lang::En);
        assert_eq!(pick("ja;q=0,en;q=0.1"), Lang::En);
        assert_eq!(pick("en;q=0.2, ja;q=0.7"), Lang::Ja);
        assert_eq!(pick(""), Lang::En);
    }

    #[test]
    fn translations_are_looked_up_and_filled() {
        assert_eq!(tr("Sign in"), "Sign in");
        with_lang(Lang::Ja, || {
            assert_eq!(tr("Sign in"), "サインイン");
            assert_eq!(Lang::current(), Lang::Ja);
            // Unknown ids stay English.
            assert_eq!(tr("no such text"), "no such text");
        });
        assert_eq!(Lang::current(), Lang::En);
        assert_eq!(
            fill(
                tr("{done} of {total} items installed."),
                &[("done", "1"), ("total", "3")]
            ),
            "1 of 3 items installed."
        );
    }

    #[test]
    fn every_japanese_text_keeps_the_placeholders() {
        for (en, ja) in JA {
            let names = |s: &str| {
                let mut v: Vec<String> = s
                    .split('{')
                    .skip(1)
                    .filter_map(|p| p.split_once('}').map(|(n, _)| n.to_owned()))
                    .collect();
                v.sort();
                v
            };
            assert_eq!(names(en), names(ja), "{en}");
            assert!(!ja.is_empty());
        }
        let mut ids: Vec<&str> = JA.iter().map(|(en, _)| *en).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), JA.len(), "duplicate message ids");
    }
}
