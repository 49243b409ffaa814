#!/usr/bin/env python3
"""Folded stacks and flame graphs of `perf script` output, with no other tool installed.

Usage:
  perf script -F comm,ip,sym --no-inline -i perf.data | benches/flamegraph.py fold > out.folded
  benches/flamegraph.py svg "title" < out.folded > out.svg
  benches/flamegraph.py summary stacks-*.folded.gz   # the shares in docs/performance.md

`fold` writes one line per distinct stack, root first, frames joined by ';' and the thread
name (perf's `comm`: `as4gw-store-wri`, `tokio-rt-worker`) as the root frame, then the sample
count: the format of Brendan Gregg's stackcollapse scripts, which speedscope.app, inferno and
flamegraph.pl read too. `svg` draws it as a flame graph (width = share of the samples; hover
a frame for its name and share). Frames narrower than 0.1 % of the samples are left out of
the drawing, not of the folded file.
"""

import collections
import gzip
import html
import re
import sys

OFFSET = re.compile(r"\+0x[0-9a-f]+$")
# Symbols this long are generic Rust types; keep the start, which says what it is.
MAX_FRAME = 160


def fold(lines):
    stacks = collections.Counter()
    comm = None
    frames = []

    def flush():
        if comm is not None and frames:
            stacks[";".join([comm] + frames[::-1])] += 1

    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            flush()
            comm, frames = None, []
            continue
        if not line.startswith((" ", "\t")):
            # Sample header: "comm  " (with -F comm,ip,sym the header is the comm alone).
            flush()
            comm, frames = line.split()[0] if line.split() else "?", []
            continue
        parts = line.strip().split(None, 1)
        if len(parts) != 2:
            continue
        sym = OFFSET.sub("", parts[1].strip())
        # The DSO in parentheses is noise next to a resolved symbol.
        sym = re.sub(r"\s+\([^()]*\)$", "", sym)
        sym = sym.replace(";", ",")[:MAX_FRAME]
        frames.append(sym)
    flush()
    for stack, n in sorted(stacks.items()):
        print(f"{stack} {n}")


def svg(title, lines):
    root = {"n": 0, "kids": {}}
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, n = line.rpartition(" ")
        n = int(n)
        root["n"] += n
        node = root
        for f in stack.split(";"):
            node = node["kids"].setdefault(f, {"n": 0, "kids": {}})
            node["n"] += n
    total = root["n"] or 1
    width, row, top = 1600.0, 16, 40
    min_share = 0.001
    rects = []
    depth_max = 0

    def walk(node, x, depth):
        nonlocal depth_max
        for name, kid in sorted(node["kids"].items()):
            share = kid["n"] / total
            if share >= min_share:
                depth_max = max(depth_max, depth)
                rects.append((x, depth, share, name, kid["n"]))
                walk(kid, x, depth + 1)
            x += share

    walk(root, 0.0, 0)
    height = top + (depth_max + 1) * row + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height}" '
        f'font-family="monospace" font-size="11">',
        f'<text x="10" y="20" font-size="15">{html.escape(title)} — {total} samples</text>',
    ]
    for x, depth, share, name, n in rects:
        px, w = x * width, share * width
        # Icicle order (root on top), like speedscope's left-heavy view.
        y = top + depth * row
        h = sum(map(ord, name)) % 60
        color = f"rgb({205 + h % 50},{90 + h},{40 + h // 2})"
        label = html.escape(name)
        text = ""
        chars = int(w / 7)
        if chars >= 4:
            shown = name if len(name) <= chars else name[: chars - 2] + ".."
            text = f'<text x="{px + 2:.1f}" y="{y + 12}">{html.escape(shown)}</text>'
        out.append(
            f'<g><title>{label} ({n} samples, {100 * share:.2f} %)</title>'
            f'<rect x="{px:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" fill="{color}"/>'
            f"{text}</g>"
        )
    out.append("</svg>")
    print("\n".join(out))


KERNEL_ENTRY = ("entry_SYSCALL_64_after_hwframe", "ret_from_fork_asm")


def category(frames):
    """Where a sample's CPU went, by its thread and the frames on its stack (first match)."""
    kernel = any(f in KERNEL_ENTRY or f.startswith("asm_") for f in frames)
    if frames[0].startswith("as4gw-store"):
        return "store writer thread " + ("(kernel: WAL writes, fsync)" if kernel else "(SQLite)")
    if any(f.startswith(("aws_lc_0", "Ledwards", "Lcurve", "aws_lc_rs::")) for f in frames):
        return "crypto (aws-lc: signatures, key transport/agreement, AES-GCM incl. TLS, SHA-256)"
    if any("sqlite" in f or f.startswith("as4gw::store") for f in frames):
        return "store, other threads (reads, spool)"
    if kernel:
        return "kernel: network, scheduling, other system calls"
    core = ("as4gw::security", "as4gw::xml", "as4gw::mime", "as4gw::ebms")
    web = ("hyper", "<hyper", "axum", "<axum", "reqwest", "<reqwest")
    if any(f.startswith(web) for f in frames) and not any(f.startswith(core) for f in frames):
        return "HTTP (hyper, axum, reqwest)"
    if any("rustls" in f for f in frames):
        return "TLS framing (rustls)"
    if any(f.startswith(("as4gw::xml", "<as4gw::xml", "quick_xml")) for f in frames):
        return "XML parsing, C14N"
    if any(f.startswith(("as4gw::", "<as4gw")) for f in frames):
        return "as4gw other (MSH, security glue, MIME, REST, webhooks)"
    return "other (tokio, allocator, std)"


def summary(paths):
    for path in paths:
        opener = gzip.open if path.endswith(".gz") else open
        total, shares = 0, collections.Counter()
        with opener(path, "rt") as f:
            for line in f:
                stack, _, n = line.rstrip("\n").rpartition(" ")
                total += int(n)
                shares[category(stack.split(";"))] += int(n)
        print(f"{path}: {total} samples")
        for name, n in shares.most_common():
            print(f"  {100 * n / max(total, 1):5.1f} %  {name}")


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "fold":
        fold(sys.stdin)
    elif len(sys.argv) >= 3 and sys.argv[1] == "svg":
        svg(sys.argv[2], sys.stdin)
    elif len(sys.argv) >= 3 and sys.argv[1] == "summary":
        summary(sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
