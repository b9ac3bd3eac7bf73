#!/usr/bin/env python3
"""Short, distinct request texts for the serving benchmark (bench/serve.sh).

usage: bench/serve_texts.py TEST_JSONL OUT_TXT [--count N] [--seed S]

Splits the `text` of every JSONL row (the BBC test split) into sentences, and takes word spans
of 5 to 30 words from each sentence (whole sentences first, then shorter spans at every offset),
drops duplicates, shuffles with a fixed seed and writes COUNT texts, one a line. Only when the
spans run out does it add a counter suffix (" #N") to reach COUNT. Prints a one-line summary on
stderr.
"""

import argparse
import json
import random
import re
import sys

MIN_WORDS, MAX_WORDS = 5, 30


def sentences(path):
    """Yields the sentences of every row's text, as lists of words."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                text = json.loads(line)["text"]
            except (ValueError, KeyError, TypeError) as e:
                sys.exit(f"{path}:{n}: expected a JSON object with a text field ({e})")
            for s in re.split(r"(?<=[.!?])\s+|\n+", text):
                words = s.split()
                if len(words) >= MIN_WORDS:
                    yield words


def spans(words):
    """The whole sentence (when short enough), then every span of 5-30 words, longest first."""
    n = len(words)
    for length in range(min(n, MAX_WORDS), MIN_WORDS - 1, -1):
        for start in range(0, n - length + 1):
            yield " ".join(words[start : start + length])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("test_jsonl")
    p.add_argument("out_txt")
    p.add_argument("--count", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    if a.count < 1:
        sys.exit("--count must be at least 1")

    rng = random.Random(a.seed)
    sents = list(sentences(a.test_jsonl))
    if not sents:
        sys.exit(f"{a.test_jsonl}: no sentence of {MIN_WORDS} words or more")
    # Round-robin over sentences so the first COUNT texts cover every sentence before taking
    # more spans of any one of them.
    seen, texts = set(), []
    iters = [spans(w) for w in sents]
    while iters and len(texts) < a.count:
        alive = []
        for it in iters:
            for t in it:
                if t not in seen:
                    seen.add(t)
                    texts.append(t)
                    alive.append(it)
                    break
            if len(texts) >= a.count:
                break
        iters = alive
    suffixed = 0
    base = list(texts)
    while len(texts) < a.count:
        t = f"{base[suffixed % len(base)]} #{suffixed // len(base) + 1}"
        suffixed += 1
        if t not in seen:
            seen.add(t)
            texts.append(t)
    rng.shuffle(texts)
    with open(a.out_txt, "w", encoding="utf-8") as out:
        for t in texts:
            out.write(t + "\n")
    words = sum(len(t.split()) for t in texts) / len(texts)
    print(
        f"{len(texts)} distinct texts from {len(sents)} sentences, {words:.1f} words on average, "
        f"{suffixed} with a counter suffix -> {a.out_txt}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
