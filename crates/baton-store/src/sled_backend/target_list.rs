//! The channels a command was enqueued to, stored once per command.
//!
//! Sorted enrollment ids, front-coded: each id is `shared prefix length` (varint), `suffix
//! length` (varint), suffix bytes. Fleets' UDIDs share long prefixes, so 10,000 targets take a
//! few bytes each instead of a row each.

use baton_proto::EnrollmentId;

use crate::{StoreError, StoreResult};

fn put_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        // Low seven bits, continuation bit set.
        out.push(u8::try_from(v & 0x7f).unwrap_or(0) | 0x80);
        v >>= 7;
    }
    out.push(u8::try_from(v).unwrap_or(0));
}

fn get_varint(input: &mut &[u8]) -> Option<usize> {
    let mut v: usize = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = input.split_first()?;
        *input = rest;
        v |= usize::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Encodes ids, which must be sorted and free of duplicates.
pub(crate) fn encode(sorted: &[&EnrollmentId]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sorted.len() * 8 + 4);
    put_varint(&mut out, sorted.len());
    let mut prev: &[u8] = &[];
    for id in sorted {
        let cur = id.as_str().as_bytes();
        let shared = prev.iter().zip(cur).take_while(|(a, b)| a == b).count();
        put_varint(&mut out, shared);
        put_varint(&mut out, cur.len() - shared);
        out.extend_from_slice(&cur[shared..]);
        prev = cur;
    }
    out
}

/// Decodes a stored list.
pub(crate) fn decode(tree: &'static str, mut input: &[u8]) -> StoreResult<Vec<EnrollmentId>> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        tree,
        reason: format!("target list: {reason}"),
    };
    let n = get_varint(&mut input).ok_or_else(|| corrupt("no count"))?;
    // Every entry takes at least two bytes: do not trust a count the input cannot hold.
    let mut ids = Vec::with_capacity(n.min(input.len() / 2));
    let mut prev: Vec<u8> = Vec::new();
    for _ in 0..n {
        let shared = get_varint(&mut input).ok_or_else(|| corrupt("truncated"))?;
        let len = get_varint(&mut input).ok_or_else(|| corrupt("truncated"))?;
        if shared > prev.len() || len > input.len() {
            return Err(corrupt("bad lengths"));
        }
        let (suffix, rest) = input.split_at(len);
        input = rest;
        prev.truncate(shared);
        prev.extend_from_slice(suffix);
        let s = std::str::from_utf8(&prev).map_err(|_| corrupt("not UTF-8"))?;
        ids.push(EnrollmentId::parse(s).map_err(|e| corrupt(&e.to_string()))?);
    }
    if !input.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_compact() {
        let ids: Vec<EnrollmentId> = (0..1000)
            .map(|i| EnrollmentId::device(&format!("00008030-{i:016X}")).unwrap())
            .chain([EnrollmentId::user("00008030-0000000000000001", "alice").unwrap()])
            .collect();
        let mut sorted: Vec<&EnrollmentId> = ids.iter().collect();
        sorted.sort();
        let bytes = encode(&sorted);
        assert!(bytes.len() < 1001 * 8, "{} bytes", bytes.len());
        let back = decode("t", &bytes).unwrap();
        assert_eq!(back, sorted.into_iter().cloned().collect::<Vec<_>>());
        assert_eq!(
            decode("t", &encode(&[])).unwrap(),
            Vec::<EnrollmentId>::new()
        );
    }

    #[test]
    fn damaged_lists_are_typed_errors() {
        let a = EnrollmentId::device("dev-a").unwrap();
        let b = EnrollmentId::device("dev-b").unwrap();
        let bytes = encode(&[&a, &b]);
        for bad in [
            &bytes[..bytes.len() - 1],
            &[2, 9, 1, b'x'][..],
            &[0xff; 12][..],
            &[1, 0, 1, 0][..],
        ] {
            assert!(decode("t", bad).is_err(), "{bad:?}");
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode("t", &trailing).is_err());
    }
}
