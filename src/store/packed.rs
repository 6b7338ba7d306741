//! The envelope of the big values (config blobs, frozen members): zstd
//! where that pays, the bytes as they are otherwise. Configs are JSON or
//! YAML and frozen members mostly JSON, so compression takes the store to
//! about a tenth of their size; decompressing is a fraction of what reading
//! the uncompressed pages cost at start-up.
//!
//! Layout: a one-byte tag, then the value. `z`: a zstd frame that records
//! its content size. Anything else is the value itself, tag included: a
//! config blob's own tag (`j`, `y`) is never `z`, so blobs written before
//! compression read as they are.

/// Tag of a zstd frame.
const ZSTD: u8 = b'z';
/// Tag of a value kept as it is (frozen members, whose first byte is free).
pub const RAW: u8 = b'r';

/// zstd's level: 3 (its default) compresses the configs about as well as
/// 9 does here, at a third of the write's CPU; decompression speed is the
/// same at every level.
const LEVEL: i32 = 3;

/// A value's decompressed size is refused past this: a damaged frame must
/// not make start-up allocate without bound.
const MAX: u64 = 1 << 32;

/// `value` compressed when that saves at least an eighth, else `None`
/// (the caller keeps it as it is).
pub fn compress(value: &[u8]) -> Option<Vec<u8>> {
    let frame = zstd::bulk::compress(value, LEVEL).ok()?;
    if frame.len() + 1 > value.len() - value.len() / 8 {
        return None;
    }
    let mut out = Vec::with_capacity(frame.len() + 1);
    out.push(ZSTD);
    out.extend_from_slice(&frame);
    Some(out)
}

/// A config blob's row: compressed, or its own encoding (tagged `j`/`y`).
pub fn pack_blob(encoded: Vec<u8>) -> Vec<u8> {
    compress(&encoded).unwrap_or(encoded)
}

/// A frozen member's row: compressed, or tagged [`RAW`].
pub fn pack_member(frozen: &[u8]) -> Vec<u8> {
    compress(frozen).unwrap_or_else(|| {
        let mut out = Vec::with_capacity(frozen.len() + 1);
        out.push(RAW);
        out.extend_from_slice(frozen);
        out
    })
}

/// The value of a row written by [`pack_blob`] (or before compression).
pub fn unpack_blob(row: &[u8]) -> Result<Vec<u8>, String> {
    match row.first() {
        Some(&ZSTD) => decompress(&row[1..]),
        _ => Ok(row.to_vec()),
    }
}

/// The value of a row written by [`pack_member`].
pub fn unpack_member(row: &[u8]) -> Result<Vec<u8>, String> {
    match row.split_first() {
        Some((&ZSTD, frame)) => decompress(frame),
        Some((&RAW, value)) => Ok(value.to_vec()),
        _ => Err("the row has no known tag".into()),
    }
}

fn decompress(frame: &[u8]) -> Result<Vec<u8>, String> {
    let size = zstd::zstd_safe::get_frame_content_size(frame)
        .map_err(|e| format!("not a zstd frame: {e}"))?
        .ok_or("the zstd frame does not record its size")?;
    if size > MAX {
        return Err(format!("the zstd frame claims {size} bytes"));
    }
    zstd::bulk::decompress(frame, size as usize).map_err(|e| format!("zstd: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_compressed_or_not() {
        let json = br#"{"services":[{"name":"a","host":"h"}]}"#.repeat(50);
        let tiny = b"jx".to_vec();
        for v in [json.clone(), tiny.clone()] {
            assert_eq!(unpack_blob(&pack_blob(v.clone())), Ok(v.clone()));
            assert_eq!(unpack_member(&pack_member(&v)), Ok(v));
        }
        assert_eq!(pack_blob(json.clone())[0], ZSTD, "JSON pays");
        assert_eq!(pack_blob(tiny.clone()), tiny, "two bytes do not");
        // A blob written before compression reads as it is.
        assert_eq!(unpack_blob(b"j{}"), Ok(b"j{}".to_vec()));
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let row = pack_member(&br#"{"a":1}"#.repeat(100));
        for n in 0..row.len() {
            let _ = unpack_member(&row[..n]);
            let mut bad = row.clone();
            bad[n] ^= 0x5a;
            let _ = unpack_member(&bad);
        }
        assert!(unpack_member(&row[..row.len() / 2]).is_err());
        assert!(unpack_member(b"").is_err());
    }
}
