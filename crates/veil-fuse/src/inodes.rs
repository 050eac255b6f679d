//! The inode table: kernel inode numbers ↔ volume paths.
//!
//! The volume is addressed by path; the kernel by inode number. Numbers are
//! handed out from a counter and never reused within a mount, so the FUSE
//! generation is always 0. The table follows every namespace change:
//! a rename moves the node and every descendant, an unlink or rmdir takes
//! the path away (the node lives on, unlinked, while the kernel still holds
//! lookups or open handles), and a file unlinked while open is parked under
//! a hidden path until its last release.

use std::collections::{BTreeMap, HashMap};

/// The root's inode number.
pub(crate) const ROOT: u64 = 1;

#[derive(Debug)]
struct Node {
    /// Its volume path: the linked path, or the hidden path of an open
    /// unlinked file, or (unlinked and closed) the last path it had.
    path: String,
    /// Lookups the kernel holds (released by `forget`).
    lookups: u64,
    /// Open handles.
    opens: u32,
    /// Still reachable by its path.
    linked: bool,
}

/// The table.
#[derive(Debug)]
pub(crate) struct Inodes {
    nodes: HashMap<u64, Node>,
    by_path: BTreeMap<String, u64>,
    next: u64,
}

impl Inodes {
    /// A table holding only the root.
    pub(crate) fn new() -> Inodes {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                path: "/".to_owned(),
                lookups: 1,
                opens: 0,
                linked: true,
            },
        );
        let mut by_path = BTreeMap::new();
        by_path.insert("/".to_owned(), ROOT);
        Inodes {
            nodes,
            by_path,
            next: ROOT + 1,
        }
    }

    /// The volume path of `ino`, if the kernel may still name it.
    pub(crate) fn path(&self, ino: u64) -> Option<&str> {
        self.nodes.get(&ino).map(|n| n.path.as_str())
    }

    /// The inode of a linked path, if it has one.
    pub(crate) fn ino_of(&self, path: &str) -> Option<u64> {
        self.by_path.get(path).copied()
    }

    /// The inode of a linked path, made if needed (no lookup counted: for
    /// `readdir`).
    pub(crate) fn ino_for(&mut self, path: &str) -> u64 {
        if let Some(ino) = self.by_path.get(path) {
            return *ino;
        }
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(
            ino,
            Node {
                path: path.to_owned(),
                lookups: 0,
                opens: 0,
                linked: true,
            },
        );
        self.by_path.insert(path.to_owned(), ino);
        ino
    }

    /// The inode of a linked path with one more kernel lookup.
    pub(crate) fn lookup(&mut self, path: &str) -> u64 {
        let ino = self.ino_for(path);
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.lookups += 1;
        }
        ino
    }

    /// The kernel dropped `n` lookups of `ino`.
    pub(crate) fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.lookups = node.lookups.saturating_sub(n);
            self.drop_if_unused(ino);
        }
    }

    fn drop_if_unused(&mut self, ino: u64) {
        if self
            .nodes
            .get(&ino)
            .is_some_and(|n| !n.linked && n.lookups == 0 && n.opens == 0)
        {
            self.nodes.remove(&ino);
        }
    }

    /// One more open handle on `ino`.
    pub(crate) fn open(&mut self, ino: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.opens += 1;
        }
    }

    /// Open handles on a linked path.
    pub(crate) fn opens_of(&self, path: &str) -> u32 {
        self.ino_of(path)
            .and_then(|i| self.nodes.get(&i))
            .map_or(0, |n| n.opens)
    }

    /// One handle on `ino` closed. Returns the hidden path to remove from the
    /// volume when this was the last handle of a file unlinked while open.
    pub(crate) fn release(&mut self, ino: u64) -> Option<String> {
        let node = self.nodes.get_mut(&ino)?;
        node.opens = node.opens.saturating_sub(1);
        let orphan = (!node.linked && node.opens == 0).then(|| node.path.clone());
        self.drop_if_unused(ino);
        orphan
    }

    /// `path` left the namespace (unlink, rmdir, replaced by a rename).
    pub(crate) fn unlinked(&mut self, path: &str) {
        if let Some(ino) = self.by_path.remove(path) {
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.linked = false;
            }
            self.drop_if_unused(ino);
        }
    }

    /// `path`, a file with open handles, was moved to `hidden` in the volume
    /// instead of being removed.
    pub(crate) fn orphaned(&mut self, path: &str, hidden: &str) {
        if let Some(ino) = self.by_path.remove(path) {
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.linked = false;
                n.path = hidden.to_owned();
            }
        }
    }

    /// `from` (and everything under it) is now `to`. A node at `to` must
    /// have been taken away first (`unlinked` or `orphaned`).
    pub(crate) fn renamed(&mut self, from: &str, to: &str) {
        if from == to {
            return;
        }
        self.unlinked(to);
        let prefix = format!("{from}/");
        let mut moved: Vec<(String, u64)> = self
            .by_path
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        if let Some(ino) = self.by_path.get(from) {
            moved.push((from.to_owned(), *ino));
        }
        for (old, _) in &moved {
            self.by_path.remove(old);
        }
        for (old, ino) in moved {
            let new = format!("{to}{}", &old[from.len()..]);
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.path = new.clone();
            }
            self.by_path.insert(new, ino);
        }
    }

    /// Open files unlinked while open: their hidden paths.
    pub(crate) fn orphans(&self) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| !n.linked && n.opens > 0)
            .map(|n| n.path.clone())
            .collect()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rename_moves_descendants_and_keeps_numbers() {
        let mut t = Inodes::new();
        let d = t.lookup("/d");
        let f = t.lookup("/d/f");
        let g = t.lookup("/d/e/g");
        let other = t.lookup("/dd");
        t.renamed("/d", "/x");
        assert_eq!(t.path(d), Some("/x"));
        assert_eq!(t.path(f), Some("/x/f"));
        assert_eq!(t.path(g), Some("/x/e/g"));
        assert_eq!(t.path(other), Some("/dd"), "a sibling sharing a prefix");
        assert_eq!(t.ino_of("/x/f"), Some(f));
        assert_eq!(t.ino_of("/d/f"), None);
    }

    #[test]
    fn unlinked_nodes_live_until_forgotten() {
        let mut t = Inodes::new();
        let f = t.lookup("/f");
        t.unlinked("/f");
        assert_eq!(t.ino_of("/f"), None);
        assert_eq!(t.path(f), Some("/f"));
        let again = t.lookup("/f");
        assert_ne!(again, f, "numbers are never reused");
        t.forget(f, 1);
        assert_eq!(t.path(f), None);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn open_unlinked_file_is_removed_at_last_release() {
        let mut t = Inodes::new();
        let f = t.lookup("/f");
        t.open(f);
        t.open(f);
        assert_eq!(t.opens_of("/f"), 2);
        t.orphaned("/f", "/.hidden");
        assert_eq!(t.path(f), Some("/.hidden"));
        assert_eq!(t.orphans(), vec!["/.hidden".to_owned()]);
        assert_eq!(t.release(f), None);
        assert_eq!(t.release(f).as_deref(), Some("/.hidden"));
        t.forget(f, 1);
        assert_eq!(t.path(f), None);
    }

    #[test]
    fn root_is_never_forgotten() {
        let mut t = Inodes::new();
        t.forget(ROOT, 100);
        assert_eq!(t.path(ROOT), Some("/"));
    }
}
