#!/usr/bin/env python3
"""Where the WAL bytes of the SQLite store go: frames per b-tree, per commit and per message.

Usage: benches/wal_pages.py DIR [DIR ...]
  DIR holds a copy of a running gateway's `store.db` and `store.db-wal` (copy both while
  `as4gw bench --keep` runs; the store directories are `$TMPDIR/as4gw-bench-*/red|blue`).

The WAL (https://www.sqlite.org/fileformat.html#the_write_ahead_log): a 32-byte header (page
size at bytes 8-11, salts at 16-23), then frames of a 24-byte header (page number at 0-3, the
database size after the commit at 4-7, non-zero only on a transaction's last frame; salts at
8-15) and one page. Frames of an earlier WAL generation (after a checkpoint restarted the WAL)
carry other salts and are not counted.

Page numbers are mapped to tables and indexes with `dbstat` on a copy of the database with the
WAL applied. Messages in the window: new `messages` rowids seen in the WAL's leaf frames
(max rowid of the last frames - max rowid of the first commit), so "per message" means per
message that arrived in the window (a closed-loop bench in its steady state: one finishes per
one that arrives).
"""

import collections
import os
import shutil
import sqlite3
import struct
import sys
import tempfile


def varint(buf, i):
    v = 0
    for k in range(9):
        b = buf[i + k]
        if k == 8:
            return (v << 8) | b, i + 9
        v = (v << 7) | (b & 0x7F)
        if b < 0x80:
            return v, i + k + 1
    raise ValueError("varint")


def leaf_rowids(page, pgno):
    """Rowids on a table b-tree leaf page (type 13), else []."""
    off = 100 if pgno == 1 else 0
    if page[off] != 13:
        return []
    n = struct.unpack(">H", page[off + 3 : off + 5])[0]
    out = []
    for c in range(n):
        p = struct.unpack(">H", page[off + 8 + 2 * c : off + 10 + 2 * c])[0]
        _, j = varint(page, p)
        rowid, _ = varint(page, j)
        out.append(rowid)
    return out


def read_wal(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 32:
        return 0, []
    magic, _ver, psize, _ckpt, s1, s2 = struct.unpack(">IIIIII", data[:24])
    if magic not in (0x377F0682, 0x377F0683):
        raise SystemExit(f"{path}: not a WAL")
    frames = []  # (pgno, commit_size, page bytes)
    off = 32
    while off + 24 + psize <= len(data):
        pgno, commit, fs1, fs2 = struct.unpack(">IIII", data[off : off + 16])
        if (fs1, fs2) != (s1, s2):
            break
        frames.append((pgno, commit, data[off + 24 : off + 24 + psize]))
        off += 24 + psize
    # Drop a trailing uncommitted transaction (the copy was taken mid-write).
    while frames and frames[-1][1] == 0:
        frames.pop()
    return psize, frames


def page_map(d):
    """page number -> (b-tree name, page type), from dbstat on a copy with the WAL applied."""
    tmp = tempfile.mkdtemp()
    try:
        for f in ("store.db", "store.db-wal"):
            shutil.copy(os.path.join(d, f), os.path.join(tmp, f))
        con = sqlite3.connect(os.path.join(tmp, "store.db"))
        rows = con.execute("SELECT pageno, name, pagetype FROM dbstat").fetchall()
        con.close()
    finally:
        shutil.rmtree(tmp)
    return {p: (n, t) for p, n, t in rows}


def analyse(d):
    psize, frames = read_wal(os.path.join(d, "store.db-wal"))
    pages = page_map(d)
    commits = []
    cur = []
    for pgno, commit, page in frames:
        cur.append((pgno, page))
        if commit:
            commits.append(cur)
            cur = []
    if len(commits) < 3:
        print(f"{d}: {len(commits)} commits in the WAL, too few")
        return
    # Messages that arrived in the window: new rowids of the `messages` table.
    def max_rowid(commit, table):
        m = 0
        for pgno, page in commit:
            if pages.get(pgno, ("",))[0] == table:
                r = leaf_rowids(page, pgno)
                if r:
                    m = max(m, max(r))
        return m

    def new_rows(table):
        first = max(max_rowid(c, table) for c in commits[:3])
        last = max(max_rowid(c, table) for c in commits[-3:])
        return max(last - first, 1)

    msgs = new_rows("messages")
    print(
        f"new rows in the window (sanity check of 'messages'): messages {msgs}, "
        f"events {new_rows('events')}, outbox {new_rows('outbox')}"
    )
    per_tree = collections.Counter()
    overflow = collections.Counter()
    rewritten = collections.Counter()  # same page as in the previous commit
    prev = set()
    for c in commits:
        cur_pages = set()
        for pgno, _ in c:
            name, ptype = pages.get(pgno, ("(free or new)", "?"))
            per_tree[name] += 1
            if ptype == "overflow":
                overflow[name] += 1
            if pgno in prev:
                rewritten[name] += 1
            cur_pages.add(pgno)
        prev = cur_pages
    nframes = sum(len(c) for c in commits)
    print(f"== {d}")
    print(
        f"page size {psize}, {len(commits)} commits, {nframes} frames, "
        f"{nframes / len(commits):.1f} frames/commit, ~{msgs} messages in the window, "
        f"{len(commits) / msgs:.2f} commits/msg, {nframes / msgs:.1f} frames/msg "
        f"= {nframes * (psize + 24) / msgs / 1024:.1f} KiB WAL/msg"
    )
    print(f"{'b-tree':32} {'frames/msg':>10} {'/commit':>8} {'overflow/msg':>12} {'rewritten next commit':>22}")
    for name, n in per_tree.most_common():
        print(
            f"{name:32} {n / msgs:10.2f} {n / len(commits):8.2f} {overflow[name] / msgs:12.2f} "
            f"{rewritten[name] / max(n, 1):21.0%}"
        )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for d in sys.argv[1:]:
        analyse(d)
