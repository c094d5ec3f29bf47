//! What the server keeps of a device's command report: bounded, whatever the device sent.
//!
//! A device body may be up to the device body limit (4 MiB), and a device can send as many
//! reports as it likes. Before a report is stored, handed to the reconciler or turned into a
//! webhook event, its `ErrorChain` is bounded ([`bounded_error_chain`]: at most
//! [`MAX_ERROR_CHAIN_ITEMS`] items, each text at most [`MAX_ERROR_TEXT_BYTES`]) and the raw body
//! kept beside the result is cut to [`MAX_STORED_RAW_BYTES`] ([`stored_raw_body`]). Both leave a
//! marker where they cut, so nobody mistakes a truncated value for the device's whole answer.
//! The typed views the reconciler reads (ProfileList, ManagedApplicationList) come from the
//! decoded report, not from the stored raw body, so they are not affected.
//!
//! Pure functions: no IO, no clock.

use baton_proto::ErrorChainItem;

/// Most bytes of a report body stored with its result (or orphan record); the rest is cut and
/// a marker appended.
pub const MAX_STORED_RAW_BYTES: usize = 64 * 1024;
/// Most ErrorChain items kept; further items are replaced by one marker item.
pub const MAX_ERROR_CHAIN_ITEMS: usize = 8;
/// Most bytes kept of each ErrorChain text (descriptions); longer ones are cut and marked.
pub const MAX_ERROR_TEXT_BYTES: usize = 1024;
/// Most bytes kept of an ErrorDomain.
pub const MAX_ERROR_DOMAIN_BYTES: usize = 256;
/// The ErrorDomain of the marker item that stands for dropped ErrorChain items.
pub const TRUNCATED_DOMAIN: &str = "baton.truncated";
/// Appended to a text that was cut.
pub const TEXT_MARKER: &str = " [truncated by baton]";

/// The raw body as stored: unchanged when it fits in [`MAX_STORED_RAW_BYTES`], else its first
/// bytes (cut before a UTF-8 continuation byte) followed by an XML comment saying how many
/// bytes arrived. A cut body is no longer a valid plist; the marker says so to a reader.
pub fn stored_raw_body(body: &[u8]) -> Vec<u8> {
    if body.len() <= MAX_STORED_RAW_BYTES {
        return body.to_vec();
    }
    let cut = utf8_cut(body, MAX_STORED_RAW_BYTES);
    let marker = format!(
        "\n<!-- baton: body truncated, {} bytes received, the first {cut} kept -->\n",
        body.len()
    );
    let mut out = Vec::with_capacity(cut + marker.len());
    out.extend_from_slice(&body[..cut]);
    out.extend_from_slice(marker.as_bytes());
    out
}

/// True when [`stored_raw_body`] would cut this body.
pub fn raw_body_is_truncated(body: &[u8]) -> bool {
    body.len() > MAX_STORED_RAW_BYTES
}

/// The ErrorChain as kept: at most [`MAX_ERROR_CHAIN_ITEMS`] items (when more were sent, the
/// last kept item is a marker with domain [`TRUNCATED_DOMAIN`] saying how many were dropped),
/// descriptions cut to [`MAX_ERROR_TEXT_BYTES`] and domains to [`MAX_ERROR_DOMAIN_BYTES`], each
/// cut text ending in [`TEXT_MARKER`].
pub fn bounded_error_chain(chain: &[ErrorChainItem]) -> Vec<ErrorChainItem> {
    let keep = if chain.len() > MAX_ERROR_CHAIN_ITEMS {
        MAX_ERROR_CHAIN_ITEMS - 1
    } else {
        chain.len()
    };
    let mut out: Vec<ErrorChainItem> = chain[..keep]
        .iter()
        .map(|item| ErrorChainItem {
            code: item.code,
            domain: bounded_text(&item.domain, MAX_ERROR_DOMAIN_BYTES),
            localized_description: item
                .localized_description
                .as_deref()
                .map(|t| bounded_text(t, MAX_ERROR_TEXT_BYTES)),
            us_english_description: item
                .us_english_description
                .as_deref()
                .map(|t| bounded_text(t, MAX_ERROR_TEXT_BYTES)),
        })
        .collect();
    if keep < chain.len() {
        out.push(ErrorChainItem {
            code: 0,
            domain: TRUNCATED_DOMAIN.to_owned(),
            localized_description: Some(format!(
                "{} more ErrorChain items were dropped by baton",
                chain.len() - keep
            )),
            us_english_description: None,
        });
    }
    out
}

/// True when [`bounded_error_chain`] would change this chain.
pub fn error_chain_is_truncated(chain: &[ErrorChainItem]) -> bool {
    chain.len() > MAX_ERROR_CHAIN_ITEMS
        || chain.iter().any(|i| {
            i.domain.len() > MAX_ERROR_DOMAIN_BYTES
                || [&i.localized_description, &i.us_english_description]
                    .iter()
                    .any(|t| t.as_ref().is_some_and(|t| t.len() > MAX_ERROR_TEXT_BYTES))
        })
}

/// `text` when it fits in `max` bytes, else its first bytes (on a char boundary) and
/// [`TEXT_MARKER`].
fn bounded_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(cut + TEXT_MARKER.len());
    out.push_str(&text[..cut]);
    out.push_str(TEXT_MARKER);
    out
}

/// The largest length `<= max` that does not split a UTF-8 sequence (for bytes that are UTF-8;
/// for other bytes, at most 3 bytes shorter than `max`).
fn utf8_cut(bytes: &[u8], max: usize) -> usize {
    let mut cut = max.min(bytes.len());
    let floor = cut.saturating_sub(3);
    while cut > floor && bytes.get(cut).is_some_and(|b| b & 0xC0 == 0x80) {
        cut -= 1;
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(code: i64, text: &str) -> ErrorChainItem {
        ErrorChainItem {
            code,
            domain: "MCInstallationErrorDomain".into(),
            localized_description: Some(text.into()),
            us_english_description: None,
        }
    }

    #[test]
    fn small_bodies_and_chains_are_kept_as_they_are() {
        let body = b"<plist>ok</plist>".to_vec();
        assert_eq!(stored_raw_body(&body), body);
        assert!(!raw_body_is_truncated(&body));
        let chain = vec![item(1, "a"), item(2, "b")];
        assert_eq!(bounded_error_chain(&chain), chain);
        assert!(!error_chain_is_truncated(&chain));
    }

    #[test]
    fn a_large_body_is_cut_with_a_marker() {
        let mut body = vec![b'a'; MAX_STORED_RAW_BYTES - 1];
        body.extend_from_slice("é and more".as_bytes());
        body.extend(vec![b'z'; 3 * 1024 * 1024]);
        let stored = stored_raw_body(&body);
        assert!(raw_body_is_truncated(&body));
        assert!(stored.len() < MAX_STORED_RAW_BYTES + 200);
        let text = std::str::from_utf8(&stored).expect("cut on a char boundary");
        assert!(text.starts_with("aaa"));
        assert!(text.contains(&format!("{} bytes received", body.len())));
    }

    #[test]
    fn long_chains_and_texts_are_bounded_and_marked() {
        let huge = "x".repeat(3 * 1024 * 1024);
        let chain: Vec<ErrorChainItem> = (0..1000).map(|i| item(i, &huge)).collect();
        assert!(error_chain_is_truncated(&chain));
        let kept = bounded_error_chain(&chain);
        assert_eq!(kept.len(), MAX_ERROR_CHAIN_ITEMS);
        let last = kept.last().unwrap();
        assert_eq!(last.domain, TRUNCATED_DOMAIN);
        assert!(
            last.localized_description
                .as_deref()
                .unwrap()
                .starts_with("993 more")
        );
        let first = kept[0].localized_description.as_deref().unwrap();
        assert!(first.ends_with(TEXT_MARKER));
        assert_eq!(first.len(), MAX_ERROR_TEXT_BYTES + TEXT_MARKER.len());
        let total: usize = kept
            .iter()
            .map(|i| i.domain.len() + i.localized_description.as_ref().map_or(0, String::len))
            .sum();
        assert!(total < 16 * 1024, "{total}");
        // Multi-byte characters are never split.
        let accents = "é".repeat(MAX_ERROR_TEXT_BYTES);
        let kept = bounded_error_chain(&[item(1, &accents)]);
        let text = kept[0].localized_description.as_deref().unwrap();
        assert!(text.len() <= MAX_ERROR_TEXT_BYTES + TEXT_MARKER.len());
    }
}
