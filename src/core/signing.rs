//! The log's Ed25519 key: entry signatures and signed-note key encodings.
//!
//! One key signs two kinds of message, kept apart by construction:
//! checkpoints are signed as C2SP signed notes (the message is the note
//! text, whose first line is the origin, a key name that cannot contain a
//! space), and entries are signed over [`ENTRY_SIGNATURE_CONTEXT`] followed by
//! the entry's canonical bytes — a prefix that contains spaces and so can
//! never be the first line of a note.
//!
//! Key text forms are those of C2SP signed-note:
//! verifier key `<name>+<hex id>+<base64(0x01 ‖ public key)>` and the
//! matching private key `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 ‖ seed)>`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::marker::PhantomData;

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

/// Prefix of every entry-signature message (see docs/FORMATS.md).
pub const ENTRY_SIGNATURE_CONTEXT: &[u8] = b"OpenExec entry signature v1\n";

/// Signed-note algorithm byte for Ed25519 note signatures (log keys).
pub(crate) const ALG_ED25519: u8 = 0x01;

/// The canonical encodings of the eight points of small order (the whole
/// torsion subgroup of edwards25519; libsodium's blocklist holds the same
/// eight). A unit test checks them with curve25519-dalek: each decodes,
/// canonically, to a point of small order, and they are eight distinct
/// points — the whole subgroup.
const SMALL_ORDER_ENCODINGS: [[u8; 32]; 8] = [
    hex32("0100000000000000000000000000000000000000000000000000000000000000"),
    hex32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    hex32("0000000000000000000000000000000000000000000000000000000000000000"),
    hex32("0000000000000000000000000000000000000000000000000000000000000080"),
    hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
    hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
];

/// 64 hex digits as 32 bytes, at compile time (a bad digit fails the build).
const fn hex32(text: &str) -> [u8; 32] {
    const fn digit(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not a lowercase hex digit"),
        }
    }
    let t = text.as_bytes();
    assert!(t.len() == 64, "not 64 hex digits");
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = digit(t[2 * i]) << 4 | digit(t[2 * i + 1]);
        i += 1;
    }
    out
}

/// Ed25519 verification that accepts exactly what
/// [`VerifyingKey::verify_strict`] accepts, without decompressing `R`
/// (~14% of `openexec verify`'s CPU).
///
/// `verify_strict` is the cofactorless check `R == encode([s]B − [k]A)`
/// with a canonical `s` (which [`VerifyingKey::verify`] also makes), plus
/// three refusals: `R` does not decompress, `R` is of small order, `A` is
/// of small order. Once the check holds, `R` *is* the canonical encoding
/// of a curve point, so it decompresses, and that point is of small order
/// exactly when `R` is one of [`SMALL_ORDER_ENCODINGS`]. `A` is checked by
/// [`VerifyingKey::is_weak`]. The unit tests hold this to `verify_strict`
/// on valid, damaged and crafted signatures that the cofactorless check
/// alone accepts.
#[must_use]
pub(crate) fn verify_strict(key: &VerifyingKey, msg: &[u8], signature: &Signature) -> bool {
    !key.is_weak()
        && !SMALL_ORDER_ENCODINGS.contains(signature.r_bytes())
        && key.verify(msg, signature).is_ok()
}

/// A malformed or mismatched key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not of the signed-note key form.
    #[error("malformed key text (expected {0})")]
    Format(&'static str),
    /// The key name is not a valid signed-note key name.
    #[error("invalid key name {0:?}")]
    Name(String),
    /// The algorithm byte is not Ed25519.
    #[error("unexpected key algorithm (log keys are Ed25519 0x01, witness keys Ed25519 cosignature 0x04)")]
    Algorithm,
    /// The key id does not match name and key.
    #[error("key id does not match the key")]
    KeyId,
    /// The bytes are not a valid Ed25519 key.
    #[error("invalid Ed25519 key bytes")]
    Key,
}

/// A signed-note signature type: the algorithm byte that goes into key
/// ids and key texts. One key type per role, so a log key can never be
/// taken for a witness key or the other way round.
pub trait SignatureType {
    /// The signed-note algorithm byte.
    const ALG: u8;
}

/// Plain Ed25519 note signatures (0x01): the log's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteSignature {}

impl SignatureType for NoteSignature {
    const ALG: u8 = ALG_ED25519;
}

/// A named Ed25519 signing key of signature type `T`.
pub struct NoteSigner<T: SignatureType> {
    name: String,
    key: SigningKey,
    key_id: u32,
    role: PhantomData<T>,
}

/// The public half of a [`NoteSigner`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier<T: SignatureType> {
    name: String,
    key: VerifyingKey,
    key_id: u32,
    role: PhantomData<T>,
}

/// The log's signing key, named by the log's origin.
pub type LogSigner = NoteSigner<NoteSignature>;

/// The log's public key: verifies entries and checkpoints.
pub type LogVerifier = NoteVerifier<NoteSignature>;

impl<T: SignatureType> NoteSigner<T> {
    /// A signer from a 32-byte Ed25519 seed (the caller supplies randomness).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, KeyError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        let key_id = key_id_for(name, T::ALG, &key.verifying_key());
        Ok(Self {
            name: name.to_owned(),
            key,
            key_id,
            role: PhantomData,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex id>+<base64(alg ‖ seed)>`.
    pub fn from_private_key_text(text: &str) -> Result<Self, KeyError> {
        let (name, key) = parse_private_key(text, T::ALG)?;
        Self::from_seed(&name, key.to_bytes())
    }

    /// The private key text (keep it secret; file mode 0600).
    #[must_use]
    pub fn private_key_text(&self) -> String {
        private_key_text(&self.name, self.key_id, T::ALG, &self.key)
    }

    /// The matching verifier.
    #[must_use]
    pub fn verifier(&self) -> NoteVerifier<T> {
        NoteVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
            key_id: self.key_id,
            role: PhantomData,
        }
    }

    /// The key name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signed-note key id.
    #[must_use]
    pub const fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Ed25519 signature over `msg`.
    pub(crate) fn sign_bytes(&self, msg: &[u8]) -> Signature {
        self.key.sign(msg)
    }
}

impl<T: SignatureType> NoteVerifier<T> {
    /// Parses a verifier key `<name>+<hex id>+<base64(alg ‖ key)>`.
    pub fn from_vkey(vkey: &str) -> Result<Self, KeyError> {
        let (name, key, key_id) = parse_vkey(vkey, T::ALG)?;
        Ok(Self {
            name,
            key,
            key_id,
            role: PhantomData,
        })
    }

    /// The verifier key text.
    #[must_use]
    pub fn vkey(&self) -> String {
        vkey_text(&self.name, T::ALG, &self.key)
    }

    /// The key name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signed-note key id.
    #[must_use]
    pub const fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The raw public key (two vkeys wrapping the same key are duplicates).
    #[must_use]
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Strict Ed25519 verification of `signature` over `msg`.
    pub(crate) fn verify_bytes(&self, msg: &[u8], signature: &Signature) -> bool {
        verify_strict(&self.key, msg, signature)
    }
}

impl LogSigner {
    /// Signs an entry's canonical bytes.
    #[must_use]
    pub fn sign_entry(&self, entry_bytes: &[u8]) -> Signature {
        self.key.sign(&entry_message(entry_bytes))
    }

    /// Raw Ed25519 signature over `msg` (used for signed notes).
    #[must_use]
    pub fn sign_raw(&self, msg: &[u8]) -> Signature {
        self.key.sign(msg)
    }
}

impl signed_note::Signer for LogSigner {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.key_id
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

impl LogVerifier {
    /// Checks an entry signature (strict Ed25519 verification).
    #[must_use]
    pub fn verify_entry(&self, entry_bytes: &[u8], signature: &Signature) -> bool {
        self.verify_bytes(&entry_message(entry_bytes), signature)
    }
}

impl signed_note::Verifier for LogVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.key_id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        Signature::from_slice(sig).is_ok_and(|s| self.verify_bytes(msg, &s))
    }
}

/// `ENTRY_SIGNATURE_CONTEXT ‖ entry bytes`.
#[must_use]
pub fn entry_message(entry_bytes: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(ENTRY_SIGNATURE_CONTEXT.len() + entry_bytes.len());
    msg.extend_from_slice(ENTRY_SIGNATURE_CONTEXT);
    msg.extend_from_slice(entry_bytes);
    msg
}

/// Decodes a signature from standard base64 (strict).
pub fn signature_from_base64(text: &str) -> Option<Signature> {
    let bytes = STANDARD.decode(text).ok()?;
    Signature::from_slice(&bytes).ok()
}

/// Encodes a signature as standard base64.
#[must_use]
pub fn signature_to_base64(sig: &Signature) -> String {
    STANDARD.encode(sig.to_bytes())
}

/// Signed-note key id of an Ed25519 key used with signature type `alg`.
fn key_id_for(name: &str, alg: u8, key: &VerifyingKey) -> u32 {
    let mut encoded = vec![alg];
    encoded.extend_from_slice(key.as_bytes());
    signed_note::key_id(name, &encoded)
}

/// The verifier key text `<name>+<hex id>+<base64(alg ‖ key)>`.
fn vkey_text(name: &str, alg: u8, key: &VerifyingKey) -> String {
    let mut encoded = vec![alg];
    encoded.extend_from_slice(key.as_bytes());
    format!(
        "{name}+{:08x}+{}",
        key_id_for(name, alg, key),
        STANDARD.encode(encoded)
    )
}

/// Parses `<name>+<hex id>+<base64(alg ‖ key)>` for signature type `alg`,
/// checking the name and the key id. Returns (name, key, key id).
fn parse_vkey(text: &str, alg: u8) -> Result<(String, VerifyingKey, u32), KeyError> {
    let (name, id, key) = split_key_text(text.trim(), "<name>+<hex id>+<base64 key>")?;
    check_name(name)?;
    let bytes: [u8; 32] = decode_alg_key(key, alg)?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Key)?;
    if key_id_for(name, alg, &key) != id {
        return Err(KeyError::KeyId);
    }
    Ok((name.to_owned(), key, id))
}

/// Parses `PRIVATE+KEY+<name>+<hex id>+<base64(alg ‖ seed)>`, checking the
/// name and the key id. Returns (name, key).
fn parse_private_key(text: &str, alg: u8) -> Result<(String, SigningKey), KeyError> {
    const FORM: &str = "PRIVATE+KEY+<name>+<hex id>+<base64 key>";
    let rest = text
        .trim_end_matches('\n')
        .strip_prefix("PRIVATE+KEY+")
        .ok_or(KeyError::Format(FORM))?;
    let (name, id, key) = split_key_text(rest, FORM)?;
    check_name(name)?;
    let key = SigningKey::from_bytes(&decode_alg_key(key, alg)?);
    if key_id_for(name, alg, &key.verifying_key()) != id {
        return Err(KeyError::KeyId);
    }
    Ok((name.to_owned(), key))
}

/// The private key text `PRIVATE+KEY+<name>+<hex id>+<base64(alg ‖ seed)>`.
fn private_key_text(name: &str, key_id: u32, alg: u8, key: &SigningKey) -> String {
    let mut bytes = vec![alg];
    bytes.extend_from_slice(&key.to_bytes());
    format!(
        "PRIVATE+KEY+{name}+{key_id:08x}+{}\n",
        STANDARD.encode(bytes)
    )
}

fn check_name(name: &str) -> Result<(), KeyError> {
    if signed_note::is_key_name_valid(name) {
        Ok(())
    } else {
        Err(KeyError::Name(name.to_owned()))
    }
}

fn split_key_text<'a>(
    text: &'a str,
    form: &'static str,
) -> Result<(&'a str, u32, &'a str), KeyError> {
    // The base64 key may itself contain '+', so split off two fields only.
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(KeyError::Format(form));
    };
    if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(KeyError::Format(form));
    }
    let id = u32::from_str_radix(id, 16).map_err(|_| KeyError::Format(form))?;
    Ok((name, id, key))
}

fn decode_alg_key(text: &str, expected_alg: u8) -> Result<[u8; 32], KeyError> {
    let bytes = STANDARD.decode(text).map_err(|_| KeyError::Key)?;
    let (&alg, key) = bytes.split_first().ok_or(KeyError::Key)?;
    if alg != expected_alg {
        return Err(KeyError::Algorithm);
    }
    key.try_into().map_err(|_| KeyError::Key)
}

#[cfg(test)]
mod tests {
    use super::*;

    use curve25519_dalek::edwards::CompressedEdwardsY;
    use curve25519_dalek::scalar::Scalar;
    use proptest::prelude::*;
    use sha2::{Digest as _, Sha512};

    #[test]
    fn the_small_order_encodings_are_the_whole_torsion_subgroup() {
        let mut seen = std::collections::BTreeSet::new();
        for bytes in SMALL_ORDER_ENCODINGS {
            let point = CompressedEdwardsY(bytes).decompress().unwrap();
            assert!(point.is_small_order(), "{}", hex::encode(bytes));
            assert_eq!(point.compress().0, bytes, "not canonical");
            seen.insert(bytes);
        }
        // The subgroup has eight points: eight distinct ones are all of it.
        assert_eq!(seen.len(), 8);
    }

    /// `R ‖ s` with `R` the identity and `s = k·a`, which the cofactorless
    /// check accepts (`[s]B − [k]A` is the identity) and `verify_strict`
    /// refuses (R is of small order). Only the key's holder can make one.
    fn identity_r_signature(seed: [u8; 32], msg: &[u8]) -> Signature {
        let key = SigningKey::from_bytes(&seed);
        let hashed: [u8; 64] = Sha512::digest(seed).into();
        let mut a = [0u8; 32];
        a.copy_from_slice(&hashed[..32]);
        a[0] &= 248;
        a[31] &= 127;
        a[31] |= 64;
        let r = SMALL_ORDER_ENCODINGS[0];
        let k: [u8; 64] = Sha512::new()
            .chain_update(r)
            .chain_update(key.verifying_key().as_bytes())
            .chain_update(msg)
            .finalize()
            .into();
        let s = Scalar::from_bytes_mod_order_wide(&k) * Scalar::from_bytes_mod_order(a);
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&r);
        bytes[32..].copy_from_slice(s.as_bytes());
        Signature::from_bytes(&bytes)
    }

    fn agrees_with_dalek(key: &VerifyingKey, msg: &[u8], signature: &Signature) -> bool {
        verify_strict(key, msg, signature) == key.verify_strict(msg, signature).is_ok()
    }

    #[test]
    fn crafted_signatures_the_cofactorless_check_accepts_are_refused() {
        let seed = [9u8; 32];
        let key = SigningKey::from_bytes(&seed).verifying_key();
        let sig = identity_r_signature(seed, b"msg");
        // The test means something only if the plain check lets it through.
        assert!(key.verify(b"msg", &sig).is_ok());
        assert!(key.verify_strict(b"msg", &sig).is_err());
        assert!(!verify_strict(&key, b"msg", &sig));
        // A weak key (the identity) with R the identity and s = 0.
        let weak = VerifyingKey::from_bytes(&SMALL_ORDER_ENCODINGS[0]).unwrap();
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&SMALL_ORDER_ENCODINGS[0]);
        let sig = Signature::from_bytes(&bytes);
        assert!(weak.verify(b"msg", &sig).is_ok());
        assert!(weak.verify_strict(b"msg", &sig).is_err());
        assert!(!verify_strict(&weak, b"msg", &sig));
    }

    proptest! {
        #[test]
        fn strict_verification_agrees_with_dalek(
            seed in any::<[u8; 32]>(),
            msg in proptest::collection::vec(any::<u8>(), 0..200),
            flip in 0usize..512,
            small in 0usize..8,
        ) {
            let signer = SigningKey::from_bytes(&seed);
            let key = signer.verifying_key();
            let good = signer.sign(&msg);
            prop_assert!(verify_strict(&key, &msg, &good));
            let mut damaged = good.to_bytes();
            damaged[flip / 8] ^= 1 << (flip % 8);
            prop_assert!(agrees_with_dalek(&key, &msg, &Signature::from_bytes(&damaged)));
            let mut small_r = good.to_bytes();
            small_r[..32].copy_from_slice(&SMALL_ORDER_ENCODINGS[small]);
            prop_assert!(agrees_with_dalek(&key, &msg, &Signature::from_bytes(&small_r)));
            prop_assert!(agrees_with_dalek(&key, &msg, &identity_r_signature(seed, &msg)));
        }
    }

    #[test]
    fn key_texts_round_trip_for_many_seeds() {
        // Some keys have '+' in their base64 form; all must round trip.
        for b in 0..=255u8 {
            let s = LogSigner::from_seed("example.com/log", [b; 32]).unwrap();
            assert_eq!(
                LogVerifier::from_vkey(&s.verifier().vkey()).unwrap(),
                s.verifier()
            );
            assert!(LogSigner::from_private_key_text(&s.private_key_text()).is_ok());
        }
    }

    #[test]
    fn key_texts_round_trip() {
        let s = LogSigner::from_seed("example.com/log", [7; 32]).unwrap();
        let again = LogSigner::from_private_key_text(&s.private_key_text()).unwrap();
        assert_eq!(again.verifier(), s.verifier());
        let v = LogVerifier::from_vkey(&s.verifier().vkey()).unwrap();
        assert_eq!(v, s.verifier());
    }

    #[test]
    fn vkey_matches_signed_note_crate() {
        let s = LogSigner::from_seed("example.com/log", [7; 32]).unwrap();
        let vkey = s.verifier().vkey();
        assert!(signed_note::StandardVerifier::new(&vkey).is_ok());
        // A different name breaks the key id.
        let renamed = vkey.replacen("example.com/log", "example.com/other", 1);
        assert_eq!(LogVerifier::from_vkey(&renamed), Err(KeyError::KeyId));
    }

    #[test]
    fn entry_signature_is_domain_separated() {
        let s = LogSigner::from_seed("o", [1; 32]).unwrap();
        let sig = s.sign_entry(b"{}");
        assert!(s.verifier().verify_entry(b"{}", &sig));
        assert!(!s.verifier().verify_entry(b"{} ", &sig));
        // A raw signature over the same bytes is not an entry signature.
        assert!(!s.verifier().verify_entry(b"{}", &s.sign_raw(b"{}")));
    }
}
