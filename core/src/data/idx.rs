//! IDX files (the MNIST family's format), gzip-compressed or not. Only unsigned-byte data
//! (type 0x08), which is what image and label files hold.

use std::io::Read;

use crate::error::{NmlError, Result};

/// An N-dimensional array of bytes from an IDX file.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Larger declared arrays are refused before decompressing, so a hostile header cannot make us
/// allocate without bound.
const MAX_ELEMENTS: usize = 1 << 31;

fn decompressed(bytes: &[u8], name: &str) -> Result<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut header = [0u8; 4 + 4 * 8];
        let mut decoder = flate2::read::GzDecoder::new(bytes);
        // Read the header first to learn the size the body must have.
        let mut got = 0;
        while got < 4 {
            let k = decoder
                .read(&mut header[got..4])
                .map_err(|e| NmlError::format(name, format!("corrupt gzip stream: {e}")))?;
            if k == 0 {
                return Err(NmlError::format(name, "gzip stream ends inside the IDX header"));
            }
            got += k;
        }
        let rank = usize::from(header[3]);
        let mut out = header[..4].to_vec();
        let mut dims_bytes = vec![0u8; 4 * rank];
        decoder.read_exact(&mut dims_bytes).map_err(|e| {
            NmlError::format(name, format!("gzip stream ends inside the IDX header: {e}"))
        })?;
        out.extend_from_slice(&dims_bytes);
        let elements = element_count(&dims_bytes, name)?;
        decoder
            .take(elements as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| NmlError::format(name, format!("corrupt gzip stream: {e}")))?;
        Ok(out)
    } else {
        Ok(bytes.to_vec())
    }
}

fn element_count(dims_bytes: &[u8], name: &str) -> Result<usize> {
    let mut count: usize = 1;
    for chunk in dims_bytes.chunks_exact(4) {
        let dim = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as usize;
        count = count
            .checked_mul(dim)
            .filter(|&c| c <= MAX_ELEMENTS)
            .ok_or_else(|| NmlError::format(name, "IDX dimensions are implausibly large"))?;
    }
    Ok(count)
}

/// Parses an IDX file (gzip or plain) of unsigned bytes.
pub fn read_idx(bytes: &[u8], name: &str) -> Result<IdxArray> {
    let raw = decompressed(bytes, name)?;
    if raw.len() < 4 || raw[0] != 0 || raw[1] != 0 {
        return Err(NmlError::format(name, "not an IDX file (bad magic number)"));
    }
    if raw[2] != 0x08 {
        return Err(NmlError::format(
            name,
            format!("IDX data type 0x{:02x} is not supported (only unsigned bytes, 0x08)", raw[2]),
        ));
    }
    let rank = usize::from(raw[3]);
    if rank == 0 || raw.len() < 4 + 4 * rank {
        return Err(NmlError::format(name, "IDX header is truncated"));
    }
    let dims_bytes = &raw[4..4 + 4 * rank];
    let count = element_count(dims_bytes, name)?;
    let body = &raw[4 + 4 * rank..];
    if body.len() != count {
        return Err(NmlError::format(
            name,
            format!("IDX header declares {count} values but the file holds {}", body.len()),
        ));
    }
    let dims = dims_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    Ok(IdxArray { dims, data: body.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn plain_and_gzip_agree() {
        let raw = idx(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let a = read_idx(&raw, "a").unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(read_idx(&gz(&raw), "a.gz").unwrap(), a);
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let cases = [
            (b"hello".to_vec(), "bad magic"),
            (vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0], "0x0d is not supported"),
            (idx(&[3], &[1, 2]), "declares 3 values but the file holds 2"),
            (gz(&idx(&[3], &[1, 2])), "declares 3 values"),
            (idx(&[65536, 65536, 65536], &[]), "implausibly large"),
            (gz(&[0, 0, 8]), "ends inside the IDX header"),
            (gz(&idx(&[4], &[1, 2, 3, 4]))[..20].to_vec(), "gzip"),
        ];
        for (bytes, expected) in cases {
            let err = read_idx(&bytes, "bad.idx").unwrap_err().to_string();
            assert!(err.starts_with("bad.idx: ") && err.contains(expected), "{expected}: {err}");
        }
    }
}
