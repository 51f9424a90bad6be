//! Bytes for a failure message or a report.

/// Printable ASCII as is, `\r`, `\n` and `\\` escaped, other bytes as `\xNN`, cut after 600
/// bytes with the total length.
pub fn show(bytes: &[u8]) -> String {
    const MAX: usize = 600;
    let mut s = String::new();
    for &b in bytes.iter().take(MAX) {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > MAX {
        s.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::show;

    #[test]
    fn escapes_and_cuts() {
        assert_eq!(show(b"ok\r\n\\\x00"), "ok\\r\\n\\\\\\x00");
        let long = vec![b'a'; 700];
        assert!(show(&long).ends_with("... (700 bytes)"));
    }
}
