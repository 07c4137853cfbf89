#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

use super::*;
use crate::core::proof::reference;

/// A tree held whole, its tiles cut from it by the spec's definitions and
/// the reference RFC 6962 root (none of the code under test).
struct Log {
    data: Vec<Vec<u8>>,
    leaves: Vec<Hash>,
}

impl Log {
    fn new(n: u64) -> Self {
        let data: Vec<Vec<u8>> = (0..n).map(|i| format!("leaf {i}").into_bytes()).collect();
        let leaves = data.iter().map(|d| leaf_hash(d)).collect();
        Self { data, leaves }
    }

    fn root(&self, size: u64) -> Hash {
        reference::root(&self.leaves[..usize::try_from(size).unwrap()])
    }

    fn tile(&self, t: &TilePath) -> Vec<u8> {
        let span = 1usize << t.tree_level();
        let first = usize::try_from(t.first_position().unwrap()).unwrap();
        let mut out = Vec::new();
        match t.kind() {
            TileKind::Hashes { .. } => {
                for i in 0..usize::from(t.width()) {
                    let lo = (first + i) * span;
                    out.extend_from_slice(reference::root(&self.leaves[lo..lo + span]).as_bytes());
                }
            }
            TileKind::Entries => {
                for d in &self.data[first..first + usize::from(t.width())] {
                    out.extend_from_slice(&u16::try_from(d.len()).unwrap().to_be_bytes());
                    out.extend_from_slice(d);
                }
            }
        }
        out
    }
}

/// Streams the tree of `size` through an audit, the tiles served by
/// `serve` (which may alter them).
fn run(
    size: u64,
    root: Hash,
    older: Option<(u64, Hash)>,
    serve: &dyn Fn(&TilePath) -> Vec<u8>,
) -> Result<TreeSummary, TileFinding> {
    let mut audit = TreeAudit::from_roots((size, root), older)?;
    while let Some(t) = audit.next_level0() {
        let b = TilePath::new(TileKind::Entries, t.index(), t.width()).unwrap();
        let (tile, bundle) = (serve(&t), serve(&b));
        audit.accept_level0(&tile, &bundle)?;
        while let Some(up) = audit.due() {
            audit.accept_upper(&serve(&up))?;
        }
    }
    audit.finish()
}

#[test]
fn the_frontier_root_is_the_rfc6962_root_at_every_size() {
    let log = Log::new(600);
    let mut f = Frontier::default();
    assert_eq!(f.root(), empty_tree_hash());
    for (n, leaf) in log.leaves.iter().enumerate() {
        f.push(*leaf);
        assert_eq!(f.root(), log.root(n as u64 + 1), "{}", n + 1);
    }
}

#[test]
fn trees_of_every_tile_shape_audit_and_count_their_tiles() {
    let log = Log::new(65_536 + 300);
    for (size, hash_tiles) in [
        (0, 0),
        (1, 1),
        (255, 1),
        (256, 2),
        (257, 3),
        (600, 4),
        (65_535, 256 + 1),
        (65_536, 256 + 1 + 1),
        (65_536 + 300, 257 + 1 + 1 + 1 + 1),
    ] {
        let serve = |t: &TilePath| log.tile(t);
        let summary = run(size, log.root(size), None, &serve).unwrap();
        assert_eq!(summary.entries, size, "{size}");
        assert_eq!(summary.hash_tiles, hash_tiles, "{size}");
        assert_eq!(summary.bundles, size.div_ceil(256), "{size}");
    }
}

#[test]
fn a_wrong_signed_root_is_a_root_mismatch() {
    let log = Log::new(300);
    let serve = |t: &TilePath| log.tile(t);
    let err = run(300, log.root(299), None, &serve).unwrap_err();
    assert!(
        matches!(err, TileFinding::RootMismatch { size: 300, .. }),
        "{err}"
    );
    let err = run(0, log.root(1), None, &serve).unwrap_err();
    assert!(
        matches!(err, TileFinding::RootMismatch { size: 0, .. }),
        "{err}"
    );
}

#[test]
fn a_flipped_bit_anywhere_is_found() {
    let log = Log::new(600);
    let root = log.root(600);
    let log = &log;
    let flip = |target: TilePath, byte: usize| {
        move |t: &TilePath| {
            let mut bytes = log.tile(t);
            if *t == target {
                bytes[byte] ^= 1;
            }
            bytes
        }
    };
    let h = |level, index, width| TilePath::new(TileKind::Hashes { level }, index, width).unwrap();
    let e = |index, width| TilePath::new(TileKind::Entries, index, width).unwrap();
    // A level-0 hash: its entry no longer hashes to it.
    let err = run(600, root, None, &flip(h(0, 1, 256), 32 * 7 + 3)).unwrap_err();
    assert!(
        matches!(err, TileFinding::LeafMismatch { index: 263, .. }),
        "{err}"
    );
    // An entry's byte: the same.
    let err = run(600, root, None, &flip(e(2, 88), 2 + 4)).unwrap_err();
    assert!(
        matches!(err, TileFinding::LeafMismatch { index: 512, .. }),
        "{err}"
    );
    // A level-1 hash: not the root of the level-0 tile below.
    let err = run(600, root, None, &flip(h(1, 0, 2), 32 + 31)).unwrap_err();
    assert!(
        matches!(err, TileFinding::TileMismatch { position: 1, ref path, .. } if path == "tile/1/000.p/2"),
        "{err}"
    );
    // A framing length: the bundle no longer splits into 88 entries.
    let err = run(600, root, None, &flip(e(2, 88), 0)).unwrap_err();
    assert!(matches!(err, TileFinding::BundleFraming { .. }), "{err}");
}

#[test]
fn truncated_or_padded_tiles_and_bundles_are_refused() {
    let log = Log::new(300);
    let root = log.root(300);
    for cut in [0usize, 1, 32] {
        let short = |t: &TilePath| {
            let mut b = log.tile(t);
            if t.index() == 1 {
                b.truncate(b.len() - cut.min(b.len()));
                if cut == 0 {
                    b.push(0);
                }
            }
            b
        };
        assert!(run(300, root, None, &short).is_err(), "{cut}");
    }
    let p = TilePath::new(TileKind::Entries, 0, 2).unwrap();
    assert_eq!(
        bundle_entries(&p, &[0, 1, 7, 0, 0]).unwrap(),
        vec![&[7u8][..], &[][..]]
    );
    assert!(
        bundle_entries(&p, &[0, 1, 7, 0, 0, 0]).is_err(),
        "a byte after the last"
    );
    assert!(bundle_entries(&p, &[0, 1, 7]).is_err(), "one entry of two");
    assert!(
        bundle_entries(&p, &[0, 3, 7, 0, 0]).is_err(),
        "framed past the end"
    );
    assert!(
        bundle_entries(&p, &[0, 1, 7, 0, 0, 0, 0]).is_err(),
        "three entries"
    );
}

/// A bundle of width 3 followed by 16 MiB of zero bytes, which frame as
/// 8 M empty entries: refused as bytes after the third entry, all of
/// them counted, so framing stopped at the width.
#[test]
fn junk_after_a_bundle_is_refused_without_framing_it() {
    let p = TilePath::new(TileKind::Entries, 0, 3).unwrap();
    let mut bundle = vec![0, 1, b'a', 0, 0, 0, 2, b'b', b'c'];
    assert_eq!(
        bundle_entries(&p, &bundle).unwrap(),
        vec![&b"a"[..], &b""[..], &b"bc"[..]]
    );
    let junk = 16 << 20;
    bundle.resize(bundle.len() + junk, 0);
    let err = bundle_entries(&p, &bundle).unwrap_err();
    assert_eq!(
        err,
        TileFinding::BundleFraming {
            path: "tile/entries/000.p/3".into(),
            detail: format!("{junk} bytes after the 3 entries the tree gives the bundle"),
        }
    );
    // A short body is refused too, with what it holds.
    let err = bundle_entries(&p, &[0, 1, b'a', 0]).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("1 entries and 1 bytes, where the tree gives the bundle 3 entries"),
        "{err}"
    );
}

/// The read cap follows the width: a partial tile may not be as long as
/// a full one.
#[test]
fn the_read_cap_is_what_the_width_allows() {
    let cap = |kind, width| max_tile_bytes(&TilePath::new(kind, 0, width).unwrap());
    let hashes = TileKind::Hashes { level: 0 };
    assert_eq!(cap(hashes, 256), 8192);
    assert_eq!(cap(hashes, 88), 88 * 32);
    assert_eq!(cap(TileKind::Hashes { level: 3 }, 1), 32);
    assert_eq!(cap(TileKind::Entries, 256), 256 * 65_537);
    assert_eq!(cap(TileKind::Entries, 3), 3 * 65_537);
}

#[test]
fn an_older_tree_is_consistent_at_every_size_and_a_fork_is_not() {
    let log = Log::new(600);
    let serve = |t: &TilePath| log.tile(t);
    for old in [0, 1, 2, 255, 256, 257, 511, 512, 599, 600] {
        let s = run(600, log.root(600), Some((old, log.root(old))), &serve).unwrap();
        assert_eq!(s.consistent_with, Some(old), "{old}");
    }
    let other = Log::new(700);
    let mut forked = other.leaves.clone();
    forked[100] = leaf_hash(b"another entry 100");
    for old in [101, 256, 300, 600] {
        let root = reference::root(&forked[..old]);
        let err = run(600, log.root(600), Some((old as u64, root)), &serve).unwrap_err();
        assert!(
            matches!(err, TileFinding::Inconsistent { size, .. } if size == old as u64),
            "{old}: {err}"
        );
    }
    let err = run(600, log.root(600), Some((601, other.root(601))), &serve).unwrap_err();
    assert_eq!(err, TileFinding::Rollback { old: 601, new: 600 });
    let err = run(600, log.root(600), Some((0, log.root(1))), &serve).unwrap_err();
    assert!(
        matches!(err, TileFinding::Inconsistent { size: 0, .. }),
        "{err}"
    );
}

#[test]
fn an_earlier_full_tile_read_again_must_be_the_one_checked() {
    let log = Log::new(600);
    let mut audit = TreeAudit::from_roots((600, log.root(600)), None).unwrap();
    while let Some(t) = audit.next_level0() {
        let b = TilePath::new(TileKind::Entries, t.index(), t.width()).unwrap();
        audit.accept_level0(&log.tile(&t), &log.tile(&b)).unwrap();
        while let Some(up) = audit.due() {
            audit.accept_upper(&log.tile(&up)).unwrap();
        }
    }
    let t1 = TilePath::new(TileKind::Hashes { level: 0 }, 1, 256).unwrap();
    let b1 = TilePath::new(TileKind::Entries, 1, 256).unwrap();
    let (tile, bundle) = (log.tile(&t1), log.tile(&b1));
    let entries = audit.recheck_level0(1, &tile, &bundle).unwrap();
    assert_eq!(entries[3].0, log.data[259].as_slice());
    // Another tree's tile 1 (its entries hash to it) is not the one checked.
    let other = Log::new(520);
    let mut moved = other.data.clone();
    moved[300] = b"changed".to_vec();
    let other = Log {
        leaves: moved.iter().map(|d| leaf_hash(d)).collect(),
        data: moved,
    };
    let err = audit
        .recheck_level0(1, &other.tile(&t1), &other.tile(&b1))
        .unwrap_err();
    assert!(matches!(err, TileFinding::Changed { .. }), "{err}");
    assert!(
        audit.recheck_level0(2, &tile, &bundle).is_err(),
        "tile 2 is partial"
    );
    assert!(audit.finish().is_ok());
}

#[test]
fn driving_the_audit_out_of_order_is_refused() {
    let log = Log::new(300);
    let mut audit = TreeAudit::from_roots((300, log.root(300)), None).unwrap();
    assert!(matches!(
        audit.accept_upper(&[]),
        Err(TileFinding::OutOfOrder(_))
    ));
    assert!(matches!(
        audit.clone().finish(),
        Err(TileFinding::OutOfOrder(_))
    ));
    let t = audit.next_level0().unwrap();
    let b = TilePath::new(TileKind::Entries, 0, 256).unwrap();
    audit.accept_level0(&log.tile(&t), &log.tile(&b)).unwrap();
    // Tile 1/000.p/1 is due before the next level-0 tile is read.
    assert_eq!(audit.due().unwrap().to_path(), "tile/1/000.p/1");
    assert!(matches!(
        audit.clone().finish(),
        Err(TileFinding::OutOfOrder(_))
    ));
}

/// Leaves altered before the older tree's size, with their tiles made to
/// agree: the signed root refuses them first, so the finding names the
/// tiles, not a fork.
#[test]
fn altered_leaves_are_a_root_mismatch_even_below_an_older_tree() {
    let log = Log::new(600);
    let mut data = log.data.clone();
    data[7] = b"rewritten".to_vec();
    let altered = Log {
        leaves: data.iter().map(|d| leaf_hash(d)).collect(),
        data,
    };
    let serve = |t: &TilePath| altered.tile(t);
    let err = run(600, log.root(600), Some((300, log.root(300))), &serve).unwrap_err();
    assert!(
        matches!(err, TileFinding::RootMismatch { size: 600, .. }),
        "{err}"
    );
}

#[test]
fn a_partial_tile_is_the_prefix_of_its_full_tile() {
    let log = Log::new(600);
    for kind in [TileKind::Hashes { level: 0 }, TileKind::Entries] {
        let full = log.tile(&TilePath::new(kind, 1, 256).unwrap());
        for w in [1, 44, 255] {
            let part = TilePath::new(kind, 1, w).unwrap();
            assert_eq!(partial_from_full(&part, &full).unwrap(), log.tile(&part));
        }
        let part = TilePath::new(kind, 1, 3).unwrap();
        assert!(partial_from_full(&part, &full[..full.len() - 1]).is_err());
    }
}

mod flips {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the tree size and whichever byte of whichever tile or
        /// bundle the audit reads is flipped, the audit refuses the tree.
        #[test]
        fn any_flipped_byte_of_any_resource_is_refused(
            size in 1u64..=700, pick in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), bit in 0u8..8,
        ) {
            let log = Log::new(size);
            let root = log.root(size);
            let read = std::cell::RefCell::new(Vec::new());
            let record = |t: &TilePath| {
                read.borrow_mut().push(*t);
                log.tile(t)
            };
            prop_assert!(run(size, root, None, &record).is_ok());
            let target = *pick.get(&read.borrow());
            let flip = |t: &TilePath| {
                let mut bytes = log.tile(t);
                if *t == target {
                    let i = at.index(bytes.len());
                    bytes[i] ^= 1 << bit;
                }
                bytes
            };
            prop_assert!(run(size, root, None, &flip).is_err(), "{}", target.to_path());
        }
    }
}
