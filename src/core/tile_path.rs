//! C2SP `tlog-tiles` resource paths: `tile/<L>/<N>[.p/<W>]` (hash tiles)
//! and `tile/entries/<N>[.p/<W>]` (entry bundles), tiles of height 8.
//!
//! The encoding of `N` in three-digit elements (`x001/x234/067`) is the Go
//! `sumdb/tlog` one, whose `tile/<H>/<L>/…` paths differ from C2SP's only by
//! the height element and by naming entry bundles `data`: parsing and
//! printing go through `tlog_tiles::Tile` with height 8, after the checks
//! that keep its constructor from panicking (a level of 64 or more, a width
//! of 0).

use tlog_tiles::Tile;

/// Tile height: a tile spans 8 tree levels, so holds 256 hashes.
pub const TILE_HEIGHT: u8 = 8;

/// Hashes in a full tile, entries in a full bundle.
pub const TILE_WIDTH: u16 = 256;

/// Highest level the syntax admits (`<L>` is 0 to 63).
const MAX_LEVEL: u8 = 63;

/// A path the spec does not define, or defines otherwise (leading zeros,
/// an `x` missing or extra, a width of 0 or 256, a level above 63).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a tlog-tiles path: {0:?}")]
pub struct TilePathError(String);

/// What a tile holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileKind {
    /// Merkle tree hashes: hash `i` of tile `N` at level `L` is the root of
    /// the subtree over leaves `[(N·256 + i)·256^L, (N·256 + i + 1)·256^L)`.
    Hashes {
        /// `L`, 0 to 63.
        level: u8,
    },
    /// Entry bundle: the leaves' data, each framed by its big-endian
    /// `u16` length.
    Entries,
}

/// One tile or bundle: its kind, its index `N` within its level and its
/// width `W` (1 to 256; 256 is a full tile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TilePath {
    kind: TileKind,
    index: u64,
    width: u16,
}

impl TilePath {
    /// A tile; `None` for a level above 63 or a width outside 1..=256.
    #[must_use]
    pub fn new(kind: TileKind, index: u64, width: u16) -> Option<Self> {
        let level_ok = match kind {
            TileKind::Hashes { level } => level <= MAX_LEVEL,
            TileKind::Entries => true,
        };
        (level_ok && (1..=TILE_WIDTH).contains(&width)).then_some(Self { kind, index, width })
    }

    /// Parses `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`
    /// (no leading `/`), accepting only the spec's one encoding of each tile.
    pub fn parse(path: &str) -> Result<Self, TilePathError> {
        let bad = || TilePathError(path.chars().take(80).collect());
        let rest = path.strip_prefix("tile/").ok_or_else(bad)?;
        let (first, tail) = rest.split_once('/').ok_or_else(bad)?;
        let go_level = if first == "entries" {
            "data"
        } else if is_level(first) {
            first
        } else {
            return Err(bad());
        };
        if zero_width(tail) {
            return Err(bad());
        }
        let tile =
            Tile::from_path(&format!("tile/{TILE_HEIGHT}/{go_level}/{tail}")).map_err(|_| bad())?;
        let kind = if tile.is_data() {
            TileKind::Entries
        } else {
            TileKind::Hashes {
                level: tile.level(),
            }
        };
        let width = u16::try_from(tile.width()).map_err(|_| bad())?;
        Self::new(kind, tile.level_index(), width).ok_or_else(bad)
    }

    /// The spec's path of this tile, `tile/…` (no leading `/`).
    #[must_use]
    pub fn to_path(&self) -> String {
        let (level, is_data) = match self.kind {
            TileKind::Hashes { level } => (level, false),
            TileKind::Entries => (0, true),
        };
        let go = Tile::new(
            TILE_HEIGHT,
            level,
            self.index,
            u32::from(self.width),
            is_data,
        )
        .path();
        let tail = go
            .strip_prefix(&format!("tile/{TILE_HEIGHT}/"))
            .unwrap_or(&go);
        match tail.strip_prefix("data/") {
            Some(n) => format!("tile/entries/{n}"),
            None => format!("tile/{tail}"),
        }
    }

    /// What the tile holds.
    #[must_use]
    pub const fn kind(&self) -> TileKind {
        self.kind
    }

    /// `N`.
    #[must_use]
    pub const fn index(&self) -> u64 {
        self.index
    }

    /// `W`: hashes or entries in the tile.
    #[must_use]
    pub const fn width(&self) -> u16 {
        self.width
    }

    /// Whether the tile is full (256 wide), hence immutable under one URL.
    #[must_use]
    pub const fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The tree level of the tile's hashes in RFC 6962 terms (0 = leaves):
    /// `8·L`.
    #[must_use]
    pub const fn tree_level(&self) -> u8 {
        match self.kind {
            TileKind::Hashes { level } => level.saturating_mul(TILE_HEIGHT),
            TileKind::Entries => 0,
        }
    }

    /// Position, at [`Self::tree_level`], of the tile's first hash:
    /// `N·256`; `None` past `u64`.
    #[must_use]
    pub fn first_position(&self) -> Option<u64> {
        self.index.checked_mul(u64::from(TILE_WIDTH))
    }

    /// The smallest tree size that holds every hash of the tile:
    /// `(N·256 + W)·256^L`; `None` past `u64` (no such tree).
    #[must_use]
    pub fn tree_size_needed(&self) -> Option<u64> {
        // `checked_shl` is `None` from a shift of 64 (level 8 and above).
        let span = 1u64.checked_shl(u32::from(self.tree_level()))?;
        self.first_position()?
            .checked_add(u64::from(self.width))?
            .checked_mul(span)
    }

    /// Tile `index` of `kind` as the tree of `size` leaves has it: full, or
    /// the partial width that tree gives it (`⌊size / 256^L⌋ − 256·N`,
    /// at most 256); `None` when that tree has no such tile.
    #[must_use]
    pub fn in_tree(kind: TileKind, index: u64, size: u64) -> Option<Self> {
        let level_bits = match kind {
            TileKind::Hashes { level } => u32::from(level).checked_mul(8)?,
            TileKind::Entries => 0,
        };
        let at_level = size.checked_shr(level_bits).unwrap_or(0);
        let first = index.checked_mul(u64::from(TILE_WIDTH))?;
        let width = at_level.checked_sub(first)?.min(u64::from(TILE_WIDTH));
        Self::new(kind, index, u16::try_from(width).ok()?)
    }

    /// Whether a tree of `size` leaves holds the tile: a full tile once its
    /// span is in the tree; a partial one `.p/W` once its `W` hashes are,
    /// so the partial tiles of every smaller tree stay available.
    #[must_use]
    pub fn within(&self, size: u64) -> bool {
        self.tree_size_needed().is_some_and(|needed| needed <= size)
    }
}

/// `0` to `63` in decimal without leading zeros: checked here, because
/// `tlog_tiles::Tile` asserts (panics) on a level of 64 or more.
fn is_level(s: &str) -> bool {
    (1..=2).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'))
        && s.parse::<u8>().is_ok_and(|l| l <= MAX_LEVEL)
}

/// Whether the path ends in `.p/<a width that reads as 0>` (`0`, `00`,
/// `+0`: `tlog_tiles::Tile` reads it as Rust does, then asserts).
fn zero_width(tail: &str) -> bool {
    tail.rsplit_once('/')
        .is_some_and(|(head, w)| head.ends_with(".p") && w.parse::<u32>() == Ok(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn every_tile_round_trips_through_its_path(
            level in 0u8..=63, entries in any::<bool>(), index in any::<u64>(), width in 1u16..=256,
        ) {
            let kind = if entries { TileKind::Entries } else { TileKind::Hashes { level } };
            let t = TilePath::new(kind, index, width).unwrap();
            prop_assert_eq!(TilePath::parse(&t.to_path()), Ok(t));
        }

        /// Whatever the path, parsing answers (never panics), and what it
        /// accepts prints back as the same path.
        #[test]
        fn any_path_parses_or_is_refused(path in "tile/(entries|[0-9]{1,2}|6[0-9]|[+x0-9]{0,3})/(x?[0-9]{3}/){0,2}x?[0-9+]{1,4}(\\.p/(0|00|\\+0|[0-9+]{0,4}))?/?") {
            if let Ok(t) = TilePath::parse(&path) {
                prop_assert_eq!(t.to_path(), path);
            }
        }
    }

    fn hashes(level: u8, index: u64, width: u16) -> TilePath {
        TilePath::new(TileKind::Hashes { level }, index, width).unwrap()
    }

    #[test]
    fn the_spec_example_index_encodes_in_three_digit_elements() {
        let t = hashes(0, 1_234_067, 256);
        assert_eq!(t.to_path(), "tile/0/x001/x234/067");
        assert_eq!(TilePath::parse("tile/0/x001/x234/067"), Ok(t));
        let e = TilePath::new(TileKind::Entries, 1_234_067, 5).unwrap();
        assert_eq!(e.to_path(), "tile/entries/x001/x234/067.p/5");
        assert_eq!(TilePath::parse("tile/entries/x001/x234/067.p/5"), Ok(e));
    }

    #[test]
    fn small_and_large_indexes_round_trip() {
        for (n, path) in [
            (0, "tile/3/000"),
            (7, "tile/3/007"),
            (999, "tile/3/999"),
            (1000, "tile/3/x001/000"),
            (u64::MAX, "tile/3/x018/x446/x744/x073/x709/x551/615"),
        ] {
            let t = hashes(3, n, 256);
            assert_eq!(t.to_path(), path);
            assert_eq!(TilePath::parse(path), Ok(t), "{path}");
        }
        let p = hashes(63, 12, 255);
        assert_eq!(p.to_path(), "tile/63/012.p/255");
        assert_eq!(TilePath::parse("tile/63/012.p/255"), Ok(p));
    }

    #[test]
    fn non_canonical_or_undefined_paths_are_refused() {
        for path in [
            "",
            "tile",
            "tile/",
            "tile/0",
            "tile/0/",
            "tile/00/000",
            "tile/01/000",
            "tile/+1/000",
            "tile/64/000",
            "tile/255/000",
            "tile/1000/000",
            "tile/0/0",
            "tile/0/00",
            "tile/0/0000",
            "tile/0/x000",
            "tile/0/001/002",
            "tile/0/x1/000",
            "tile/0/xx001/000",
            "tile/0/x001/x002",
            "tile/0/000.p/0",
            "tile/0/000.p/00",
            "tile/0/000.p/+0",
            "tile/0/000.p/+00",
            "tile/0/000.p/+5",
            "tile/entries/000.p/+0",
            "tile/0/000.p/256",
            "tile/0/000.p/01",
            "tile/0/000.p/",
            "tile/0/000.p",
            "tile/0/000.p/1/2",
            "tile/0/000/",
            "tile/0/-01",
            "tile/data/000",
            "tile/8/0/000",
            "tile/entries/000.p/0",
            "tile/entries/x000/000",
            "/tile/0/000",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
        ] {
            assert!(TilePath::parse(path).is_err(), "{path}");
        }
    }

    /// The spec's example: a tree of 70,000 entries is 273 full level-0
    /// tiles, a partial level-0 tile of width 112, one full level-1 tile,
    /// a partial level-1 tile of width 17 and a partial level-2 tile of
    /// width 1; a tree of 256, a full level-0 tile and a level-1 tile of
    /// width 1.
    #[test]
    fn the_spec_example_trees_hold_exactly_their_tiles() {
        let size = 70_000;
        assert!(hashes(0, 272, 256).within(size));
        assert!(!hashes(0, 273, 256).within(size));
        assert!(hashes(0, 273, 112).within(size));
        assert!(!hashes(0, 273, 113).within(size));
        assert!(hashes(1, 0, 256).within(size));
        assert!(hashes(1, 1, 17).within(size));
        assert!(!hashes(1, 1, 18).within(size));
        assert!(hashes(2, 0, 1).within(size));
        assert!(!hashes(2, 0, 2).within(size));
        assert!(!hashes(3, 0, 1).within(size));
        assert!(hashes(0, 0, 256).within(256));
        assert!(hashes(1, 0, 1).within(256));
        assert!(!hashes(1, 0, 2).within(256));
        assert!(!hashes(0, 1, 1).within(256));
        for t in tlog_tiles::Tile::new_tiles(TILE_HEIGHT, 0, size) {
            let ours = hashes(t.level(), t.level_index(), t.width() as u16);
            assert!(ours.within(size), "{}", t.path());
        }
    }

    /// Path cases of transparency-dev/trillian-tessera's `api/layout`
    /// tests (`paths_test.go`), as data: (level or entries, index, tree
    /// size) → path, and paths refused. Their cases at levels 8 and
    /// above, and at size 0, name tiles no tree of `u64` leaves has, which
    /// [`TilePath::in_tree`] refuses; those paths are checked as syntax.
    /// Their bundle 255 of width 253 is named at a size of `255·256 − 3`,
    /// which the bundle's own start exceeds: it is taken here at the size
    /// that gives it that width.
    #[test]
    fn tessera_path_vectors() {
        let e = TileKind::Entries;
        let h = |level| TileKind::Hashes { level };
        for (kind, index, size, path) in [
            (e, 0, 256, "tile/entries/000"),
            (e, 0, 255, "tile/entries/000.p/255"),
            (e, 1, 512, "tile/entries/001"),
            (e, 1, 257, "tile/entries/001.p/1"),
            (
                e,
                123_456_789,
                123_456_790 * 256,
                "tile/entries/x123/x456/789",
            ),
            (e, 0, 289, "tile/entries/000"),
            (e, 0, 8, "tile/entries/000.p/8"),
            (e, 255, 256 * 256, "tile/entries/255"),
            (e, 255, 255 * 256 - 3 + 256, "tile/entries/255.p/253"),
            (e, 256, 257 * 256, "tile/entries/256"),
            (
                e,
                123_456_789_000,
                u64::MAX,
                "tile/entries/x123/x456/x789/000",
            ),
            (h(0), 0, 256, "tile/0/000"),
            (h(0), 0, 255, "tile/0/000.p/255"),
            (h(1), 0, u64::MAX, "tile/1/000"),
            (h(1), 0, 256, "tile/1/000.p/1"),
            (h(1), 0, 1024, "tile/1/000.p/4"),
            (h(3), 1_234_567, u64::MAX, "tile/3/x001/x234/567"),
        ] {
            let t = TilePath::in_tree(kind, index, size).unwrap();
            assert_eq!(t.to_path(), path);
            assert_eq!(TilePath::parse(path), Ok(t));
        }
        for (path, index, width) in [
            ("tile/15/x455/667", 455_667, 256),
            ("tile/15/x123/x456/789", 123_456_789, 256),
            ("tile/0/x001/x234/067.p/89", 1_234_067, 89),
            (
                "tile/63/x999/x999/x999/x999/x999/999.p/255",
                999_999_999_999_999_999,
                255,
            ),
            ("tile/0/001", 1, 256),
        ] {
            let t = TilePath::parse(path).unwrap();
            assert_eq!((t.index(), t.width()), (index, width), "{path}");
        }
        for path in [
            "tile/0/x001/x234/067.p/",
            "tile/0/x001/x234/067.p",
            "tile/0/x001/x234/",
            "tile/0/x001/x234",
            "tile/0/x001/",
            "tile/0/x001",
            "tile/1/x001/.p/abc",
            "tile/64/x001/002",
            "tile/-1/x001/002",
            "tile/abc/x001/002",
            "tile/8/001/002",
            "tile/8/x001/0002",
            "tile/8/x001/-002",
            "tile/8/x001/002.p/256",
        ] {
            assert!(TilePath::parse(path).is_err(), "{path}");
        }
        assert_eq!(TilePath::in_tree(e, 0, 0), None);
        assert_eq!(TilePath::in_tree(e, 2, 512), None);
        assert_eq!(TilePath::in_tree(h(8), 0, u64::MAX), None);
    }

    #[test]
    fn levels_past_any_tree_hold_nothing() {
        for level in [8, 9, 31, 32, 63] {
            assert_eq!(hashes(level, 0, 1).tree_size_needed(), None, "{level}");
            assert!(!hashes(level, 0, 1).within(u64::MAX));
        }
        assert_eq!(
            hashes(7, 0, 1).tree_size_needed(),
            Some(1 << 56),
            "level 7 spans 2^56 leaves"
        );
        assert!(!hashes(0, u64::MAX, 256).within(u64::MAX));
        assert!(TilePath::new(TileKind::Hashes { level: 64 }, 0, 1).is_none());
        assert!(TilePath::new(TileKind::Entries, 0, 0).is_none());
        assert!(TilePath::new(TileKind::Entries, 0, 257).is_none());
    }
}
