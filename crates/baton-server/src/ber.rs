//! BER to DER for the CMS messages devices send.
//!
//! Apple's devices build their `Mdm-Signature` and SCEP messages with the Security framework's
//! streaming CMS encoder (`SecCmsEncoder` in Apple's open-source libsecurity_smime), which writes
//! BER: indefinite lengths on the outer structures (ContentInfo, SignedData, EnvelopedData,
//! encapsulated content) and the content as a constructed, chunked OCTET STRING. Baton's CMS
//! readers read DER, so every CMS structure a device sends goes through [`to_der`] first. Peers
//! met the same wall (micromdm issue 211, fullsailor/pkcs7 pull 17, nanomdm issue 32).
//!
//! The conversion knows no schema. It rewrites only what BER allows and DER does not:
//! - an indefinite length becomes the definite length of the converted contents;
//! - a constructed OCTET STRING or character string (universal tags) becomes one primitive value
//!   holding the concatenated segments (so an encapsulated content's digest input is the same);
//! - every element whose whole subtree needed no change is copied byte for byte, so a certificate
//!   keeps the exact bytes its signature and its SHA-256 binding cover.
//!
//! Implicitly tagged strings (`[0] IMPLICIT OCTET STRING`, as EnvelopedData's encryptedContent)
//! cannot be recognised without the schema: they stay constructed, with definite lengths, and the
//! readers that know the schema accept both forms. A constructed BIT STRING is refused (no CMS
//! producer writes one).
//!
//! [`to_canonical_der`] also rewrites non-minimal lengths: it yields the DER that a signature over
//! signed attributes covers (RFC 5652 section 5.4). The order of elements inside a SET is kept:
//! like OpenSSL's CMS verifier, Baton checks the signature over the attributes in the order the
//! signer sent them.
//!
//! Hostile input stays cheap: the input size, the nesting depth and the number of elements are
//! bounded by [`BerLimits`], lengths are checked against the bytes that remain before anything is
//! read, input already in DER is returned borrowed without a copy, and no input makes this module
//! panic (it is fuzzed: `fuzz/fuzz_targets/ber_to_der.rs`).

use std::borrow::Cow;

use thiserror::Error;

/// Bounds on the input a conversion accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BerLimits {
    /// Maximum input length in bytes.
    pub max_input: usize,
    /// Maximum nesting depth (the outermost element is depth 1).
    pub max_depth: usize,
    /// Maximum number of elements (tag-length-values, segments included).
    pub max_elements: usize,
}

impl BerLimits {
    /// Limits for device CMS: 1 MiB, 32 levels (a CMS SignedData with its certificates needs
    /// about 12), 16,384 elements (a device signature has about 200).
    pub const DEVICE_CMS: Self = Self {
        max_input: 1024 * 1024,
        max_depth: 32,
        max_elements: 16_384,
    };
}

impl Default for BerLimits {
    fn default() -> Self {
        Self::DEVICE_CMS
    }
}

/// Why BER input could not be converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BerError {
    /// The input ended inside an element, or a length points past the end of its container.
    #[error("BER input truncated")]
    Truncated,
    /// An indefinite-length element has no end-of-contents marker before its container ends.
    #[error("BER end-of-contents missing")]
    MissingEndOfContents,
    /// A zero tag where an element was expected, or an end-of-contents marker with a length.
    #[error("misplaced BER end-of-contents")]
    MisplacedEndOfContents,
    /// A multi-byte (high tag number) tag, which CMS does not use.
    #[error("BER high tag numbers are not supported")]
    HighTagNumber,
    /// A primitive element with an indefinite length, the reserved length octet, or a length
    /// that does not fit the platform.
    #[error("invalid BER length")]
    InvalidLength,
    /// A constructed string holds a segment of another type, or is a constructed BIT STRING.
    #[error("invalid constructed string segment")]
    InvalidSegment,
    /// Bytes remain after the outermost element.
    #[error("data after the BER element")]
    TrailingData,
    /// The input is longer than [`BerLimits::max_input`].
    #[error("BER input is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Nesting deeper than [`BerLimits::max_depth`].
    #[error("BER nesting deeper than {0} levels")]
    TooDeep(usize),
    /// More elements than [`BerLimits::max_elements`].
    #[error("more than {0} BER elements")]
    TooManyElements(usize),
}

impl BerError {
    /// A short fixed description, for errors that carry a `&'static str`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Truncated => "BER input truncated",
            Self::MissingEndOfContents => "BER end-of-contents missing",
            Self::MisplacedEndOfContents => "misplaced BER end-of-contents",
            Self::HighTagNumber => "BER high tag number",
            Self::InvalidLength => "invalid BER length",
            Self::InvalidSegment => "invalid constructed string segment",
            Self::TrailingData => "data after the BER element",
            Self::TooLarge { .. } => "BER input too large",
            Self::TooDeep(_) => "BER nesting too deep",
            Self::TooManyElements(_) => "too many BER elements",
        }
    }
}

/// Converts one BER element spanning all of `input` to DER as described in the module docs.
/// Input that needs no change (strict DER, as from most non-Apple clients) is borrowed.
pub fn to_der<'a>(input: &'a [u8], limits: &BerLimits) -> Result<Cow<'a, [u8]>, BerError> {
    convert(input, limits, false)
}

/// Like [`to_der`], and non-minimal length encodings are rewritten too: the canonical DER of the
/// element (element order kept). Used for the signed attributes a signature covers.
pub fn to_canonical_der<'a>(
    input: &'a [u8],
    limits: &BerLimits,
) -> Result<Cow<'a, [u8]>, BerError> {
    convert(input, limits, true)
}

fn convert<'a>(
    input: &'a [u8],
    limits: &BerLimits,
    canonical: bool,
) -> Result<Cow<'a, [u8]>, BerError> {
    if input.len() > limits.max_input {
        return Err(BerError::TooLarge {
            len: input.len(),
            max: limits.max_input,
        });
    }
    // What devices send most is either already DER (borrowed as is, after one flat scan) or
    // BER from its first element on (iOS streams the outermost SEQUENCE with an indefinite
    // length, so the scan gives up at once). Anything else, malformed input included, takes the
    // measuring passes, which also name the error.
    if is_unchanged_der(input, limits, canonical) {
        return Ok(Cow::Borrowed(input));
    }
    let mut scan = Walker::new(input, limits, canonical, None);
    let top = scan.measure(0, input.len(), 1)?;
    if top.next != input.len() {
        return Err(BerError::TrailingData);
    }
    if !top.changed {
        return Ok(Cow::Borrowed(input));
    }
    // One pass records each element's converted content length in pre-order; the next writes
    // the output with those lengths.
    let mut plan = Walker::new(input, limits, canonical, Some(Vec::new()));
    let top = plan.measure(0, input.len(), 1)?;
    let lengths = plan.lengths.unwrap_or_default();
    let mut out = Vec::with_capacity(top.out_len);
    let mut writer = Writer {
        input,
        lengths: &lengths,
        next_entry: 0,
        out: &mut out,
    };
    writer.element(0, input.len())?;
    Ok(Cow::Owned(out))
}

/// Re-encodes a DER element in the most streaming-like BER: every constructed element with an
/// indefinite length, and every OCTET STRING longer than `chunk` (at least 1) as a constructed,
/// indefinite-length string of `chunk`-byte segments. [`to_der`] turns the result back into the
/// input. For tests and fuzz seeds: a harsher form than Apple's encoder writes.
pub fn to_indefinite(der: &[u8], chunk: usize) -> Result<Vec<u8>, BerError> {
    fn element(
        input: &[u8],
        pos: usize,
        end: usize,
        chunk: usize,
        out: &mut Vec<u8>,
    ) -> Result<usize, BerError> {
        let header = read_header(input, pos, end)?;
        let len = header.len.ok_or(BerError::InvalidLength)?;
        let next = header.contents + len;
        let contents = &input[header.contents..next];
        if header.constructed() {
            out.extend([header.tag, 0x80]);
            let mut child = header.contents;
            while child < next {
                child = element(input, child, next, chunk, out)?;
            }
            out.extend([0x00, 0x00]);
        } else if header.tag == 0x04 && contents.len() > chunk {
            out.extend([0x24, 0x80]);
            for segment in contents.chunks(chunk) {
                push_header(out, 0x04, segment.len());
                out.extend_from_slice(segment);
            }
            out.extend([0x00, 0x00]);
        } else {
            out.extend_from_slice(&input[pos..next]);
        }
        Ok(next)
    }
    let mut out = Vec::with_capacity(der.len() * 2);
    let next = element(der, 0, der.len(), chunk.max(1), &mut out)?;
    if next != der.len() {
        return Err(BerError::TrailingData);
    }
    Ok(out)
}

/// A parsed identifier and length.
#[derive(Debug, Clone, Copy)]
struct Header {
    tag: u8,
    /// Offset of the contents.
    contents: usize,
    /// `None` for an indefinite length.
    len: Option<usize>,
    /// The length is in the shortest form DER requires.
    minimal: bool,
}

impl Header {
    fn constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }
}

/// Reads the header at `pos`; `end` bounds the element.
fn read_header(input: &[u8], pos: usize, end: usize) -> Result<Header, BerError> {
    let bytes = input.get(pos..end).ok_or(BerError::Truncated)?;
    let (&tag, rest) = bytes.split_first().ok_or(BerError::Truncated)?;
    if tag & 0x1F == 0x1F {
        return Err(BerError::HighTagNumber);
    }
    let (&first, rest) = rest.split_first().ok_or(BerError::Truncated)?;
    let (len, minimal, count) = match first {
        0x00..=0x7F => (Some(usize::from(first)), true, 0),
        0x80 => {
            if tag & 0x20 == 0 {
                return Err(BerError::InvalidLength);
            }
            (None, false, 0)
        }
        0xFF => return Err(BerError::InvalidLength),
        _ => {
            let count = usize::from(first & 0x7F);
            if count > 8 {
                return Err(BerError::InvalidLength);
            }
            let len_bytes = rest.get(..count).ok_or(BerError::Truncated)?;
            let value = len_bytes
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            let value = usize::try_from(value).map_err(|_| BerError::InvalidLength)?;
            let significant = len_bytes.iter().skip_while(|&&b| b == 0).count();
            let minimal = value >= 0x80 && significant == count;
            (Some(value), minimal, count)
        }
    };
    let contents = pos + 2 + count;
    if let Some(len) = len
        && len > end.saturating_sub(contents)
    {
        return Err(BerError::Truncated);
    }
    Ok(Header {
        tag,
        contents,
        len,
        minimal,
    })
}

/// Length of a DER header for contents of `len` bytes.
fn header_len(len: usize) -> usize {
    if len < 0x80 {
        2
    } else {
        2 + (usize::BITS - len.leading_zeros()).div_ceil(8) as usize
    }
}

fn push_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        // Short form: the value fits in seven bits.
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        // At most size_of::<usize>() octets, far below 0x7F.
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Universal string types whose constructed form is flattened (BIT STRING excluded).
fn is_flattened_string(tag: u8) -> bool {
    tag & 0xC0 == 0 && matches!(tag & 0x1F, 0x04 | 0x0C | 0x12..=0x16 | 0x19..=0x1E)
}

/// Deepest nesting [`is_unchanged_der`] tracks; deeper limits take the measuring passes.
const FLAT_SCAN_DEPTH: usize = 64;

/// Whether `input` is one well-formed element that the conversion would leave byte for byte
/// as it is: definite lengths only (minimal ones too when `canonical`), no constructed
/// strings, within `limits`. A loop with an explicit stack instead of the recursive
/// [`Walker::measure`], so the common DER case costs one cheap pass; `false` for anything
/// else (BER, malformed), which the caller then measures properly.
fn is_unchanged_der(input: &[u8], limits: &BerLimits, canonical: bool) -> bool {
    if limits.max_depth > FLAT_SCAN_DEPTH || input.is_empty() {
        return false;
    }
    // Ends of the open containers (the innermost on top) and the current one's end.
    let mut parents = [0usize; FLAT_SCAN_DEPTH];
    let mut depth = 0usize;
    let mut end = input.len();
    let mut pos = 0usize;
    let mut elements = 0usize;
    loop {
        if pos == end {
            if depth == 0 {
                return true;
            }
            depth -= 1;
            end = parents[depth];
            continue;
        }
        // A second element at the top is trailing data.
        if depth == 0 && elements > 0 {
            return false;
        }
        elements += 1;
        if elements > limits.max_elements || depth >= limits.max_depth {
            return false;
        }
        let (Some(&tag), Some(&first)) = (input.get(pos), input.get(pos + 1)) else {
            return false;
        };
        if tag == 0 || tag & 0x1F == 0x1F || pos + 2 > end {
            return false;
        }
        let (len, header) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let count = usize::from(first & 0x7F);
            // 0x80 (indefinite) and 0xFF (reserved) both end up here.
            if count == 0 || count > 8 || pos + 2 + count > end {
                return false;
            }
            let bytes = &input[pos + 2..pos + 2 + count];
            if canonical && (bytes[0] == 0 || (count == 1 && bytes[0] < 0x80)) {
                return false;
            }
            let value = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            let Ok(value) = usize::try_from(value) else {
                return false;
            };
            (value, 2 + count)
        };
        let contents = pos + header;
        if len > end - contents {
            return false;
        }
        if tag & 0x20 == 0 {
            pos = contents + len;
        } else {
            // Constructed strings are flattened; a constructed BIT STRING is refused.
            if is_flattened_string(tag) || (tag & 0xC0 == 0 && tag & 0x1F == 0x03) {
                return false;
            }
            parents[depth] = end;
            depth += 1;
            end = contents + len;
            pos = contents;
        }
    }
}

/// What measuring one element found.
#[derive(Debug, Clone, Copy)]
struct Measured {
    /// Offset just past the element (past its end-of-contents for an indefinite length).
    next: usize,
    /// Length of the element once converted (header included).
    out_len: usize,
    /// The element's bytes change in the conversion.
    changed: bool,
}

/// One pre-order entry of the plan: an element's converted content length and whether it changes.
#[derive(Debug, Clone, Copy)]
struct Entry {
    content_len: usize,
    changed: bool,
}

struct Walker<'a, 'l> {
    input: &'a [u8],
    limits: &'l BerLimits,
    canonical: bool,
    elements: usize,
    /// Pre-order entries (second pass only). An unchanged subtree keeps only its root's entry.
    lengths: Option<Vec<Entry>>,
}

impl<'a, 'l> Walker<'a, 'l> {
    fn new(
        input: &'a [u8],
        limits: &'l BerLimits,
        canonical: bool,
        lengths: Option<Vec<Entry>>,
    ) -> Self {
        Self {
            input,
            limits,
            canonical,
            elements: 0,
            lengths,
        }
    }

    fn count(&mut self, depth: usize) -> Result<(), BerError> {
        if depth > self.limits.max_depth {
            return Err(BerError::TooDeep(self.limits.max_depth));
        }
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(BerError::TooManyElements(self.limits.max_elements));
        }
        Ok(())
    }

    /// Measures the element at `pos`, which must end by `end`.
    fn measure(&mut self, pos: usize, end: usize, depth: usize) -> Result<Measured, BerError> {
        self.count(depth)?;
        let header = read_header(self.input, pos, end)?;
        if header.tag == 0 {
            return Err(BerError::MisplacedEndOfContents);
        }
        let entry = self.lengths.as_ref().map_or(0, Vec::len);
        if let Some(lengths) = &mut self.lengths {
            lengths.push(Entry {
                content_len: 0,
                changed: false,
            });
        }
        let (next, content_len, changed) = if !header.constructed() {
            let len = header.len.ok_or(BerError::InvalidLength)?;
            (
                header.contents + len,
                len,
                self.canonical && !header.minimal,
            )
        } else if is_flattened_string(header.tag) {
            let (next, len) = self.measure_segments(&header, end, depth)?;
            (next, len, true)
        } else if header.tag & 0xC0 == 0 && header.tag & 0x1F == 0x03 {
            return Err(BerError::InvalidSegment);
        } else {
            let (next, len, children_changed) = self.measure_children(&header, end, depth)?;
            let changed =
                children_changed || header.len.is_none() || (self.canonical && !header.minimal);
            (next, len, changed)
        };
        if let Some(lengths) = &mut self.lengths {
            if changed {
                lengths[entry] = Entry {
                    content_len,
                    changed,
                };
            } else {
                // Copied byte for byte: the subtree's own entries are never read.
                lengths.truncate(entry + 1);
            }
        }
        let out_len = if changed {
            header_len(content_len) + content_len
        } else {
            next - pos
        };
        Ok(Measured {
            next,
            out_len,
            changed,
        })
    }

    /// The contents of a constructed, non-string element: (next offset, converted content
    /// length, whether any child changed).
    fn measure_children(
        &mut self,
        header: &Header,
        end: usize,
        depth: usize,
    ) -> Result<(usize, usize, bool), BerError> {
        let mut pos = header.contents;
        let mut total = 0usize;
        let mut changed = false;
        match header.len {
            Some(len) => {
                let content_end = header.contents + len;
                while pos < content_end {
                    let child = self.measure(pos, content_end, depth + 1)?;
                    total += child.out_len;
                    changed |= child.changed;
                    pos = child.next;
                }
                Ok((content_end, total, changed))
            }
            None => loop {
                if at_end_of_contents(self.input, pos, end)? {
                    return Ok((pos + 2, total, changed));
                }
                let child = self.measure(pos, end, depth + 1)?;
                total += child.out_len;
                changed |= child.changed;
                pos = child.next;
            },
        }
    }

    /// A constructed string's segments: (next offset, total value length).
    fn measure_segments(
        &mut self,
        header: &Header,
        end: usize,
        depth: usize,
    ) -> Result<(usize, usize), BerError> {
        let primitive_tag = header.tag & !0x20;
        let mut pos = header.contents;
        let mut total = 0usize;
        let content_end = header.len.map(|len| header.contents + len);
        loop {
            match content_end {
                Some(content_end) if pos >= content_end => return Ok((content_end, total)),
                None if at_end_of_contents(self.input, pos, end)? => return Ok((pos + 2, total)),
                _ => {}
            }
            let limit = content_end.unwrap_or(end);
            self.count(depth + 1)?;
            let segment = read_header(self.input, pos, limit)?;
            if segment.tag == primitive_tag {
                let len = segment.len.ok_or(BerError::InvalidLength)?;
                total += len;
                pos = segment.contents + len;
            } else if segment.tag == header.tag {
                let (next, len) = self.measure_segments(&segment, limit, depth + 1)?;
                total += len;
                pos = next;
            } else {
                return Err(BerError::InvalidSegment);
            }
        }
    }
}

/// Whether an end-of-contents marker (`00 00`) starts at `pos`; a zero tag with a non-zero
/// length is an error, and so is running out of input before the marker.
fn at_end_of_contents(input: &[u8], pos: usize, end: usize) -> Result<bool, BerError> {
    match input.get(pos..end.min(pos.saturating_add(2))) {
        Some([0, 0]) => Ok(true),
        Some([0, _]) => Err(BerError::MisplacedEndOfContents),
        Some([_, _]) => Ok(false),
        _ => Err(BerError::MissingEndOfContents),
    }
}

struct Writer<'a, 'o> {
    input: &'a [u8],
    lengths: &'o [Entry],
    next_entry: usize,
    out: &'o mut Vec<u8>,
}

impl Writer<'_, '_> {
    /// Writes the converted element at `pos` (already validated by the measuring passes) and
    /// returns the offset after it.
    fn element(&mut self, pos: usize, end: usize) -> Result<usize, BerError> {
        let header = read_header(self.input, pos, end)?;
        let entry = *self
            .lengths
            .get(self.next_entry)
            .ok_or(BerError::Truncated)?;
        self.next_entry += 1;
        if !header.constructed() {
            let len = header.len.ok_or(BerError::InvalidLength)?;
            let next = header.contents + len;
            if entry.changed {
                push_header(self.out, header.tag, len);
                self.out
                    .extend_from_slice(&self.input[header.contents..next]);
            } else {
                self.out.extend_from_slice(&self.input[pos..next]);
            }
            return Ok(next);
        }
        if !entry.changed {
            let len = header.len.ok_or(BerError::InvalidLength)?;
            let next = header.contents + len;
            self.out.extend_from_slice(&self.input[pos..next]);
            return Ok(next);
        }
        if is_flattened_string(header.tag) {
            push_header(self.out, header.tag & !0x20, entry.content_len);
            return self.segments(&header, end);
        }
        push_header(self.out, header.tag, entry.content_len);
        let mut child = header.contents;
        match header.len {
            Some(len) => {
                let content_end = header.contents + len;
                while child < content_end {
                    child = self.element(child, content_end)?;
                }
                Ok(content_end)
            }
            None => loop {
                if at_end_of_contents(self.input, child, end)? {
                    return Ok(child + 2);
                }
                child = self.element(child, end)?;
            },
        }
    }

    fn segments(&mut self, header: &Header, end: usize) -> Result<usize, BerError> {
        let mut pos = header.contents;
        let content_end = header.len.map(|len| header.contents + len);
        loop {
            match content_end {
                Some(content_end) if pos >= content_end => return Ok(content_end),
                None if at_end_of_contents(self.input, pos, end)? => return Ok(pos + 2),
                _ => {}
            }
            let limit = content_end.unwrap_or(end);
            let segment = read_header(self.input, pos, limit)?;
            if segment.constructed() {
                pos = self.segments(&segment, limit)?;
            } else {
                let len = segment.len.ok_or(BerError::InvalidLength)?;
                let next = segment.contents + len;
                self.out
                    .extend_from_slice(&self.input[segment.contents..next]);
                pos = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(input: &[u8]) -> Result<Vec<u8>, BerError> {
        to_der(input, &BerLimits::default()).map(Cow::into_owned)
    }

    #[test]
    fn der_input_is_borrowed_unchanged() {
        let input = [0x30, 0x06, 0x02, 0x01, 0x05, 0x04, 0x01, 0xAA];
        assert!(matches!(
            to_der(&input, &BerLimits::default()),
            Ok(Cow::Borrowed(b)) if b == input
        ));
        // A non-minimal length is kept by to_der (a certificate keeps its bytes) ...
        let long = [0x30, 0x81, 0x03, 0x02, 0x01, 0x05];
        assert!(matches!(
            to_der(&long, &BerLimits::default()),
            Ok(Cow::Borrowed(_))
        ));
        // ... and rewritten by to_canonical_der.
        assert_eq!(
            to_canonical_der(&long, &BerLimits::default())
                .unwrap()
                .into_owned(),
            [0x30, 0x03, 0x02, 0x01, 0x05]
        );
    }

    #[test]
    fn indefinite_lengths_become_definite() {
        // SEQUENCE(indef) { INTEGER 5, SEQUENCE(indef) { NULL } }
        let input = [
            0x30, 0x80, 0x02, 0x01, 0x05, 0x30, 0x80, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(
            der(&input).unwrap(),
            [0x30, 0x07, 0x02, 0x01, 0x05, 0x30, 0x02, 0x05, 0x00]
        );
    }

    #[test]
    fn constructed_octet_strings_are_flattened() {
        // [0] EXPLICIT (indef) { OCTET STRING (constructed, indef) { "ab", "c" } }
        let input = [
            0xA0, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0x00, 0x00, 0x00,
            0x00,
        ];
        assert_eq!(
            der(&input).unwrap(),
            [0xA0, 0x05, 0x04, 0x03, b'a', b'b', b'c']
        );
        // Nested constructed segments and a definite outer length.
        let nested = [
            0x24, 0x0A, 0x24, 0x80, 0x04, 0x01, b'x', 0x00, 0x00, 0x04, 0x01, b'y',
        ];
        assert_eq!(der(&nested).unwrap(), [0x04, 0x02, b'x', b'y']);
    }

    #[test]
    fn long_contents_get_long_definite_lengths() {
        let mut input = vec![0x30, 0x80, 0x04, 0x82, 0x01, 0x00];
        input.extend(std::iter::repeat_n(0x11, 256));
        input.extend([0x00, 0x00]);
        let out = der(&input).unwrap();
        assert_eq!(&out[..6], &[0x30, 0x82, 0x01, 0x04, 0x04, 0x82]);
        assert_eq!(out.len(), 4 + 4 + 256);
    }

    #[test]
    fn unchanged_subtrees_keep_their_bytes_inside_a_rewritten_parent() {
        // SEQUENCE(indef) { SEQUENCE(long-form len 3) { INTEGER 1 } }
        let input = [0x30, 0x80, 0x30, 0x81, 0x03, 0x02, 0x01, 0x01, 0x00, 0x00];
        assert_eq!(
            der(&input).unwrap(),
            [0x30, 0x06, 0x30, 0x81, 0x03, 0x02, 0x01, 0x01]
        );
    }

    #[test]
    fn malformed_input_is_refused() {
        let cases: &[(&[u8], BerError)] = &[
            (&[], BerError::Truncated),
            (&[0x30], BerError::Truncated),
            (&[0x30, 0x80], BerError::MissingEndOfContents),
            (&[0x30, 0x80, 0x05, 0x00], BerError::MissingEndOfContents),
            (&[0x30, 0x80, 0x00, 0x01], BerError::MisplacedEndOfContents),
            (&[0x00, 0x00], BerError::MisplacedEndOfContents),
            (&[0x04, 0x80, 0x00, 0x00], BerError::InvalidLength),
            (&[0x30, 0xFF], BerError::InvalidLength),
            (
                &[0x30, 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                BerError::InvalidLength,
            ),
            (&[0x1F, 0x01, 0x00], BerError::HighTagNumber),
            (&[0x30, 0x05, 0x02, 0x01], BerError::Truncated),
            (&[0x30, 0x03, 0x02, 0x05, 0x01], BerError::Truncated),
            (&[0x05, 0x00, 0x05, 0x00], BerError::TrailingData),
            (
                &[0x24, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00],
                BerError::InvalidSegment,
            ),
            (
                &[0x23, 0x80, 0x03, 0x01, 0x00, 0x00, 0x00],
                BerError::InvalidSegment,
            ),
            // A child claiming more than its definite parent holds.
            (
                &[0x30, 0x03, 0x30, 0x80, 0x05, 0x00, 0x00, 0x00],
                BerError::MissingEndOfContents,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(der(input).unwrap_err(), *expected, "input {input:02x?}");
        }
    }

    #[test]
    fn limits_are_enforced() {
        let mut deep = Vec::new();
        for _ in 0..40 {
            deep.extend([0x30, 0x80]);
        }
        for _ in 0..40 {
            deep.extend([0x00, 0x00]);
        }
        assert_eq!(der(&deep).unwrap_err(), BerError::TooDeep(32));

        let mut wide = vec![0x30, 0x80];
        for _ in 0..20_000 {
            wide.extend([0x05, 0x00]);
        }
        wide.extend([0x00, 0x00]);
        assert_eq!(der(&wide).unwrap_err(), BerError::TooManyElements(16_384));

        let limits = BerLimits {
            max_input: 4,
            ..BerLimits::default()
        };
        assert_eq!(
            to_der(&[0x04, 0x03, 1, 2, 3], &limits).unwrap_err(),
            BerError::TooLarge { len: 5, max: 4 }
        );
    }

    #[test]
    fn indefinite_form_round_trips() {
        let input = [
            0x30, 0x0C, 0xA0, 0x04, 0x04, 0x02, b'a', b'b', 0x31, 0x04, 0x02, 0x02, 0x01, 0x07,
        ];
        let ber = to_indefinite(&input, 1).unwrap();
        assert_eq!(&ber[..4], &[0x30, 0x80, 0xA0, 0x80]);
        assert!(ber.len() > input.len());
        assert_eq!(der(&ber).unwrap(), input);
    }

    /// The flat scan says "unchanged" exactly when the measuring passes would borrow the input.
    fn agrees_with_measure(input: &[u8], canonical: bool) {
        let limits = BerLimits::default();
        let mut walker = Walker::new(input, &limits, canonical, None);
        let measured = walker
            .measure(0, input.len(), 1)
            .is_ok_and(|top| top.next == input.len() && !top.changed);
        assert_eq!(
            is_unchanged_der(input, &limits, canonical),
            measured,
            "{input:02x?} canonical={canonical}"
        );
    }

    #[test]
    fn the_flat_scan_agrees_with_the_measuring_passes() {
        let samples: [&[u8]; 6] = [
            &[0x30, 0x06, 0x02, 0x01, 0x05, 0x04, 0x01, 0xAA],
            &[0x30, 0x81, 0x03, 0x02, 0x01, 0x05],
            &[0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00],
            &[0x24, 0x04, 0x04, 0x02, b'a', b'b'],
            &[
                0x30, 0x0C, 0xA0, 0x04, 0x04, 0x02, b'a', b'b', 0x31, 0x81, 0x03, 0x02, 0x01, 0x07,
            ],
            &[0x30, 0x00, 0x05, 0x00],
        ];
        for sample in samples {
            for canonical in [false, true] {
                agrees_with_measure(sample, canonical);
                for end in 0..sample.len() {
                    agrees_with_measure(&sample[..end], canonical);
                }
                for i in 0..sample.len() {
                    for flip in [0x01, 0x02, 0x20, 0x7F, 0x80, 0xFF] {
                        let mut mutated = sample.to_vec();
                        mutated[i] ^= flip;
                        agrees_with_measure(&mutated, canonical);
                    }
                }
            }
        }
        // Limits: too deep and too many elements fall back to the measuring passes.
        let tight = BerLimits {
            max_input: 1024,
            max_depth: 1,
            max_elements: 1,
        };
        assert!(!is_unchanged_der(samples[0], &tight, false));
        assert!(is_unchanged_der(&[0x04, 0x01, 0xAA], &tight, false));
    }

    #[test]
    fn every_prefix_and_every_byte_flip_is_handled() {
        let input = [
            0x30, 0x80, 0xA0, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x00, 0x00, 0x00, 0x00,
            0x31, 0x81, 0x03, 0x02, 0x01, 0x07, 0x00, 0x00,
        ];
        let good = der(&input).unwrap();
        assert_eq!(
            good,
            [
                0x30, 0x0C, 0xA0, 0x04, 0x04, 0x02, b'a', b'b', 0x31, 0x81, 0x03, 0x02, 0x01, 0x07
            ]
        );
        for end in 0..input.len() {
            assert!(der(&input[..end]).is_err());
        }
        for i in 0..input.len() {
            for flip in [0x01, 0x80, 0xFF] {
                let mut mutated = input;
                mutated[i] ^= flip;
                // Any result is fine; what matters is no panic and a consistent DER output.
                if let Ok(out) = der(&mutated) {
                    assert_eq!(der(&out).unwrap(), out);
                }
            }
        }
    }
}
