#!/usr/bin/env python3
"""Peers of taxon's `linear` model on one train/test split: fastText (fasttext-wheel) and
scikit-learn TF-IDF (word 1-2 grams) + LinearSVC. Prints one JSON object per measurement.

usage: linear_peers.py TRAIN.jsonl TEST.jsonl --threads N --runs R [--predict-repeat K]
"""
import argparse
import json
import multiprocessing as mp
import os
import re
import tempfile
import time


def read(path):
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                texts.append(r["text"])
                labels.append(r["label"])
    return texts, labels


TOKEN = re.compile(r"\w+")


def ft_clean(text):
    # Same tokens as taxon's linear model: lower-cased runs of letters and digits.
    return " ".join(TOKEN.findall(text.lower()))


_MODEL = None


def _init(path):
    global _MODEL
    import fasttext

    _MODEL = fasttext.load_model(path)


def _predict(chunk):
    return len(_MODEL.predict([ft_clean(t) for t in chunk], k=1)[0])


def fasttext_runs(train, test, threads, runs, repeat):
    import fasttext

    tmp = tempfile.mkdtemp()
    train_txt = os.path.join(tmp, "train.txt")
    with open(train_txt, "w", encoding="utf-8") as f:
        for t, l in zip(*train):
            f.write(f"__label__{l} {ft_clean(t)}\n")
    test_clean = [ft_clean(t) for t in test[0]]
    for run in range(runs):
        start = time.perf_counter()
        model = fasttext.train_supervised(
            input=train_txt, wordNgrams=2, lr=1.0, epoch=25, thread=threads, verbose=0, seed=run
        )
        secs = time.perf_counter() - start
        pred = [p[0].replace("__label__", "") for p in model.predict(test_clean, k=1)[0]]
        acc = sum(p == l for p, l in zip(pred, test[1])) / len(pred)
        print(json.dumps({"tool": "fasttext", "run": run, "train_seconds": secs, "accuracy": acc}), flush=True)
    path = os.path.join(tmp, "model.bin")
    model.save_model(path)
    del model
    # Prediction throughput: the test texts repeated, raw text in (cleaning counted, as taxon's
    # tokenizer is counted on its side); one process per thread, model loaded beforehand.
    docs = test[0] * repeat
    for n in sorted({1, threads}):
        with mp.Pool(n, initializer=_init, initargs=(path,)) as pool:
            pool.map(_predict, [["warm up"]] * n)
            start = time.perf_counter()
            size = (len(docs) + n - 1) // n
            chunks = [docs[i : i + size] for i in range(0, len(docs), size)]
            done = sum(pool.map(_predict, chunks))
            secs = time.perf_counter() - start
        print(json.dumps({"tool": "fasttext", "predict_threads": n, "docs": done, "docs_per_sec": done / secs}), flush=True)


def sklearn_runs(train, test, runs):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    for run in range(runs):
        start = time.perf_counter()
        vec = TfidfVectorizer(ngram_range=(1, 2))
        x = vec.fit_transform(train[0])
        clf = LinearSVC(random_state=run).fit(x, train[1])
        secs = time.perf_counter() - start
        pred = clf.predict(vec.transform(test[0]))
        acc = sum(p == l for p, l in zip(pred, test[1])) / len(pred)
        print(json.dumps({"tool": "tfidf_linearsvc", "run": run, "train_seconds": secs, "accuracy": acc}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("test")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--predict-repeat", type=int, default=10)
    a = ap.parse_args()
    train, test = read(a.train), read(a.test)
    fasttext_runs(train, test, a.threads, a.runs, a.predict_repeat)
    sklearn_runs(train, test, a.runs)


if __name__ == "__main__":
    main()
