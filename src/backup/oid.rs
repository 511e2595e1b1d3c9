//! Git object ids (SHA-1, 20 bytes) as they appear on the wire: 40 hex digits.
//!
//! Every oid that comes from a server, a bundle or a stored manifest goes through
//! [`Oid::from_hex`] / [`Oid::from_hex_bytes`], which accept exactly 40 hex digits (either case,
//! as git does) and nothing else. [`Oid`] prints as lowercase hex, the form git writes.
//!
//! SHA-256 repositories (`object-format=sha256`) are not served by GitHub, GitLab or Azure DevOps
//! and are refused by [`super::refs`].

use std::fmt;
use std::str::FromStr;

/// A SHA-1 object id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Oid([u8; 20]);

impl Oid {
    /// Length of an oid in hex digits.
    pub const HEX_LEN: usize = 40;
    /// The all-zero oid git uses for "no object" (e.g. the empty repository's advertisement).
    pub const ZERO: Oid = Oid([0; 20]);

    pub const fn from_bytes(bytes: [u8; 20]) -> Oid {
        Oid(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 20]
    }

    /// Parses exactly 40 hex digits (upper or lower case); anything else is `None`.
    pub fn from_hex(hex: &str) -> Option<Oid> {
        Oid::from_hex_bytes(hex.as_bytes())
    }

    /// [`Oid::from_hex`] on raw bytes (a slice of a pkt-line or a bundle header).
    pub fn from_hex_bytes(hex: &[u8]) -> Option<Oid> {
        if hex.len() != Self::HEX_LEN {
            return None;
        }
        let mut out = [0u8; 20];
        for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let hi = hex_value(*pair.first()?)?;
            let lo = hex_value(*pair.get(1)?)?;
            *byte = (hi << 4) | lo;
        }
        Some(Oid(out))
    }

    /// Lowercase hex, 40 digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Oid({})", self.to_hex())
    }
}

/// The error of parsing an [`Oid`] from a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadOid;

impl fmt::Display for BadOid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object id must be exactly 40 hex digits")
    }
}

impl std::error::Error for BadOid {}

impl FromStr for Oid {
    type Err = BadOid;

    fn from_str(s: &str) -> Result<Oid, BadOid> {
        Oid::from_hex(s).ok_or(BadOid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_case() {
        let hex = "0123456789abcdef0123456789abcdef01234567";
        let oid = Oid::from_hex(hex).unwrap();
        assert_eq!(oid.to_hex(), hex);
        assert_eq!(oid.to_string(), hex);
        assert_eq!(oid.as_bytes()[0], 0x01);
        assert_eq!(oid.as_bytes()[19], 0x67);
        assert_eq!(Oid::from_hex(&hex.to_uppercase()), Some(oid));
        assert_eq!(hex.parse::<Oid>(), Ok(oid));
        assert!(Oid::ZERO.is_zero());
        assert!(!oid.is_zero());
    }

    #[test]
    fn anything_but_40_hex_digits_is_refused() {
        for bad in [
            "",
            "0123",
            "0123456789abcdef0123456789abcdef0123456",
            "0123456789abcdef0123456789abcdef012345678",
            "0123456789abcdef0123456789abcdef0123456g",
            " 123456789abcdef0123456789abcdef01234567",
            "0123456789abcdef0123456789abcdef0123456é",
        ] {
            assert_eq!(Oid::from_hex(bad), None, "{bad:?}");
        }
        assert_eq!("xyz".parse::<Oid>(), Err(BadOid));
    }
}
