//! Raw device bodies as stored: LZ4 with a dictionary of plist boilerplate plus the values the
//! store already keeps beside the body (UDID, CommandUUID, topic, PushMagic, token).
//!
//! Device plists are small (a few hundred bytes), so plain compression gains little; almost all
//! of an `Acknowledged` report is the XML envelope and the UDID / CommandUUID, which the
//! dictionary holds, so it shrinks to a few dozen bytes. The transformation is lossless: the
//! bytes read back are the bytes received, whatever they are.
//!
//! Stored form: one tag byte, then either the bytes as received ([`TAG_PLAIN`]) or the
//! uncompressed length (u32 LE) and an LZ4 block against dictionary version 1 ([`TAG_LZ4_V1`]).
//! The dictionary text below is part of the on-disk format: never edit it; add a version.

use crate::{StoreError, StoreResult};

/// The bytes follow as received.
const TAG_PLAIN: u8 = 0;
/// LZ4 block against [`DICT_V1`] plus the row's context values.
const TAG_LZ4_V1: u8 = 1;
/// Longest body this decoder expands (check-in and report bodies are bounded far below this).
const MAX_RAW: usize = 16 * 1024 * 1024;

/// What a stored body is, and the values the store keeps beside it, which the dictionary
/// holds in the places Apple's plists have them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BodyContext<'a> {
    /// A command report of `channel` about `command`.
    Report {
        /// The reporting channel.
        channel: &'a str,
        /// Its CommandUUID.
        command: &'a str,
    },
    /// An Authenticate message of `channel`.
    Authenticate {
        /// The channel.
        channel: &'a str,
    },
    /// A TokenUpdate message, with the values stored from it.
    TokenUpdate {
        /// The channel.
        channel: &'a str,
        /// Its topic.
        topic: &'a str,
        /// Its PushMagic.
        push_magic: &'a str,
        /// Its token, base64.
        token: &'a str,
    },
}

/// Dictionary version 1, the fixed part: the boilerplate of Apple's XML plists and the keys
/// of check-in messages and command reports. Part of the on-disk format.
const DICT_V1: &str = concat!(
    "<key>UserID</key>\n\t<string>FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF</string>\n",
    "\t<key>EnrollmentID</key>\n\t<key>EnrollmentUserID</key>\n\t<key>UserShortName</key>\n",
    "\t<key>UserLongName</key>\n\t<key>ErrorChain</key>\n\t<array>\n\t\t<dict>\n\t\t\t",
    "<key>ErrorCode</key>\n\t\t\t<integer>",
    "</integer>\n\t\t\t<key>ErrorDomain</key>\n\t\t\t<string>MCInstallationErrorDomain</string>\n",
    "\t\t\t<key>LocalizedDescription</key>\n\t\t\t<string>",
    "</string>\n\t\t\t<key>USEnglishDescription</key>\n\t\t\t<string>",
    "</string>\n\t\t</dict>\n\t</array>\n",
    "\t<key>Status</key>\n\t<string>NotNow</string>\n",
    "\t<key>Status</key>\n\t<string>Error</string>\n",
    "\t<key>UnlockToken</key>\n\t<data>\n\t",
    "<key>BuildVersion</key>\n\t<string>",
    "</string>\n\t<key>DeviceName</key>\n\t<string>iPhone</string>\n",
    "\t<key>IMEI</key>\n\t<string>\t<key>MEID</key>\n\t<string>",
    "\t<key>MessageType</key>\n\t<string>Authenticate</string>\n",
    "\t<key>Model</key>\n\t<string>iPhone\t<key>ModelName</key>\n\t<string>iPad",
    "</string>\n\t<key>OSVersion</key>\n\t<string>",
    "</string>\n\t<key>ProductName</key>\n\t<string>",
    "</string>\n\t<key>SerialNumber</key>\n\t<string>",
    "</string>\n\t<key>Topic</key>\n\t<string>com.apple.mgmt.External.",
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
    "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" ",
    "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n",
    "<plist version=\"1.0\">\n<dict>\n",
);

/// How an `Acknowledged` report is laid out: `ACK_HEAD uuid ACK_MID udid PLIST_TAIL`.
const ACK_HEAD: &str = "\t<key>CommandUUID</key>\n\t<string>";
const ACK_MID: &str = "</string>\n\t<key>Status</key>\n\t<string>Acknowledged</string>\n\t<key>UDID</key>\n\t<string>";
const PLIST_TAIL: &str = "</string>\n</dict>\n</plist>\n";
/// How a TokenUpdate is laid out, after the optional keys.
const TU_HEAD: &str = "\t<key>AwaitingConfiguration</key>\n\t<false/>\n\t<key>MessageType</key>\n\t<string>TokenUpdate</string>\n\t<key>PushMagic</key>\n\t<string>";
const TU_TOKEN: &str = "</string>\n\t<key>Token</key>\n\t<data>\n\t";
const TU_TOPIC: &str = "\n\t</data>\n\t<key>Topic</key>\n\t<string>";
const UDID_KEY: &str = "</string>\n\t<key>UDID</key>\n\t<string>";

/// The dictionary for one body: the fixed part, then the message's likely layout with the
/// row's own values in place (nearest to the data, where the best matches are).
fn dictionary(context: BodyContext<'_>) -> Vec<u8> {
    let mut d = Vec::with_capacity(DICT_V1.len() + 512);
    d.extend_from_slice(DICT_V1.as_bytes());
    match context {
        BodyContext::Report { channel, command } => {
            for part in [ACK_HEAD, command, ACK_MID, device_part(channel), PLIST_TAIL] {
                d.extend_from_slice(part.as_bytes());
            }
        }
        BodyContext::Authenticate { channel } => {
            for part in [UDID_KEY, device_part(channel), PLIST_TAIL] {
                d.extend_from_slice(part.as_bytes());
            }
        }
        BodyContext::TokenUpdate {
            channel,
            topic,
            push_magic,
            token,
        } => {
            for part in [
                TU_HEAD,
                push_magic,
                TU_TOKEN,
                token,
                TU_TOPIC,
                topic,
                UDID_KEY,
                device_part(channel),
                PLIST_TAIL,
            ] {
                d.extend_from_slice(part.as_bytes());
            }
        }
    }
    d
}

/// The UDID part of a channel id (`device` or `device:user`).
fn device_part(channel: &str) -> &str {
    channel.split(':').next().unwrap_or(channel)
}

/// Encodes a raw body for storage; `context` are values the reader passes again to decode.
pub(crate) fn pack(raw: &[u8], context: BodyContext<'_>) -> Vec<u8> {
    if raw.len() >= 32 && raw.len() <= MAX_RAW {
        let packed = lz4_flex::block::compress_with_dict(raw, &dictionary(context));
        if packed.len() + 4 < raw.len() {
            let mut out = Vec::with_capacity(5 + packed.len());
            out.push(TAG_LZ4_V1);
            // Bounded by MAX_RAW above, so it fits.
            out.extend_from_slice(&u32::try_from(raw.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(&packed);
            return out;
        }
    }
    let mut out = Vec::with_capacity(1 + raw.len());
    out.push(TAG_PLAIN);
    out.extend_from_slice(raw);
    out
}

/// Decodes a stored body with the same `context` it was packed with.
pub(crate) fn unpack(
    tree: &'static str,
    stored: &[u8],
    context: BodyContext<'_>,
) -> StoreResult<Vec<u8>> {
    let corrupt = |reason: String| StoreError::Corrupt { tree, reason };
    match stored.split_first() {
        Some((&TAG_PLAIN, rest)) => Ok(rest.to_vec()),
        Some((&TAG_LZ4_V1, rest)) => {
            let (len, block) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| corrupt("compressed body without its length".into()))?;
            let len = usize::try_from(u32::from_le_bytes(*len)).unwrap_or(usize::MAX);
            if len > MAX_RAW {
                return Err(corrupt(format!("compressed body claims {len} bytes")));
            }
            let out = lz4_flex::block::decompress_with_dict(block, len, &dictionary(context))
                .map_err(|e| corrupt(format!("compressed body: {e}")))?;
            if out.len() != len {
                return Err(corrupt("compressed body has the wrong length".into()));
            }
            Ok(out)
        }
        Some((tag, _)) => Err(corrupt(format!("unknown body encoding {tag}"))),
        None => Err(corrupt("empty stored body".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDID: &str = "B79EE23C-F5C1-489E-ADC2-DB4A7B3D54FF";
    const CMD: &str = "79AEDFB0-686C-45AD-9F44-E92D36E4EEE0";

    const REPORT: BodyContext<'static> = BodyContext::Report {
        channel: UDID,
        command: CMD,
    };

    fn ack() -> Vec<u8> {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n<dict>\n\t<key>CommandUUID</key>\n\t<string>{CMD}</string>\n\t<key>Status</key>\n\t<string>Acknowledged</string>\n\t<key>UDID</key>\n\t<string>{UDID}</string>\n</dict>\n</plist>\n"
        )
        .into_bytes()
    }

    #[test]
    fn an_acknowledged_report_shrinks_and_round_trips() {
        let raw = ack();
        let packed = pack(&raw, REPORT);
        assert_eq!(packed[0], TAG_LZ4_V1);
        assert!(packed.len() < 20, "{} bytes", packed.len());
        assert_eq!(unpack("t", &packed, REPORT).unwrap(), raw);
    }

    #[test]
    fn a_token_update_shrinks_with_its_stored_values() {
        let (topic, magic, token) = (
            "com.apple.mgmt.External.2c0e1c3a-2f43-4a53-9d9e-6c1f8f3c2b11",
            "5E2D6C1A-9F0B-4E0C-8D7A-3B1C2D4E5F60",
            "q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k=",
        );
        let raw = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n<dict>\n\t<key>AwaitingConfiguration</key>\n\t<false/>\n\t<key>MessageType</key>\n\t<string>TokenUpdate</string>\n\t<key>PushMagic</key>\n\t<string>{magic}</string>\n\t<key>Token</key>\n\t<data>\n\t{token}\n\t</data>\n\t<key>Topic</key>\n\t<string>{topic}</string>\n\t<key>UDID</key>\n\t<string>{UDID}</string>\n</dict>\n</plist>\n"
        )
        .into_bytes();
        let ctx = BodyContext::TokenUpdate {
            channel: UDID,
            topic,
            push_magic: magic,
            token,
        };
        let packed = pack(&raw, ctx);
        assert!(packed.len() < 30, "{} of {} bytes", packed.len(), raw.len());
        assert_eq!(unpack("t", &packed, ctx).unwrap(), raw);
    }

    #[test]
    fn real_device_samples_round_trip() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/device-samples");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return; // reference data not present on this machine
        };
        let mut checked = 0;
        for e in entries.flatten() {
            let raw = std::fs::read(e.path()).unwrap();
            let ctx = BodyContext::Authenticate { channel: UDID };
            let packed = pack(&raw, ctx);
            assert!(packed.len() <= raw.len() + 1);
            assert_eq!(unpack("t", &packed, ctx).unwrap(), raw);
            checked += 1;
        }
        assert!(checked > 0);
    }

    #[test]
    fn short_and_random_bodies_are_kept_plain() {
        for raw in [b"ack".to_vec(), (0..=255u8).rev().collect()] {
            let packed = pack(&raw, REPORT);
            assert_eq!(packed[0], TAG_PLAIN);
            assert_eq!(unpack("t", &packed, REPORT).unwrap(), raw);
        }
    }

    #[test]
    fn damaged_rows_are_typed_errors() {
        let packed = pack(&ack(), REPORT);
        for bad in [
            &[][..],
            &[9, 1, 2][..],
            &[TAG_LZ4_V1, 1][..],
            &[TAG_LZ4_V1, 0xff, 0xff, 0xff, 0x7f, 0][..],
            &packed[..packed.len() - 3],
        ] {
            assert!(matches!(
                unpack("t", bad, REPORT),
                Err(StoreError::Corrupt { .. })
            ));
        }
        // The wrong context cannot silently decode to the original.
        let other = BodyContext::Report {
            channel: "x",
            command: "y",
        };
        assert_ne!(unpack("t", &packed, other).ok(), Some(ack()));
    }
}
