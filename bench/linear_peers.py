#!/usr/bin/env python3
"""Peers of taxon's `linear` model on one train/test split: fastText (fasttext-wheel) and
scikit-learn TF-IDF (word 1-2 grams, sublinear tf, min_df 2) + LinearSVC (C=1). Prints one JSON
object per measurement: accuracy, macro-F1, training seconds and the saved model's size.

usage: linear_peers.py TRAIN.jsonl TEST.jsonl --tool fasttext|tfidf_linearsvc --run R
           [--threads N] [--predict-repeat K]   (K > 0: fastText's prediction throughput too)
One training run per process, so that a wrapper can read its peak memory.
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


def macro_f1(pred, truth):
    from sklearn.metrics import f1_score

    return f1_score(truth, pred, average="macro")


def fasttext_runs(train, test, threads, runs, repeat):
    # The saved model is ~770 MB (its 2 M hashed n-gram rows): the folder goes at the end.
    with tempfile.TemporaryDirectory() as tmp:
        fasttext_runs_in(tmp, train, test, threads, runs, repeat)


def fasttext_runs_in(tmp, train, test, threads, runs, repeat):
    import fasttext

    train_txt = os.path.join(tmp, "train.txt")
    with open(train_txt, "w", encoding="utf-8") as f:
        for t, l in zip(*train):
            f.write(f"__label__{l} {ft_clean(t)}\n")
    test_clean = [ft_clean(t) for t in test[0]]
    for run in runs:
        start = time.perf_counter()
        model = fasttext.train_supervised(
            input=train_txt, wordNgrams=2, lr=1.0, epoch=25, thread=threads, verbose=0, seed=run
        )
        secs = time.perf_counter() - start
        pred = [p[0].replace("__label__", "") for p in model.predict(test_clean, k=1)[0]]
        acc = sum(p == l for p, l in zip(pred, test[1])) / len(pred)
        path = os.path.join(tmp, "model.bin")
        model.save_model(path)
        print(json.dumps({"tool": "fasttext", "run": run, "train_seconds": secs, "accuracy": acc,
                          "macro_f1": macro_f1(pred, test[1]),
                          "disk_mb": os.path.getsize(path) / 2**20}), flush=True)
    del model
    if repeat <= 0:
        return
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
    import pickle

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    for run in runs:
        start = time.perf_counter()
        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        x = vec.fit_transform(train[0])
        clf = LinearSVC(C=1.0, random_state=run).fit(x, train[1])
        secs = time.perf_counter() - start
        pred = clf.predict(vec.transform(test[0]))
        acc = sum(p == l for p, l in zip(pred, test[1])) / len(pred)
        # The fitted pipeline as a user would save it (the vectorizer's vocabulary and the
        # weights), without the stop-word list the vectorizer keeps only for inspection.
        vec.stop_words_ = None
        size = len(pickle.dumps((vec, clf), protocol=pickle.HIGHEST_PROTOCOL))
        print(json.dumps({"tool": "tfidf_linearsvc", "run": run, "train_seconds": secs, "accuracy": acc,
                          "macro_f1": macro_f1(pred, test[1]), "disk_mb": size / 2**20}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("test")
    ap.add_argument("--tool", choices=["fasttext", "tfidf_linearsvc"], required=True)
    ap.add_argument("--run", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--predict-repeat", type=int, default=0)
    a = ap.parse_args()
    train, test = read(a.train), read(a.test)
    if a.tool == "fasttext":
        fasttext_runs(train, test, a.threads, [a.run], a.predict_repeat)
    else:
        sklearn_runs(train, test, [a.run])


if __name__ == "__main__":
    main()
