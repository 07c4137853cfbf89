//! A C2SP `tlog-tiles` client written from the specs (tlog-tiles,
//! tlog-checkpoint, signed-note, RFC 6962 / RFC 9162), using none of the
//! server's code; shared by tests/tiles.rs and tests/postgres_tiles.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read as _;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

pub type H = [u8; 32];

pub fn sha256(parts: &[&[u8]]) -> H {
    let mut d = Sha256::new();
    for p in parts {
        d.update(p);
    }
    d.finalize().into()
}

pub fn leaf_hash(data: &[u8]) -> H {
    sha256(&[&[0], data])
}

pub fn node_hash(l: &H, r: &H) -> H {
    sha256(&[&[1], l, r])
}

/// `N` in the spec's three-digit path elements, all but the last with `x`.
pub fn encode_index(mut n: u64) -> String {
    let mut parts = vec![format!("{:03}", n % 1000)];
    while n >= 1000 {
        n /= 1000;
        parts.push(format!("x{:03}", n % 1000));
    }
    parts.reverse();
    parts.join("/")
}

pub fn tile_url(level: Option<u8>, n: u64, width: u64) -> String {
    let level = level.map_or("entries".to_owned(), |l| l.to_string());
    let suffix = if width == 256 {
        String::new()
    } else {
        format!(".p/{width}")
    };
    format!("/tile/{level}/{}{suffix}", encode_index(n))
}

/// A raw GET: status, Content-Type, Cache-Control, body bytes.
pub fn fetch(base: &str, path: &str) -> (u16, String, String, Vec<u8>) {
    let url = format!("{base}{path}");
    let r = match ureq::get(&url).call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = r.status();
    let ct = r.header("Content-Type").unwrap_or_default().to_owned();
    let cc = r.header("Cache-Control").unwrap_or_default().to_owned();
    let mut body = Vec::new();
    r.into_reader().read_to_end(&mut body).unwrap();
    (status, ct, cc, body)
}

/// A checkpoint opened per tlog-checkpoint / signed-note with one Ed25519
/// verifier key `<name>+<hex id>+<base64(0x01 ‖ key)>`.
pub struct Checkpoint {
    pub size: u64,
    pub root: H,
}

pub fn open_checkpoint(note: &str, vkey: &str) -> Result<Checkpoint, String> {
    let mut parts = vkey.trim().splitn(3, '+');
    let (name, id_hex, key_b64) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let key = B64.decode(key_b64).unwrap();
    assert_eq!(key[0], 1, "Ed25519");
    let key_id = &sha256(&[name.as_bytes(), b"\n", &key])[..4];
    assert_eq!(hex::encode(key_id), id_hex);
    let vk = VerifyingKey::from_bytes(key[1..].try_into().unwrap()).unwrap();
    let split = note.rfind("\n\n").ok_or("no blank line")?;
    let (body, sigs) = (&note[..=split], &note[split + 2..]);
    let mut verified = false;
    for line in sigs.lines() {
        let rest = line.strip_prefix("\u{2014} ").ok_or("bad signature line")?;
        let (who, blob) = rest.split_once(' ').ok_or("bad signature line")?;
        let blob = B64.decode(blob).map_err(|e| e.to_string())?;
        if who != name || blob.len() != 68 || &blob[..4] != key_id {
            continue;
        }
        let sig = Signature::from_bytes(blob[4..].try_into().unwrap());
        vk.verify_strict(body.as_bytes(), &sig)
            .map_err(|_| "bad log signature")?;
        verified = true;
    }
    if !verified {
        return Err("no log signature".into());
    }
    let lines: Vec<&str> = body.lines().collect();
    if lines.len() < 3 || lines[0] != name {
        return Err("not this log's checkpoint".into());
    }
    let root = B64.decode(lines[2]).map_err(|e| e.to_string())?;
    Ok(Checkpoint {
        size: lines[1].parse().map_err(|_| "bad size")?,
        root: root.try_into().map_err(|_| "bad root")?,
    })
}

/// Reads a tree of `size` leaves through its tiles, fetching each tile
/// once, at the width that tree gives it.
pub struct TileClient<'a> {
    base: &'a str,
    pub size: u64,
    pub tiles: RefCell<HashMap<(u8, u64), Vec<u8>>>,
}

impl<'a> TileClient<'a> {
    pub fn new(base: &'a str, size: u64) -> Self {
        Self {
            base,
            size,
            tiles: RefCell::default(),
        }
    }

    /// Width of tile `n` at `level` in this tree (the spec's
    /// `floor(s / 256**l)` hashes at that level, 256 per tile).
    pub fn width(&self, level: u8, n: u64) -> u64 {
        let at_level = self.size >> (8 * u32::from(level));
        (at_level - n * 256).min(256)
    }

    pub fn tile(&self, level: u8, n: u64) -> Vec<u8> {
        if let Some(t) = self.tiles.borrow().get(&(level, n)) {
            return t.clone();
        }
        let width = self.width(level, n);
        let (status, ct, cc, body) = fetch(self.base, &tile_url(Some(level), n, width));
        assert_eq!(status, 200, "tile {level}/{n} width {width}");
        assert_eq!(ct, "application/octet-stream");
        let want_cc = if width == 256 {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        assert_eq!(cc, want_cc, "tile {level}/{n} width {width}");
        assert_eq!(body.len() as u64, 32 * width, "tile {level}/{n}");
        self.tiles.borrow_mut().insert((level, n), body.clone());
        body
    }

    /// The root of the perfect subtree of `2^k` leaves at position `p`:
    /// read from a tile when `k` is a multiple of 8, else hashed from the
    /// two halves (the levels a tile's hashes imply).
    pub fn perfect(&self, k: u32, p: u64) -> H {
        if k % 8 == 0 {
            let level = u8::try_from(k / 8).unwrap();
            let tile = self.tile(level, p / 256);
            let i = usize::try_from(p % 256).unwrap() * 32;
            return tile[i..i + 32].try_into().unwrap();
        }
        node_hash(&self.perfect(k - 1, 2 * p), &self.perfect(k - 1, 2 * p + 1))
    }

    /// RFC 6962 `MTH(D[lo:hi])`.
    pub fn mth(&self, lo: u64, hi: u64) -> H {
        let n = hi - lo;
        if n.is_power_of_two() && lo % n == 0 {
            return self.perfect(n.trailing_zeros(), lo / n);
        }
        let k = largest_power_below(n);
        node_hash(&self.mth(lo, lo + k), &self.mth(lo + k, hi))
    }

    /// RFC 6962 `PATH(m, D[lo:hi])`, leaf side first.
    pub fn path(&self, m: u64, lo: u64, hi: u64) -> Vec<H> {
        let n = hi - lo;
        if n == 1 {
            return Vec::new();
        }
        let k = largest_power_below(n);
        if m < k {
            let mut p = self.path(m, lo, lo + k);
            p.push(self.mth(lo + k, hi));
            p
        } else {
            let mut p = self.path(m - k, lo + k, hi);
            p.push(self.mth(lo, lo + k));
            p
        }
    }

    /// The entries of bundle `n`, unframed.
    pub fn bundle(&self, n: u64) -> Vec<Vec<u8>> {
        let width = self.width(0, n);
        let (status, ct, _, body) = fetch(self.base, &tile_url(None, n, width));
        assert_eq!(status, 200, "bundle {n} width {width}");
        assert_eq!(ct, "application/octet-stream");
        let mut entries = Vec::new();
        let mut rest = &body[..];
        while !rest.is_empty() {
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            entries.push(rest[2..2 + len].to_vec());
            rest = &rest[2 + len..];
        }
        assert_eq!(entries.len() as u64, width, "bundle {n}");
        entries
    }
}

pub fn largest_power_below(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// RFC 9162 §2.1.3.2: the root an inclusion proof leads to.
pub fn root_from_inclusion(index: u64, size: u64, leaf: H, proof: &[H]) -> Option<H> {
    if index >= size {
        return None;
    }
    let (mut f_n, mut s_n, mut r) = (index, size - 1, leaf);
    for p in proof {
        if s_n == 0 {
            return None;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    (s_n == 0).then_some(r)
}

/// `/checkpoint`: fetched, its headers checked, opened with `vkey`.
pub fn checkpoint(base: &str, vkey: &str) -> (String, Checkpoint) {
    let (status, ct, cc, body) = fetch(base, "/checkpoint");
    assert_eq!(status, 200);
    assert_eq!(ct, "text/plain; charset=utf-8");
    assert_eq!(cc, "no-cache");
    let note = String::from_utf8(body).unwrap();
    let cp = open_checkpoint(&note, vkey).expect("the checkpoint verifies");
    (note, cp)
}

/// Everything a monitor checks for one tree: the root, every entry's
/// bundle against the level-0 tiles, and inclusion of chosen entries.
pub fn check_tree(base: &str, cp: &Checkpoint, chosen: &[u64]) {
    let client = TileClient::new(base, cp.size);
    assert_eq!(client.mth(0, cp.size), cp.root, "root of {}", cp.size);
    for n in 0..cp.size.div_ceil(256) {
        let entries = client.bundle(n);
        let tile = client.tile(0, n);
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(&tile[i * 32..i * 32 + 32], leaf_hash(e), "leaf {n}/{i}");
        }
    }
    for &m in chosen.iter().filter(|&&m| m < cp.size) {
        let entry = &client.bundle(m / 256)[usize::try_from(m % 256).unwrap()];
        let proof = client.path(m, 0, cp.size);
        let root = root_from_inclusion(m, cp.size, leaf_hash(entry), &proof);
        assert_eq!(root, Some(cp.root), "inclusion of {m} in {}", cp.size);
        // The bundle's bytes are the entry the JSON API serves.
        let json: Value =
            serde_json::from_slice(&fetch(base, &format!("/ledger/entries/{m}")).3).unwrap();
        assert_eq!(json["entry"].as_str().unwrap().as_bytes(), &entry[..]);
        assert!(root_from_inclusion(m, cp.size, leaf_hash(b"forged"), &proof) != Some(cp.root));
    }
}
