#!/usr/bin/env python3
"""Checks the documentation's links: every relative link in README.md and docs/*.md names a
file that exists, and every #anchor a heading of that file (GitHub's slug rules). Prints each
broken link and exits 1 if there is any; also fails if README.md is 10 KB or more.

    scripts/check-docs.py
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def slug(heading: str) -> str:
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def prose(path: pathlib.Path):
    """Lines outside code blocks, with their numbers."""
    inside = False
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if FENCE.match(line.strip()):
            inside = not inside
            continue
        if not inside:
            yield n, line


def anchors(path: pathlib.Path) -> set:
    seen = {}
    out = set()
    for _, line in prose(path):
        m = re.match(r"^#{1,6}\s+(.*)$", line)
        if m:
            base = slug(m.group(1))
            k = seen.get(base, 0)
            seen[base] = k + 1
            out.add(base if k == 0 else f"{base}-{k}")
    return out


def main() -> int:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for f in files:
        for n, line in prose(f):
            for target in LINK.findall(line):
                if re.match(r"^[a-z]+:", target):
                    continue  # http:, https:, mailto:
                path, _, anchor = target.partition("#")
                dest = (f.parent / path).resolve() if path else f
                if not dest.exists():
                    broken.append(f"{f.relative_to(ROOT)}:{n}: {target}: no such file")
                elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                    broken.append(f"{f.relative_to(ROOT)}:{n}: {target}: no such heading")
    size = (ROOT / "README.md").stat().st_size
    if size >= 10 * 1024:
        broken.append(f"README.md is {size} bytes; keep it under 10 KB (details go in docs/)")
    for b in broken:
        print(b)
    if broken:
        return 1
    print(f"check-docs: {len(files)} files, every link resolves; README.md {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
