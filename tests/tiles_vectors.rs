//! The pure tile audit (`openexec::core::tile_audit`) against a log
//! another implementation wrote: transparency-dev/tessera's test log
//! (`tests/vectors/tiles/tessera/`, see its README), 15 entries with the
//! checkpoint, level-0 tile and entry bundle of every tree size from 0 to
//! 15, signed with the key its build script names.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

use std::path::PathBuf;

use openexec::core::checkpoint::{LogVerifier, SignedCheckpoint};
use openexec::core::tile_audit::{bundle_entries, TileFinding, TreeAudit, TreeSummary};
use openexec::core::tile_path::{TileKind, TilePath};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/tiles/tessera")
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn verifier() -> LogVerifier {
    LogVerifier::from_vkey(String::from_utf8(read("log.vkey")).unwrap().trim()).unwrap()
}

fn checkpoint(size: u64) -> SignedCheckpoint {
    SignedCheckpoint::open(&read(&format!("checkpoint.{size}")), &verifier()).unwrap()
}

/// Audits the stored tree of `current`'s size, the tiles read from the
/// files under the spec's paths, `alter` applied to each file read.
fn audit(
    current: &SignedCheckpoint,
    older: Option<&SignedCheckpoint>,
    alter: &dyn Fn(&str, &mut Vec<u8>),
) -> Result<TreeSummary, TileFinding> {
    let mut audit = TreeAudit::new(current, older)?;
    let fetch = |t: &TilePath| {
        let path = t.to_path();
        let mut bytes = read(&path);
        alter(&path, &mut bytes);
        bytes
    };
    while let Some(t) = audit.next_level0() {
        let b = TilePath::new(TileKind::Entries, t.index(), t.width()).unwrap();
        let (tile, bundle) = (fetch(&t), fetch(&b));
        audit.accept_level0(&tile, &bundle)?;
        while let Some(up) = audit.due() {
            audit.accept_upper(&fetch(&up))?;
        }
    }
    audit.finish()
}

const WORDS: [&str; 15] = [
    "one", "two", "three", "four", "five", "six", "seven", "eit", "nain", "ten", "ileven", "twelf",
    "threeten", "fourten", "fivten",
];

#[test]
fn every_stored_tree_verifies_against_its_signed_checkpoint() {
    assert_eq!(read("checkpoint"), read("checkpoint.15"));
    for size in 0..=15u64 {
        let cp = checkpoint(size);
        assert_eq!(cp.size(), size);
        assert_eq!(cp.origin(), "example.com/log/testdata");
        let summary = audit(&cp, None, &|_, _| {}).unwrap();
        assert_eq!(summary.entries, size);
        assert_eq!(summary.hash_tiles, u64::from(size > 0));
        assert_eq!(summary.bundles, u64::from(size > 0));
    }
    // The leaves are the words the build script logged, in order.
    let t = TilePath::new(TileKind::Entries, 0, 15).unwrap();
    let bundle = read(&t.to_path());
    let entries = bundle_entries(&t, &bundle).unwrap();
    let words: Vec<&[u8]> = WORDS.iter().map(|w| w.as_bytes()).collect();
    assert_eq!(entries, words);
}

/// Every earlier checkpoint is consistent with the tree of 15 from its
/// tiles alone, and with every later tree.
#[test]
fn every_earlier_checkpoint_is_consistent_with_every_later_tree() {
    for new in 0..=15u64 {
        for old in 0..=new {
            let summary = audit(&checkpoint(new), Some(&checkpoint(old)), &|_, _| {}).unwrap();
            assert_eq!(summary.consistent_with, Some(old), "{old} → {new}");
        }
        if new < 15 {
            let err = audit(&checkpoint(new), Some(&checkpoint(15)), &|_, _| {}).unwrap_err();
            assert_eq!(err, TileFinding::Rollback { old: 15, new });
        }
    }
}

#[test]
fn altered_vector_files_are_refused() {
    let cp = checkpoint(15);
    let flip = |target: &'static str, at: usize| {
        move |path: &str, bytes: &mut Vec<u8>| {
            if path == target {
                bytes[at] ^= 1;
            }
        }
    };
    let err = audit(&cp, None, &flip("tile/0/000.p/15", 32 * 4)).unwrap_err();
    assert!(
        matches!(err, TileFinding::LeafMismatch { index: 4, .. }),
        "{err}"
    );
    let err = audit(&cp, None, &flip("tile/entries/000.p/15", 3)).unwrap_err();
    assert!(
        matches!(err, TileFinding::LeafMismatch { index: 0, .. }),
        "{err}"
    );
    // A tile and bundle that agree, but another log's: the root differs.
    let swap = |path: &str, bytes: &mut Vec<u8>| {
        if path == "tile/entries/000.p/15" {
            let t = TilePath::new(TileKind::Entries, 0, 15).unwrap();
            let mut words: Vec<Vec<u8>> = bundle_entries(&t, bytes)
                .unwrap()
                .iter()
                .map(|e| e.to_vec())
                .collect();
            words.swap(0, 1);
            *bytes = words
                .iter()
                .flat_map(|w| [&(w.len() as u16).to_be_bytes()[..], w].concat())
                .collect();
        }
        if path == "tile/0/000.p/15" {
            let (a, b) = bytes.split_at_mut(32);
            a.swap_with_slice(&mut b[..32]);
        }
    };
    let err = audit(&cp, None, &swap).unwrap_err();
    assert!(
        matches!(err, TileFinding::RootMismatch { size: 15, .. }),
        "{err}"
    );
    // The checkpoint of 7 does not open as another size.
    let forged = String::from_utf8(read("checkpoint.7"))
        .unwrap()
        .replacen("\n7\n", "\n8\n", 1);
    assert!(SignedCheckpoint::open(forged.as_bytes(), &verifier()).is_err());
}
