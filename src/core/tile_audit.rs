//! Auditing a log through its C2SP `tlog-tiles` alone: the pure checks
//! behind `openexec audit --url`.
//!
//! [`TreeAudit`] takes the tiles of one signed tree in the order a reader
//! streams them — level-0 tile `N` with its entry bundle, then every
//! higher tile as soon as the hashes below it are known — and checks that
//! each entry's bytes hash to its level-0 hash, that each hash of a
//! higher tile is the root of the 256 hashes below it, that the tree's
//! root is the one the checkpoint signs, and, given an older checkpoint of
//! the same log, that its root is the root of the first leaves of the new
//! tree (so the new tree extends the old one). The older root is compared
//! last, once the leaves are proven to be the signed tree's, so that a
//! mismatch there is a fork and not a tampered tile.
//!
//! Memory stays bounded by the tree's height, not its size: the root comes
//! from the right frontier of the leaves read so far (one hash per set bit
//! of the count), and each level keeps at most one tile's worth of
//! computed hashes until the served tile is compared with them. The one
//! record that grows is the root of each full level-0 tile (32 bytes per
//! 256 entries), kept so that an earlier entry a replay names can be
//! fetched again and proven to be the one audited.
//!
//! No I/O here: the caller fetches and hands over bytes.

pub mod chain;

use crate::core::checkpoint::SignedCheckpoint;
use crate::core::hash::{empty_tree_hash, leaf_hash, node_hash, Hash, HASH_LEN};
use crate::core::tile_path::{TileKind, TilePath, TILE_WIDTH};

/// The most bytes tile `path` can hold, the cap on reading it: `W`
/// hashes for a hash tile, `W` entries of at most 65,535 bytes behind
/// their 2-byte length for an entry bundle.
#[must_use]
pub fn max_tile_bytes(path: &TilePath) -> u64 {
    let width = u64::from(path.width());
    match path.kind() {
        TileKind::Hashes { .. } => width * HASH_LEN as u64,
        TileKind::Entries => width * (2 + u64::from(u16::MAX)),
    }
}

/// What the tiles show that the signed tree does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileFinding {
    /// A hash tile of the wrong length.
    #[error("{path}: {got} bytes, where a tile of width {width} holds {} bytes", usize::from(*width) * HASH_LEN)]
    TileLength {
        /// The tile's path.
        path: String,
        /// Its width in the audited tree.
        width: u16,
        /// Bytes served.
        got: usize,
    },
    /// An entry bundle that does not split into length-framed entries.
    #[error("{path}: {detail}")]
    BundleFraming {
        /// The bundle's path.
        path: String,
        /// What is wrong with its framing.
        detail: String,
    },
    /// An entry whose bytes do not hash to the level-0 tile's hash.
    #[error("entry {index}: its bytes hash to {computed}, but {path} holds {served}")]
    LeafMismatch {
        /// The entry's index.
        index: u64,
        /// The level-0 tile.
        path: String,
        /// `SHA-256(0x00 ‖ entry)`.
        computed: Hash,
        /// The tile's hash.
        served: Hash,
    },
    /// A hash of a higher tile that is not the root of the hashes below.
    #[error("{path}: hash {position} is {served}, but the tiles below give {computed}")]
    TileMismatch {
        /// The tile.
        path: String,
        /// Position of the hash in the tile.
        position: usize,
        /// The hash the tiles below give.
        computed: Hash,
        /// The hash served.
        served: Hash,
    },
    /// An earlier level-0 tile read again is not the one audited.
    #[error("{path} read again is not the tile audited: its hashes give root {served}, the audited one {audited}")]
    Changed {
        /// The tile.
        path: String,
        /// The root of the tile audited.
        audited: Hash,
        /// The root of the tile read again.
        served: Hash,
    },
    /// The tiles give another root than the checkpoint signs.
    #[error("the tiles of the tree of {size} entries give root {computed}, but the checkpoint signs {signed}")]
    RootMismatch {
        /// Tree size.
        size: u64,
        /// Root from the tiles.
        computed: Hash,
        /// Root signed.
        signed: Hash,
    },
    /// The older checkpoint's root is not the root of the first leaves of
    /// the new tree: the log forked (or rewrote its history).
    #[error("not consistent: the earlier checkpoint of {size} entries signs root {signed}, but the first {size} entries of the current tree give {computed} (a fork)")]
    Inconsistent {
        /// The older tree's size.
        size: u64,
        /// The root the older checkpoint signs.
        signed: Hash,
        /// The root of the first `size` leaves of the current tree.
        computed: Hash,
    },
    /// The current checkpoint is smaller than one seen before.
    #[error("rollback: an earlier checkpoint has {old} entries, the current one {new}")]
    Rollback {
        /// The older tree's size.
        old: u64,
        /// The current tree's size.
        new: u64,
    },
    /// An entry that is not a well-formed entry of this log at its place.
    #[error("entry {index}: {reason}")]
    Entry {
        /// The entry's index.
        index: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A tile handed over out of order, or the audit ended early: a fault
    /// of the caller, not of the log.
    #[error("audit driven out of order: {0}")]
    OutOfOrder(String),
}

/// The hashes of a hash tile of `path`'s width.
pub fn tile_hashes(path: &TilePath, bytes: &[u8]) -> Result<Vec<Hash>, TileFinding> {
    if bytes.len() != usize::from(path.width()) * HASH_LEN {
        return Err(TileFinding::TileLength {
            path: path.to_path(),
            width: path.width(),
            got: bytes.len(),
        });
    }
    Ok(bytes
        .chunks_exact(HASH_LEN)
        .map(|c| {
            let mut h = [0u8; HASH_LEN];
            h.copy_from_slice(c);
            Hash::from_bytes(h)
        })
        .collect())
}

/// The entries of a bundle of `path`'s width: each a big-endian `u16`
/// length, then that many bytes, nothing after the last. Framing stops at
/// the width, so bytes past the last entry are refused whole and never
/// framed: a body of junk costs no more than the entries the tree gives
/// the bundle.
pub fn bundle_entries<'a>(path: &TilePath, bytes: &'a [u8]) -> Result<Vec<&'a [u8]>, TileFinding> {
    let width = usize::from(path.width());
    let bad = |detail: String| TileFinding::BundleFraming {
        path: path.to_path(),
        detail,
    };
    let mut entries = Vec::with_capacity(width);
    let mut rest = bytes;
    while entries.len() < width {
        let [hi, lo, tail @ ..] = rest else {
            return Err(bad(format!(
                "{} entries and {} bytes, where the tree gives the bundle {width} entries",
                entries.len(),
                rest.len()
            )));
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        if tail.len() < len {
            return Err(bad(format!(
                "entry {} is framed as {len} bytes, {} remain",
                entries.len(),
                tail.len()
            )));
        }
        let (entry, after) = tail.split_at(len);
        entries.push(entry);
        rest = after;
    }
    if !rest.is_empty() {
        return Err(bad(format!(
            "{} bytes after the {width} entries the tree gives the bundle",
            rest.len()
        )));
    }
    Ok(entries)
}

/// What partial tile `path` holds, cut from the full tile of the same
/// kind and index: its first `W` hashes, or its first `W` entries with
/// their framing. tlog-tiles lets a log delete a partial tile once the
/// full one exists, and a client read the full one instead.
pub fn partial_from_full<'a>(path: &TilePath, full: &'a [u8]) -> Result<&'a [u8], TileFinding> {
    let full_path = TilePath::new(path.kind(), path.index(), TILE_WIDTH)
        .ok_or_else(|| TileFinding::OutOfOrder("no full tile".into()))?;
    let end = match path.kind() {
        TileKind::Hashes { .. } => {
            tile_hashes(&full_path, full)?;
            usize::from(path.width()) * HASH_LEN
        }
        TileKind::Entries => bundle_entries(&full_path, full)?
            .iter()
            .take(usize::from(path.width()))
            .map(|e| 2 + e.len())
            .sum(),
    };
    Ok(&full[..end])
}

/// The root of a perfect subtree from its leaves (a power-of-two count):
/// what one hash of the next tile up holds for a full tile.
#[must_use]
pub fn perfect_root(hashes: &[Hash]) -> Hash {
    let mut level = hashes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => node_hash(l, r),
                [one] => *one,
                _ => empty_tree_hash(),
            })
            .collect();
    }
    level.first().copied().unwrap_or_else(empty_tree_hash)
}

/// The right frontier of a growing tree: the roots of its maximal perfect
/// subtrees, largest (leftmost) first, one per set bit of the leaf count.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    size: u64,
    roots: Vec<Hash>,
}

impl Frontier {
    /// Appends one leaf hash, merging the equal-sized subtrees it closes.
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            if let Some(left) = self.roots.pop() {
                hash = node_hash(&left, &hash);
            }
            size >>= 1;
        }
        self.roots.push(hash);
        self.size += 1;
    }

    /// Leaves appended.
    #[must_use]
    pub const fn size(&self) -> u64 {
        self.size
    }

    /// RFC 6962 `MTH` of the leaves appended: the frontier folded from
    /// the right.
    #[must_use]
    pub fn root(&self) -> Hash {
        let mut roots = self.roots.iter().rev();
        let Some(last) = roots.next() else {
            return empty_tree_hash();
        };
        roots.fold(*last, |right, left| node_hash(left, &right))
    }
}

/// The hashes computed for one level (1 and up) of the tree, waiting for
/// the served tile they must equal.
#[derive(Debug, Clone)]
struct Pending {
    level: u8,
    /// The tile being filled.
    index: u64,
    hashes: Vec<Hash>,
}

/// The entries of a bundle, each with its leaf hash.
pub type Leaves<'a> = Vec<(&'a [u8], Hash)>;

/// Counts of what an audit read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TreeSummary {
    /// Entries checked (the tree size).
    pub entries: u64,
    /// Hash tiles checked, all levels.
    pub hash_tiles: u64,
    /// Entry bundles checked.
    pub bundles: u64,
    /// The older checkpoint's size, when one was proven consistent.
    pub consistent_with: Option<u64>,
}

/// One tree's audit in progress; see the module documentation.
#[derive(Debug, Clone)]
pub struct TreeAudit {
    size: u64,
    root: Hash,
    /// An older tree (size, root) to be found among the leaves.
    older: Option<(u64, Hash)>,
    /// The root of the first `older.0` leaves, once read.
    older_computed: Option<Hash>,
    frontier: Frontier,
    levels: Vec<Pending>,
    /// Root of each full level-0 tile checked, by index.
    full_tile_roots: Vec<Hash>,
    summary: TreeSummary,
}

impl TreeAudit {
    /// Starts the audit of `current`'s tree. With `older` (a checkpoint
    /// of the same log seen before), refuses a smaller tree at once, a
    /// tree of the same size only with the same root, and checks a
    /// smaller one while the leaves stream by.
    pub fn new(
        current: &SignedCheckpoint,
        older: Option<&SignedCheckpoint>,
    ) -> Result<Self, TileFinding> {
        Self::from_roots(
            (current.size(), current.root()),
            older.map(|o| (o.size(), o.root())),
        )
    }

    /// [`Self::new`] from bare (size, root) pairs whose signatures the
    /// caller has checked.
    pub fn from_roots(
        current: (u64, Hash),
        older: Option<(u64, Hash)>,
    ) -> Result<Self, TileFinding> {
        let (size, root) = current;
        let mut summary = TreeSummary::default();
        let older = match older {
            Some((old, _)) if old > size => return Err(TileFinding::Rollback { old, new: size }),
            Some((0, signed)) => {
                consistent(0, signed, empty_tree_hash())?;
                summary.consistent_with = Some(0);
                None
            }
            Some((old, signed)) if old == size => {
                // The leaves are checked against `root` when the audit ends.
                consistent(old, signed, root)?;
                summary.consistent_with = Some(old);
                None
            }
            other => other,
        };
        Ok(Self {
            size,
            root,
            older,
            older_computed: None,
            frontier: Frontier::default(),
            levels: Vec::new(),
            full_tile_roots: Vec::new(),
            summary,
        })
    }

    /// The tree size audited.
    #[must_use]
    pub const fn size(&self) -> u64 {
        self.size
    }

    /// Entries checked so far.
    #[must_use]
    pub const fn entries_done(&self) -> u64 {
        self.frontier.size()
    }

    /// The next level-0 tile to read, at the width this tree gives it;
    /// its entry bundle has the same index and width. `None` once every
    /// leaf is read.
    #[must_use]
    pub fn next_level0(&self) -> Option<TilePath> {
        // Only the last level-0 tile is partial, so the leaves read before
        // it are a whole number of tiles.
        if self.frontier.size() >= self.size {
            return None;
        }
        let index = self.frontier.size() / u64::from(TILE_WIDTH);
        TilePath::in_tree(TileKind::Hashes { level: 0 }, index, self.size)
    }

    /// Checks level-0 tile [`Self::next_level0`] and its entry bundle:
    /// each entry hashes to its tile hash. Returns the entries, with
    /// their leaf hashes, for the caller's checks of their content.
    pub fn accept_level0<'a>(
        &mut self,
        tile: &[u8],
        bundle: &'a [u8],
    ) -> Result<Leaves<'a>, TileFinding> {
        let path = self
            .next_level0()
            .ok_or_else(|| TileFinding::OutOfOrder("every leaf is already read".into()))?;
        let (hashes, entries) = check_level0(&path, tile, bundle)?;
        for (_, leaf) in &entries {
            self.frontier.push(*leaf);
            if self
                .older
                .is_some_and(|(size, _)| size == self.frontier.size())
            {
                self.older_computed = Some(self.frontier.root());
            }
        }
        self.summary.hash_tiles += 1;
        self.summary.bundles += 1;
        if path.is_full() {
            let root = perfect_root(&hashes);
            self.full_tile_roots.push(root);
            self.pending(1).hashes.push(root);
        }
        Ok(entries)
    }

    /// Checks an earlier full level-0 tile and its bundle, read again: the
    /// tile must have the root it had when first checked, and the bundle
    /// must hash to it. Returns the entries with their leaf hashes.
    pub fn recheck_level0<'a>(
        &self,
        index: u64,
        tile: &[u8],
        bundle: &'a [u8],
    ) -> Result<Leaves<'a>, TileFinding> {
        let (Some(path), Some(known)) = (
            TilePath::new(TileKind::Hashes { level: 0 }, index, TILE_WIDTH),
            usize::try_from(index)
                .ok()
                .and_then(|i| self.full_tile_roots.get(i)),
        ) else {
            return Err(TileFinding::OutOfOrder(format!(
                "level-0 tile {index} was not checked full"
            )));
        };
        let (hashes, entries) = check_level0(&path, tile, bundle)?;
        let computed = perfect_root(&hashes);
        if computed != *known {
            return Err(TileFinding::Changed {
                path: path.to_path(),
                audited: *known,
                served: computed,
            });
        }
        Ok(entries)
    }

    /// A higher tile whose hashes are all computed from the tiles below:
    /// the caller reads it next and hands it to [`Self::accept_upper`].
    #[must_use]
    pub fn due(&self) -> Option<TilePath> {
        self.levels.iter().find_map(|p| {
            TilePath::in_tree(TileKind::Hashes { level: p.level }, p.index, self.size)
                .filter(|t| usize::from(t.width()) == p.hashes.len())
        })
    }

    /// Checks the tile [`Self::due`] named against the hashes computed
    /// for it; a full one contributes its root to the level above.
    pub fn accept_upper(&mut self, tile: &[u8]) -> Result<(), TileFinding> {
        let path = self
            .due()
            .ok_or_else(|| TileFinding::OutOfOrder("no higher tile is due".into()))?;
        let TileKind::Hashes { level } = path.kind() else {
            return Err(TileFinding::OutOfOrder("an entry bundle is not due".into()));
        };
        let served = tile_hashes(&path, tile)?;
        let pending = self.pending(level);
        let computed = std::mem::take(&mut pending.hashes);
        pending.index += 1;
        if let Some((position, (c, s))) = computed
            .iter()
            .zip(&served)
            .enumerate()
            .find(|(_, (c, s))| c != s)
        {
            return Err(TileFinding::TileMismatch {
                path: path.to_path(),
                position,
                computed: *c,
                served: *s,
            });
        }
        self.summary.hash_tiles += 1;
        if path.is_full() {
            let root = perfect_root(&computed);
            self.pending(level.saturating_add(1)).hashes.push(root);
        }
        Ok(())
    }

    /// Ends the audit: every tile read, and the root of the leaves is the
    /// signed one.
    pub fn finish(self) -> Result<TreeSummary, TileFinding> {
        if let Some(next) = self.next_level0() {
            return Err(TileFinding::OutOfOrder(format!(
                "{} is still unread",
                next.to_path()
            )));
        }
        if let Some(due) = self.due() {
            return Err(TileFinding::OutOfOrder(format!(
                "{} is still unread",
                due.to_path()
            )));
        }
        let computed = self.frontier.root();
        if computed != self.root {
            return Err(TileFinding::RootMismatch {
                size: self.size,
                computed,
                signed: self.root,
            });
        }
        let mut summary = self.summary;
        // Only now that the leaves are proven to be the signed tree's is a
        // different older root a fork, not a tampered tile.
        if let Some((size, signed)) = self.older {
            let computed = self.older_computed.unwrap_or_else(empty_tree_hash);
            consistent(size, signed, computed)?;
            summary.consistent_with = Some(size);
        }
        summary.entries = self.size;
        Ok(summary)
    }

    /// The hashes waiting at `level` (1 and up), created on first use.
    fn pending(&mut self, level: u8) -> &mut Pending {
        let at = self.levels.iter().position(|p| p.level == level);
        let at = at.unwrap_or_else(|| {
            self.levels.push(Pending {
                level,
                index: 0,
                hashes: Vec::with_capacity(usize::from(TILE_WIDTH)),
            });
            self.levels.len() - 1
        });
        &mut self.levels[at]
    }
}

/// A level-0 tile and its bundle: the tile's hashes, and each entry with
/// its leaf hash, which must be the tile's.
fn check_level0<'a>(
    path: &TilePath,
    tile: &[u8],
    bundle: &'a [u8],
) -> Result<(Vec<Hash>, Leaves<'a>), TileFinding> {
    let hashes = tile_hashes(path, tile)?;
    let bundle_path = TilePath::new(TileKind::Entries, path.index(), path.width())
        .ok_or_else(|| TileFinding::OutOfOrder("no such bundle".into()))?;
    let entries = bundle_entries(&bundle_path, bundle)?;
    let first = path.first_position().unwrap_or(u64::MAX);
    let mut out = Vec::with_capacity(entries.len());
    for (i, (entry, served)) in entries.into_iter().zip(&hashes).enumerate() {
        let computed = leaf_hash(entry);
        if computed != *served {
            return Err(TileFinding::LeafMismatch {
                index: first.saturating_add(i as u64),
                path: path.to_path(),
                computed,
                served: *served,
            });
        }
        out.push((entry, computed));
    }
    Ok((hashes, out))
}

fn consistent(size: u64, signed: Hash, computed: Hash) -> Result<(), TileFinding> {
    if signed == computed {
        Ok(())
    } else {
        Err(TileFinding::Inconsistent {
            size,
            signed,
            computed,
        })
    }
}

#[cfg(test)]
mod tests;
