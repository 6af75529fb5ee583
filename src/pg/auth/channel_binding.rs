//! `tls-server-end-point` channel binding (RFC 5929 §4): the data that
//! ties a SCRAM exchange to the TLS session it runs in.
//!
//! The binding is a hash of the server's certificate, exactly as it came
//! in the TLS handshake (DER). Both sides compute it; the client sends it
//! inside the SCRAM proof, so a machine in the middle, which must present
//! its *own* certificate to us, produces a different hash and the server
//! refuses the login. This is what `SCRAM-SHA-256-PLUS` adds to SCRAM.
//!
//! Which hash: the one the certificate's signature uses, except that MD5
//! and SHA-1 become SHA-256 (RFC 5929 §4.1). So this file reads one field
//! of the certificate, `signatureAlgorithm`, with a minimal DER walk
//! (X.690 §8.1: a tag, a length, the contents):
//!
//! ```text
//! Certificate ::= SEQUENCE {
//!     tbsCertificate       SEQUENCE { … },      skipped
//!     signatureAlgorithm   SEQUENCE { algorithm OBJECT IDENTIFIER, … },
//!     signatureValue       BIT STRING }
//! ```
//!
//! The bytes are the server's, so nothing here panics or allocates by a
//! length field: a certificate we cannot read is an error. (rustls has
//! already parsed and, under `verify-*`, checked this certificate; it does
//! not expose the algorithm, and an X.509 crate for one field would be
//! more code to trust than these forty lines.)

use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use super::AuthError;

/// DER tag of a SEQUENCE (constructed).
const SEQUENCE: u8 = 0x30;
/// DER tag of an OBJECT IDENTIFIER.
const OID: u8 = 0x06;

/// The hashes a certificate signature may name, and the OIDs (DER contents)
/// that name them: RSA PKCS#1 v1.5 (RFC 8017 Appendix C) and ECDSA
/// (RFC 5758 §3.2).
const ALGORITHMS: &[(&[u8], Hash)] = &[
    // md5WithRSAEncryption, sha1WithRSAEncryption, ecdsa-with-SHA1: SHA-256 by RFC 5929.
    (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04], Hash::Sha256),
    (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05], Hash::Sha256),
    (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01], Hash::Sha256),
    // sha{256,384,512,224}WithRSAEncryption
    (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b], Hash::Sha256),
    (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c], Hash::Sha384),
    (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d], Hash::Sha512),
    (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0e], Hash::Sha224),
    // ecdsa-with-SHA{224,256,384,512}
    (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x01], Hash::Sha224),
    (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02], Hash::Sha256),
    (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03], Hash::Sha384),
    (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04], Hash::Sha512),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// The `tls-server-end-point` binding data for a server certificate (DER).
///
/// Refused: a certificate that is not DER we can walk, and a signature
/// with no single hash (Ed25519, RSA-PSS), for which RFC 5929 defines no
/// binding; PostgreSQL's server cannot compute one either.
pub fn tls_server_end_point(certificate: &[u8]) -> Result<Vec<u8>, AuthError> {
    let bad = || AuthError::Malformed("the server certificate is not DER that names its signature algorithm");
    let (cert, _) = element(certificate, SEQUENCE).ok_or_else(bad)?;
    let (_tbs, rest) = element(cert, SEQUENCE).ok_or_else(bad)?;
    let (algorithm, _) = element(rest, SEQUENCE).ok_or_else(bad)?;
    let (oid, _) = element(algorithm, OID).ok_or_else(bad)?;
    let hash = ALGORITHMS
        .iter()
        .find(|(known, _)| *known == oid)
        .map(|(_, hash)| *hash)
        .ok_or(AuthError::Malformed(
            "the server certificate's signature algorithm has no tls-server-end-point hash (RFC 5929)",
        ))?;
    Ok(match hash {
        Hash::Sha224 => Sha224::digest(certificate).to_vec(),
        Hash::Sha256 => Sha256::digest(certificate).to_vec(),
        Hash::Sha384 => Sha384::digest(certificate).to_vec(),
        Hash::Sha512 => Sha512::digest(certificate).to_vec(),
    })
}

/// One DER element with tag `tag` at the start of `input`: its contents and
/// what follows it. `None` for another tag, a length form DER forbids, or
/// a length past the end of the input.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len_byte, rest) = rest.split_first()?;
    let (len, rest) = if len_byte < 0x80 {
        (usize::from(len_byte), rest)
    } else {
        // Long form: the low bits count the length bytes that follow (at
        // most 4 here: no certificate is 4 GiB).
        let count = usize::from(len_byte & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count].iter().fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, &rest[count..])
    };
    (len <= rest.len()).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A skeleton certificate: an empty tbsCertificate, the algorithm, a
    /// one-byte signature. Enough for the walk; nothing else reads it.
    fn skeleton(oid: &[u8]) -> Vec<u8> {
        let mut algorithm = vec![OID, oid.len() as u8];
        algorithm.extend_from_slice(oid);
        let mut body = vec![SEQUENCE, 0, SEQUENCE, algorithm.len() as u8];
        body.extend(algorithm);
        body.extend([0x03, 0x02, 0x00, 0xff]);
        let mut cert = vec![SEQUENCE, body.len() as u8];
        cert.extend(body);
        cert
    }

    #[test]
    fn sha256_signed_certificates_hash_with_sha256() {
        let cert = skeleton(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);
        assert_eq!(tls_server_end_point(&cert).unwrap(), Sha256::digest(&cert).to_vec());
    }

    #[test]
    fn sha1_becomes_sha256_and_sha384_stays_sha384() {
        let sha1 = skeleton(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05]);
        assert_eq!(tls_server_end_point(&sha1).unwrap(), Sha256::digest(&sha1).to_vec());
        let sha384 = skeleton(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]);
        assert_eq!(tls_server_end_point(&sha384).unwrap().len(), 48);
    }

    #[test]
    fn ed25519_has_no_binding_and_says_so() {
        let err = tls_server_end_point(&skeleton(&[0x2b, 0x65, 0x70])).unwrap_err();
        assert!(err.to_string().contains("RFC 5929"), "{err}");
    }

    #[test]
    fn long_form_lengths_are_read() {
        let mut input = vec![SEQUENCE, 0x82, 0x01, 0x00];
        input.extend(vec![0u8; 256]);
        let (contents, rest) = element(&input, SEQUENCE).unwrap();
        assert_eq!((contents.len(), rest.len()), (256, 0));
        assert!(element(&input[..100], SEQUENCE).is_none(), "a length past the end");
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = tls_server_end_point(&bytes);
        }

        #[test]
        fn a_real_certificate_cut_anywhere_is_an_error(cut in 0usize..24) {
            let cert = skeleton(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);
            prop_assume!(cut < cert.len());
            prop_assert!(tls_server_end_point(&cert[..cut]).is_err());
        }
    }
}
