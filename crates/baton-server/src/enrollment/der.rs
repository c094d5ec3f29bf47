//! A minimal DER reader and writer for the CMS, PKCS#10 and CRL structures that enrollment needs.
//!
//! Only what SCEP needs: single-byte tags, definite lengths (up to 4 length octets), no
//! indefinite-length BER. Reading never panics: every malformed input is a [`DerError`]. Writing
//! works on byte vectors: each function returns a complete TLV that callers nest.

use thiserror::Error;

/// Universal tag: INTEGER.
pub const TAG_INTEGER: u8 = 0x02;
/// Universal tag: BIT STRING.
pub const TAG_BIT_STRING: u8 = 0x03;
/// Universal tag: OCTET STRING.
pub const TAG_OCTET_STRING: u8 = 0x04;
/// Universal tag: NULL.
pub const TAG_NULL: u8 = 0x05;
/// Universal tag: OBJECT IDENTIFIER.
pub const TAG_OID: u8 = 0x06;
/// Universal tag: UTF8String.
pub const TAG_UTF8_STRING: u8 = 0x0c;
/// Universal tag: PrintableString.
pub const TAG_PRINTABLE_STRING: u8 = 0x13;
/// Universal tag: T61String (TeletexString).
pub const TAG_T61_STRING: u8 = 0x14;
/// Universal tag: IA5String.
pub const TAG_IA5_STRING: u8 = 0x16;
/// Universal tag: UTCTime.
pub const TAG_UTC_TIME: u8 = 0x17;
/// Universal tag: GeneralizedTime.
pub const TAG_GENERALIZED_TIME: u8 = 0x18;
/// Universal tag: BMPString.
pub const TAG_BMP_STRING: u8 = 0x1e;
/// Universal tag: SEQUENCE (constructed).
pub const TAG_SEQUENCE: u8 = 0x30;
/// Universal tag: SET (constructed).
pub const TAG_SET: u8 = 0x31;
/// Context-specific constructed tag `[0]`.
pub const TAG_CONTEXT_0: u8 = 0xa0;
/// Context-specific constructed tag `[1]`.
pub const TAG_CONTEXT_1: u8 = 0xa1;

/// A DER decoding failure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DerError {
    /// The input ended in the middle of a TLV.
    #[error("DER input truncated")]
    Truncated,
    /// A length form this reader does not accept (indefinite or more than 4 octets).
    #[error("unsupported DER length encoding")]
    UnsupportedLength,
    /// A multi-byte (high-number) tag, which none of the structures here use.
    #[error("unsupported DER tag encoding")]
    UnsupportedTag,
    /// A TLV had another tag than the structure requires.
    #[error("unexpected DER tag {found:#04x}, expected {expected:#04x}")]
    UnexpectedTag {
        /// The tag the structure requires.
        expected: u8,
        /// The tag found in the input.
        found: u8,
    },
    /// Bytes were left over after a complete structure.
    #[error("trailing data after DER value")]
    TrailingData,
    /// A value was structurally valid DER but not what the structure allows.
    #[error("invalid DER value: {0}")]
    Invalid(&'static str),
}

/// One decoded tag-length-value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The identifier octet.
    pub tag: u8,
    /// The value octets.
    pub value: &'a [u8],
    /// The whole encoding: tag, length and value.
    pub raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// Parses exactly one TLV spanning all of `input`.
    pub fn parse_single(input: &'a [u8]) -> Result<Self, DerError> {
        let mut reader = Reader::new(input);
        let tlv = reader.read()?;
        reader.finish()?;
        Ok(tlv)
    }

    /// Fails unless the tag is `expected`.
    pub fn expect_tag(self, expected: u8) -> Result<Self, DerError> {
        if self.tag == expected {
            Ok(self)
        } else {
            Err(DerError::UnexpectedTag {
                expected,
                found: self.tag,
            })
        }
    }

    /// A reader over the value octets (for constructed types).
    pub fn reader(&self) -> Reader<'a> {
        Reader::new(self.value)
    }
}

/// Sequential reader over concatenated TLVs.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Self { rest: input }
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The tag of the next TLV, if any, without consuming it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Reads the next TLV.
    pub fn read(&mut self) -> Result<Tlv<'a>, DerError> {
        let input = self.rest;
        let (&tag, after_tag) = input.split_first().ok_or(DerError::Truncated)?;
        if tag & 0x1f == 0x1f {
            return Err(DerError::UnsupportedTag);
        }
        let (&first, mut after_len) = after_tag.split_first().ok_or(DerError::Truncated)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err(DerError::UnsupportedLength);
            }
            if after_len.len() < count {
                return Err(DerError::Truncated);
            }
            let (len_bytes, rest) = after_len.split_at(count);
            after_len = rest;
            len_bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        if after_len.len() < len {
            return Err(DerError::Truncated);
        }
        let header_len = input.len() - after_len.len();
        let (value, rest) = after_len.split_at(len);
        self.rest = rest;
        Ok(Tlv {
            tag,
            value,
            raw: &input[..header_len + len],
        })
    }

    /// Reads the next TLV and checks its tag.
    pub fn read_tag(&mut self, tag: u8) -> Result<Tlv<'a>, DerError> {
        self.read()?.expect_tag(tag)
    }

    /// Reads the next TLV only if it has `tag`.
    pub fn read_optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(tag) {
            self.read().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Fails if bytes are left.
    pub fn finish(&self) -> Result<(), DerError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DerError::TrailingData)
        }
    }
}

/// Encodes a TLV with the given tag around `value`.
pub fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let len = value.len();
    let mut out = Vec::with_capacity(len + 6);
    out.push(tag);
    if len < 0x80 {
        // Fits in the short form.
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = &bytes[skip..];
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(value);
    out
}

/// Encodes a constructed TLV whose value is the concatenation of `parts`.
pub fn constructed(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

/// SEQUENCE of the given encoded parts.
pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    constructed(TAG_SEQUENCE, parts)
}

/// SET OF the given encoded elements, sorted as DER requires.
pub fn set_of(elements: &[&[u8]]) -> Vec<u8> {
    let mut sorted: Vec<&[u8]> = elements.to_vec();
    sorted.sort();
    constructed(TAG_SET, &sorted)
}

/// OCTET STRING.
pub fn octet_string(value: &[u8]) -> Vec<u8> {
    tlv(TAG_OCTET_STRING, value)
}

/// BIT STRING with no unused bits.
pub fn bit_string(value: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(value.len() + 1);
    content.push(0);
    content.extend_from_slice(value);
    tlv(TAG_BIT_STRING, &content)
}

/// PrintableString (the caller guarantees the character set).
pub fn printable_string(value: &str) -> Vec<u8> {
    tlv(TAG_PRINTABLE_STRING, value.as_bytes())
}

/// NULL.
pub fn null() -> Vec<u8> {
    vec![TAG_NULL, 0]
}

/// INTEGER from an unsigned small value.
pub fn integer_u64(value: u64) -> Vec<u8> {
    integer_unsigned_bytes(&value.to_be_bytes())
}

/// INTEGER from big-endian unsigned magnitude bytes (leading zeros stripped, sign octet added).
pub fn integer_unsigned_bytes(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude.iter().take_while(|b| **b == 0).count();
    let trimmed = &magnitude[skip..];
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(TAG_INTEGER, &content)
}

/// OBJECT IDENTIFIER from its dotted arcs.
pub fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut content = Vec::new();
    if let [first, second, rest @ ..] = arcs {
        push_base128(&mut content, first * 40 + second);
        for arc in rest {
            push_base128(&mut content, *arc);
        }
    }
    tlv(TAG_OID, &content)
}

fn push_base128(out: &mut Vec<u8>, mut value: u64) {
    let mut stack = [0u8; 10];
    let mut n = 0;
    loop {
        stack[n] = (value & 0x7f) as u8;
        n += 1;
        value >>= 7;
        if value == 0 {
            break;
        }
    }
    for i in (0..n).rev() {
        out.push(if i == 0 { stack[i] } else { stack[i] | 0x80 });
    }
}

/// UTCTime (years 1950–2049) or GeneralizedTime (other years) for a Unix time, as RFC 5280 asks.
pub fn time(unix_seconds: i64) -> Vec<u8> {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if (1950..2050).contains(&year) {
        let text = format!(
            "{:02}{month:02}{day:02}{h:02}{m:02}{s:02}Z",
            year.rem_euclid(100)
        );
        tlv(TAG_UTC_TIME, text.as_bytes())
    } else {
        let text = format!("{year:04}{month:02}{day:02}{h:02}{m:02}{s:02}Z");
        tlv(TAG_GENERALIZED_TIME, text.as_bytes())
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Reads a string of any of the DirectoryString-like types as text.
pub fn read_string(tlv: Tlv<'_>) -> Result<String, DerError> {
    match tlv.tag {
        TAG_UTF8_STRING | TAG_PRINTABLE_STRING | TAG_IA5_STRING | TAG_T61_STRING => {
            String::from_utf8(tlv.value.to_vec()).map_err(|_| DerError::Invalid("string not UTF-8"))
        }
        TAG_BMP_STRING => {
            if !tlv.value.len().is_multiple_of(2) {
                return Err(DerError::Invalid("odd BMPString length"));
            }
            let units: Vec<u16> = tlv
                .value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).map_err(|_| DerError::Invalid("bad BMPString"))
        }
        _ => Err(DerError::Invalid("not a string type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lengths_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let value = vec![7u8; len];
            let encoded = octet_string(&value);
            let parsed = Tlv::parse_single(&encoded).unwrap();
            assert_eq!(parsed.tag, TAG_OCTET_STRING);
            assert_eq!(parsed.value, &value[..]);
            assert_eq!(parsed.raw, &encoded[..]);
        }
    }

    #[test]
    fn oid_encoding_matches_known_bytes() {
        // 1.2.840.113549.1.7.2 (signedData)
        assert_eq!(
            oid(&[1, 2, 840, 113_549, 1, 7, 2]),
            [
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02
            ]
        );
    }

    #[test]
    fn integers_get_sign_octet() {
        assert_eq!(integer_u64(0), [0x02, 0x01, 0x00]);
        assert_eq!(integer_u64(127), [0x02, 0x01, 0x7f]);
        assert_eq!(integer_u64(128), [0x02, 0x02, 0x00, 0x80]);
    }

    #[test]
    fn times_pick_the_rfc5280_form() {
        assert_eq!(time(0), tlv(TAG_UTC_TIME, b"700101000000Z"));
        assert_eq!(time(951_782_400), tlv(TAG_UTC_TIME, b"000229000000Z"));
        assert_eq!(
            time(2_524_608_000),
            tlv(TAG_GENERALIZED_TIME, b"20500101000000Z")
        );
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(Tlv::parse_single(&[]), Err(DerError::Truncated));
        assert_eq!(
            Tlv::parse_single(&[0x30, 0x05, 1]),
            Err(DerError::Truncated)
        );
        assert_eq!(
            Tlv::parse_single(&[0x30, 0x80, 0, 0]),
            Err(DerError::UnsupportedLength)
        );
        assert_eq!(
            Tlv::parse_single(&[0x04, 0x00, 0x00]),
            Err(DerError::TrailingData)
        );
        assert_eq!(
            Tlv::parse_single(&[0x1f, 0x01, 0x00]),
            Err(DerError::UnsupportedTag)
        );
    }

    #[test]
    fn set_of_sorts_elements() {
        let a = octet_string(&[2]);
        let b = octet_string(&[1]);
        let set = set_of(&[&a, &b]);
        assert_eq!(set, [0x31, 0x06, 0x04, 0x01, 0x01, 0x04, 0x01, 0x02]);
    }
}
