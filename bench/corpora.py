#!/usr/bin/env python3
"""Builds the extra corpora of bench/linear.sh from Debian packages, as seeded 80/20 splits.

usage: bench/corpora.py DEBS_DIR OUT_DIR

DEBS_DIR holds the unpacked packages (`dpkg-deb -x`): `fortunes`, `fortunes-min`,
`manpages`, `manpages-dev` (bench/linear.sh fetches them with `apt-get download`).
Writes OUT_DIR/<corpus>/{train,test}.jsonl ({"text", "label"} per line):

- fortunes: each fortune (the text between `%` lines) labelled with its file's name (art,
  computers, ..., zippy): short texts, 36 classes, imbalanced (52 to 1,250 per class).
  Categories with fewer than 50 fortunes are left out.
- manpages: each Linux man page of sections 2, 3, 4, 5 and 7, labelled with its section:
  long technical texts, imbalanced (section 3 dominates). The roff source without comments,
  the `.TH` title line (it names the section) and macro names; pages that only include another
  (`.so`) are left out.

The split is stratified per label with a fixed seed, so every run gets the same files.
"""

import gzip
import json
import random
import re
import sys
from pathlib import Path

SEED = 0
TEST_SHARE = 0.2


def fortunes(root: Path):
    folder = root / "usr/share/games/fortunes"
    for f in sorted(folder.iterdir()):
        if f.suffix in (".dat", ".u8") or f.is_dir():
            continue
        texts = [t.strip() for t in f.read_text(errors="replace").split("\n%\n")]
        texts = [t for t in texts if t and t != "%"]
        if len(texts) >= 50:
            for t in texts:
                yield t, f.name


MACRO = re.compile(r"^[.'][A-Za-z]{1,3}\s?")
ESCAPE = re.compile(r"\\f[BIRP]|\\f\(..|\\[-e&|^]|\\\*\(..|\\\*.")


def manpages(root: Path):
    for section in ("2", "3", "4", "5", "7"):
        folder = root / f"usr/share/man/man{section}"
        for f in sorted(folder.glob("*.gz")):
            src = gzip.decompress(f.read_bytes()).decode("utf-8", errors="replace")
            lines = src.splitlines()
            if any(line.startswith(".so ") for line in lines[:5]):
                continue
            kept = []
            for line in lines:
                if line.startswith((".\\\"", "'\\\"", ".TH")):
                    continue
                line = ESCAPE.sub("", MACRO.sub("", line)).strip()
                if line:
                    kept.append(line)
            text = " ".join(kept)
            if text:
                yield text, section


def split(rows):
    by_label = {}
    for text, label in rows:
        by_label.setdefault(label, []).append(text)
    rng = random.Random(SEED)
    train, test = [], []
    for label in sorted(by_label):
        texts = by_label[label]
        rng.shuffle(texts)
        n_test = max(1, round(len(texts) * TEST_SHARE))
        test += [(t, label) for t in texts[:n_test]]
        train += [(t, label) for t in texts[n_test:]]
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def main():
    debs, out = Path(sys.argv[1]), Path(sys.argv[2])
    for name, rows in (("fortunes", fortunes(debs)), ("manpages", manpages(debs))):
        train, test = split(list(rows))
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for part, data in (("train", train), ("test", test)):
            with open(folder / f"{part}.jsonl", "w") as f:
                for text, label in data:
                    f.write(json.dumps({"text": text, "label": label}) + "\n")
        labels = sorted({label for _, label in train})
        print(f"{name}: {len(train)} train, {len(test)} test, {len(labels)} labels", file=sys.stderr)


if __name__ == "__main__":
    main()
