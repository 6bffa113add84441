//! The image entries of a tar stream, read entry by entry (webdataset shards): `sshface detect`'s `.tar` units.

use std::io::Read;
use std::path::Path;

/// The most bytes reserved up front for one entry: its header's size field is untrusted (a 12-byte octal field can
/// claim 8 GiB in a 1 KiB file), so larger entries grow their buffer as their bytes actually arrive.
pub const MAX_RESERVE: u64 = 64 << 20;

/// Streams the image entries of a tar (other entries are skipped) as `(<label>/<entry path>, bytes)`; `f` returns
/// false to stop. An unreadable archive or entry header ends the stream with an error naming `label`; an entry whose
/// data ends early (a cut archive) is passed to `f` as an error naming it, and ends the stream.
pub fn read_images<R: Read>(
    label: &str,
    reader: R,
    mut f: impl FnMut(String, Result<Vec<u8>, String>) -> bool,
) -> Result<(), String> {
    let mut ar = ::tar::Archive::new(reader);
    let entries = ar
        .entries()
        .map_err(|e| format!("tar {label}: cannot read: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("tar {label}: unreadable entry header: {e}"))?;
        let inner = match entry.path() {
            Ok(p) => p.into_owned(),
            Err(e) => return Err(format!("tar {label}: bad entry name: {e}")),
        };
        if !entry.header().entry_type().is_file() || !crate::image_io::is_image_path(&inner) {
            continue;
        }
        let name = format!("{label}/{}", inner.display());
        let size = entry.size();
        let mut bytes = Vec::with_capacity(size.min(MAX_RESERVE) as usize);
        let data = match entry.read_to_end(&mut bytes) {
            Err(e) => Err(format!("image {name}: cannot read from the tar: {e}")),
            // The entry reader stops quietly where the archive ends.
            Ok(n) if (n as u64) < size => Err(format!(
                "image {name}: the tar ends inside this entry, after {n} of its {size} bytes"
            )),
            Ok(_) => Ok(bytes),
        };
        let truncated = data.is_err();
        if !f(name, data) || truncated {
            return Ok(());
        }
    }
    Ok(())
}

/// [`read_images`] of the tar file at `path`.
pub fn read_image_file(
    path: &Path,
    f: impl FnMut(String, Result<Vec<u8>, String>) -> bool,
) -> Result<(), String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("tar {}: cannot open: {e}", path.display()))?;
    read_images(
        &path.display().to_string(),
        std::io::BufReader::new(file),
        f,
    )
}

#[cfg(test)]
mod tests {
    use super::read_images;

    /// A tar of (entry name, declared size, data bytes).
    fn tar(entries: &[(&str, u64, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(name, size, data) in entries {
            let mut h = ::tar::Header::new_gnu();
            h.set_path(name).unwrap();
            h.set_size(size);
            h.set_mode(0o644);
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().next_multiple_of(512), 0);
        }
        out
    }

    /// Each entry's name and byte count (or error), and how the stream ended.
    type Read = (Vec<(String, Result<usize, String>)>, Result<(), String>);

    fn read(bytes: &[u8]) -> Read {
        let mut got = Vec::new();
        let r = read_images("t.tar", bytes, |name, data| {
            got.push((name, data.map(|d| d.len())));
            true
        });
        (got, r)
    }

    #[test]
    fn image_entries_come_with_their_bytes() {
        let (got, r) = read(&tar(&[
            ("a.jpg", 3, b"abc"),
            ("notes.txt", 2, b"hi"),
            ("b/c.png", 1, b"z"),
        ]));
        r.unwrap();
        assert_eq!(
            got,
            [
                ("t.tar/a.jpg".into(), Ok(3)),
                ("t.tar/b/c.png".into(), Ok(1))
            ]
        );
    }

    /// Found auditing the readers: the buffer for an entry was reserved from its header's size field, so a 1 KiB tar
    /// declaring a 2^62-byte entry (GNU base-256 size) aborted the process on the allocation. Now the reservation is
    /// bounded, and an entry cut short by the end of the archive is an error naming it (it used to pass as a whole
    /// image holding the bytes that were there).
    #[test]
    fn a_huge_declared_size_is_an_error_not_an_allocation() {
        for size in [1 << 62, u64::MAX >> 1, 8 << 30] {
            let (got, r) = read(&tar(&[("big.jpg", size, b"only a few bytes")]));
            r.unwrap();
            assert_eq!(got.len(), 1, "{size}");
            assert_eq!(got[0].0, "t.tar/big.jpg");
            let e = got[0].1.clone().unwrap_err();
            assert!(
                e.contains(&format!("image t.tar/big.jpg: the tar ends inside this entry, after 512 of its {size} bytes")),
                "{e}"
            );
        }
    }
}
