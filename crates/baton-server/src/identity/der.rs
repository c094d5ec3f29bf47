//! A small, bounds-checked DER reader for the handful of structures the identity module needs
//! (CMS SignedData, SignerInfo, the first fields of an X.509 certificate).
//!
//! It reads one tag-length-value at a time from a slice and never recurses: callers walk nested
//! structures by opening a new reader on a value they already hold, so the nesting depth is fixed
//! by the caller's code, not by the input. Only definite lengths and single-byte tags are accepted
//! (high tag numbers are refused; BER from devices, with indefinite lengths, is converted by
//! [`crate::ber`] before it gets here), every length is checked against the bytes that remain,
//! and no input makes it panic.

/// Tag of a universal INTEGER.
pub(crate) const TAG_INTEGER: u8 = 0x02;
/// Tag of a universal OCTET STRING.
pub(crate) const TAG_OCTET_STRING: u8 = 0x04;
/// Tag of a universal OBJECT IDENTIFIER.
pub(crate) const TAG_OID: u8 = 0x06;
/// Tag of a universal UTCTime.
pub(crate) const TAG_UTC_TIME: u8 = 0x17;
/// Tag of a universal GeneralizedTime.
pub(crate) const TAG_GENERALIZED_TIME: u8 = 0x18;
/// Tag of a constructed SEQUENCE.
pub(crate) const TAG_SEQUENCE: u8 = 0x30;
/// Tag of a constructed SET.
pub(crate) const TAG_SET: u8 = 0x31;

/// Tag of a constructed, context-specific `[n]` element.
pub(crate) const fn context_constructed(n: u8) -> u8 {
    0xA0 | n
}

/// Tag of a primitive, context-specific `[n]` element.
pub(crate) const fn context_primitive(n: u8) -> u8 {
    0x80 | n
}

/// Why a DER walk stopped. The identity module reports these as a malformed CMS structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DerError {
    /// The input ended inside a tag or length, or a length points past the end of the input.
    Truncated,
    /// A multi-byte (high tag number) tag, which none of the structures read here use.
    HighTagNumber,
    /// An indefinite length (BER) or a length field longer than four bytes.
    UnsupportedLength,
    /// A different tag was found where a specific one was expected.
    UnexpectedTag {
        /// The tag the structure requires here.
        expected: u8,
        /// The tag found in the input (0 when the input had ended).
        found: u8,
    },
    /// Bytes remained after the last element of a structure.
    TrailingData,
}

/// One tag-length-value element, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tlv<'a> {
    /// The identifier octet.
    pub(crate) tag: u8,
    /// The whole element: identifier, length and value octets.
    pub(crate) raw: &'a [u8],
    /// The value (contents) octets only.
    pub(crate) value: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// A reader over this element's contents, to walk a constructed value.
    pub(crate) fn contents(&self) -> DerReader<'a> {
        DerReader::new(self.value)
    }
}

/// Reads consecutive DER elements from a byte slice.
#[derive(Debug, Clone)]
pub(crate) struct DerReader<'a> {
    rest: &'a [u8],
}

impl<'a> DerReader<'a> {
    /// A reader positioned at the start of `input`.
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self { rest: input }
    }

    /// True when every byte has been consumed.
    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The identifier octet of the next element, without consuming it.
    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Reads the next element whatever its tag.
    pub(crate) fn read_any(&mut self) -> Result<Tlv<'a>, DerError> {
        let input = self.rest;
        let (&tag, after_tag) = input.split_first().ok_or(DerError::Truncated)?;
        if tag & 0x1F == 0x1F {
            return Err(DerError::HighTagNumber);
        }
        let (&first_len, after_len_byte) = after_tag.split_first().ok_or(DerError::Truncated)?;
        let (len, after_len) = if first_len < 0x80 {
            (usize::from(first_len), after_len_byte)
        } else {
            let count = usize::from(first_len & 0x7F);
            if count == 0 || count > 4 {
                return Err(DerError::UnsupportedLength);
            }
            let len_bytes = after_len_byte.get(..count).ok_or(DerError::Truncated)?;
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, after_len_byte.get(count..).ok_or(DerError::Truncated)?)
        };
        let value = after_len.get(..len).ok_or(DerError::Truncated)?;
        let header_len = input.len() - after_len.len();
        let raw = input.get(..header_len + len).ok_or(DerError::Truncated)?;
        self.rest = after_len.get(len..).ok_or(DerError::Truncated)?;
        Ok(Tlv { tag, raw, value })
    }

    /// Reads the next element and requires it to carry `tag`.
    pub(crate) fn read(&mut self, tag: u8) -> Result<Tlv<'a>, DerError> {
        match self.peek_tag() {
            Some(found) if found == tag => self.read_any(),
            found => Err(DerError::UnexpectedTag {
                expected: tag,
                found: found.unwrap_or(0),
            }),
        }
    }

    /// Reads the next element only if it carries `tag`.
    pub(crate) fn read_optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(tag) {
            self.read_any().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Fails unless every byte has been consumed.
    pub(crate) fn finish(&self) -> Result<(), DerError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DerError::TrailingData)
        }
    }
}

impl<'a> Iterator for DerReader<'a> {
    type Item = Result<Tlv<'a>, DerError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = self.read_any();
        if item.is_err() {
            // Stop after the first error so a caller looping over elements cannot spin.
            self.rest = &[];
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths() {
        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(0xAB, 256));
        long.extend([0x05, 0x00]);
        let mut reader = DerReader::new(&long);
        let first = reader.read(TAG_OCTET_STRING).unwrap();
        assert_eq!(first.value.len(), 256);
        assert_eq!(first.raw.len(), 260);
        let null = reader.read_any().unwrap();
        assert_eq!((null.tag, null.value), (0x05, &[][..]));
        assert!(reader.is_empty());
        reader.finish().unwrap();
    }

    #[test]
    fn refuses_lengths_past_the_end() {
        assert_eq!(
            DerReader::new(&[0x30, 0x05, 0x01]).read_any(),
            Err(DerError::Truncated)
        );
        assert_eq!(
            DerReader::new(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF, 0x00]).read_any(),
            Err(DerError::Truncated)
        );
        assert_eq!(
            DerReader::new(&[0x30, 0x82, 0x01]).read_any(),
            Err(DerError::Truncated)
        );
        assert_eq!(DerReader::new(&[0x30]).read_any(), Err(DerError::Truncated));
    }

    #[test]
    fn refuses_indefinite_and_oversized_lengths_and_high_tags() {
        assert_eq!(
            DerReader::new(&[0x30, 0x80, 0x00, 0x00]).read_any(),
            Err(DerError::UnsupportedLength)
        );
        assert_eq!(
            DerReader::new(&[0x30, 0x85, 1, 0, 0, 0, 0]).read_any(),
            Err(DerError::UnsupportedLength)
        );
        assert_eq!(
            DerReader::new(&[0x1F, 0x81, 0x01, 0x00]).read_any(),
            Err(DerError::HighTagNumber)
        );
    }

    #[test]
    fn expected_tag_and_trailing_data() {
        let mut reader = DerReader::new(&[0x02, 0x01, 0x05, 0x00]);
        assert_eq!(
            reader.read(TAG_SEQUENCE),
            Err(DerError::UnexpectedTag {
                expected: TAG_SEQUENCE,
                found: TAG_INTEGER
            })
        );
        assert_eq!(reader.read_optional(TAG_SEQUENCE), Ok(None));
        assert_eq!(reader.read(TAG_INTEGER).unwrap().value, &[0x05]);
        assert_eq!(reader.finish(), Err(DerError::TrailingData));
    }

    #[test]
    fn iterator_stops_after_an_error() {
        let items: Vec<_> = DerReader::new(&[0x02, 0x01, 0x01, 0x02, 0x09]).collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert!(items[1].is_err());
    }
}
