"""PyTorch + transformers peer of taxon's `bert` model for bench/bert.sh.

Fine-tunes a Hugging Face BERT-family checkpoint folder (all-MiniLM-L6-v2 in the bench) with
AutoModelForSequenceClassification on a JSONL split ({"text", "label"} per line), with the
hyperparameters of `taxon train --model-type bert` (max_len, lr, batch size, 10% linear warmup
then linear decay, AdamW with weight decay on all but biases and LayerNorm weights, gradient
clipping at norm 1, seeded), then measures on the test split:
  - test accuracy and CPU ms per sequence at batch 32 (each batch padded to its longest text),
  - ms per request at batch 1,
for fp32, dynamic int8 (torch.ao.quantization.quantize_dynamic on the Linear layers) and bf16
autocast, on exactly `--threads` threads. Prints one JSON object on stdout; progress on stderr.

usage: bert_peer.py MODEL_DIR TRAIN.jsonl TEST.jsonl [--threads 2] [--epochs 3] [--subset N]
                    [--max-len 128] [--truncation head-tail|head] [--n-infer N] [--n-latency N]
"""

import argparse
import copy
import json
import math
import os
import random
import statistics
import sys
import time
import warnings


def log(*args):
    print("bert_peer:", *args, file=sys.stderr, flush=True)


def read_jsonl(path, text_field="text", label_field="label"):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                rows.append((str(obj[text_field]), str(obj[label_field])))
            except (ValueError, KeyError) as e:
                sys.exit(f"bert_peer: {path} line {n}: expected a JSON object with "
                         f"{text_field!r} and {label_field!r} ({e})")
    if not rows:
        sys.exit(f"bert_peer: {path} has no rows")
    return rows


def split(n, max_len, truncation):
    """(head, tail) word pieces kept of n under max_len: taxon's bert::tokenize::split."""
    budget = max_len - 2
    if n <= budget:
        return n, 0
    if truncation == "head":
        return budget, 0
    head = min(math.ceil(budget / 4), 128)
    return head, budget - head


def encode(tokenizer, texts, max_len, truncation):
    """[CLS] head ... tail [SEP] ids per text, as taxon truncates."""
    pieces = tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"]
    out = []
    for p in pieces:
        head, tail = split(len(p), max_len, truncation)
        out.append([tokenizer.cls_token_id] + p[:head] + (p[len(p) - tail:] if tail else [])
                   + [tokenizer.sep_token_id])
    return out


def collate(torch, seqs, pad_id):
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def fine_tune(torch, transformers, model, seqs, labels, args, pad_id):
    """AdamW + linear warmup/decay over `args.epochs`; returns the seconds spent training."""
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.learning_rate)
    steps_per_epoch = math.ceil(len(seqs) / args.batch_size)
    total = steps_per_epoch * args.epochs
    sched = transformers.get_linear_schedule_with_warmup(opt, int(args.warmup * total), total)
    rng = random.Random(args.seed)
    model.train()
    start = time.perf_counter()
    for epoch in range(args.epochs):
        order = list(range(len(seqs)))
        rng.shuffle(order)
        epoch_start, loss_sum = time.perf_counter(), 0.0
        for b in range(0, len(order), args.batch_size):
            idx = order[b: b + args.batch_size]
            ids, mask = collate(torch, [seqs[i] for i in idx], pad_id)
            y = torch.tensor([labels[i] for i in idx], dtype=torch.long)
            loss = model(input_ids=ids, attention_mask=mask, labels=y).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            loss_sum += loss.item() * len(idx)
        log(f"epoch {epoch + 1}/{args.epochs}: loss {loss_sum / len(seqs):.4f}, "
            f"{time.perf_counter() - epoch_start:.1f}s")
    return time.perf_counter() - start


def score(torch, model, seqs, pad_id, batch, bf16):
    """Predicted label ids and seconds for `seqs` at `batch` texts per call."""
    preds, start = [], time.perf_counter()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for b in range(0, len(seqs), batch):
            ids, mask = collate(torch, seqs[b: b + batch], pad_id)
            preds += model(input_ids=ids, attention_mask=mask).logits.argmax(-1).tolist()
    return preds, time.perf_counter() - start


def measure(torch, name, model, test_seqs, test_labels, args, pad_id, bf16=False):
    log(f"{name}: inference at batch 32 over {len(test_seqs)} test texts")
    score(torch, model, test_seqs[:32], pad_id, 32, bf16)  # warm-up: oneDNN primitives, caches
    preds, secs = score(torch, model, test_seqs, pad_id, 32, bf16)
    acc = sum(p == y for p, y in zip(preds, test_labels)) / len(test_labels)
    one = test_seqs[: args.n_latency]
    for s in one:  # warm-up: one oneDNN primitive per sequence length
        score(torch, model, [s], pad_id, 1, bf16)
    per_request = []
    for s in one:
        per_request.append(score(torch, model, [s], pad_id, 1, bf16)[1] * 1000.0)
    return {
        "variant": name,
        "test_accuracy": round(acc, 4),
        "ms_per_sequence_batch32": round(secs * 1000.0 / len(test_seqs), 2),
        "ms_per_request_batch1_mean": round(statistics.fmean(per_request), 2),
        "ms_per_request_batch1_p50": round(statistics.median(per_request), 2),
        "latency_requests": len(per_request),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", help="Hugging Face checkpoint folder (config.json, weights, tokenizer)")
    ap.add_argument("train")
    ap.add_argument("test")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3, help="0 measures inference on the untuned model")
    ap.add_argument("--subset", type=int, default=0, help="train on N training rows drawn with the seed (0: all)")
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--truncation", choices=["head-tail", "head"], default="head-tail")
    ap.add_argument("--learning-rate", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--warmup", type=float, default=0.1, help="fraction of the steps warming up")
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-infer", type=int, default=0, help="test texts for the batch-32 timing (0: all)")
    ap.add_argument("--n-latency", type=int, default=64, help="requests for the batch-1 latency")
    ap.add_argument("--variants", default="fp32,int8,bf16", help="comma list of fp32, int8, bf16")
    args = ap.parse_args()
    if args.threads < 1 or args.max_len < 3 or args.batch_size < 1 or args.epochs < 0:
        sys.exit("bert_peer: --threads and --batch-size must be >= 1, --max-len >= 3, --epochs >= 0")
    if not os.path.isfile(os.path.join(args.model_dir, "config.json")):
        sys.exit(f"bert_peer: {args.model_dir} has no config.json: not a Hugging Face checkpoint folder")

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)
    random.seed(args.seed)

    train_rows = read_jsonl(args.train)
    names = sorted({y for _, y in train_rows})
    if args.subset:
        train_rows = random.Random(args.seed).sample(train_rows, min(args.subset, len(train_rows)))
    test_rows = read_jsonl(args.test)
    label_id = {y: i for i, y in enumerate(names)}
    unknown = sorted({y for _, y in test_rows} - set(label_id))
    if unknown:
        sys.exit(f"bert_peer: {args.test} has labels not in {args.train}: {unknown}")

    tokenizer = transformers.AutoTokenizer.from_pretrained(args.model_dir)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        args.model_dir, num_labels=len(names), id2label=dict(enumerate(names)), label2id=label_id)
    pad_id = tokenizer.pad_token_id or 0
    t0 = time.perf_counter()
    train_seqs = encode(tokenizer, [t for t, _ in train_rows], args.max_len, args.truncation)
    test_seqs = encode(tokenizer, [t for t, _ in test_rows], args.max_len, args.truncation)
    log(f"tokenized {len(train_seqs)} + {len(test_seqs)} texts in {time.perf_counter() - t0:.1f}s; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"cpu {torch.backends.cpu.get_cpu_capability()}")
    train_labels = [label_id[y] for _, y in train_rows]
    test_labels = [label_id[y] for _, y in test_rows]

    result = {
        "tool": "pytorch", "torch": torch.__version__, "transformers": transformers.__version__,
        "threads": args.threads, "epochs": args.epochs, "max_len": args.max_len,
        "truncation": args.truncation, "train_examples": len(train_seqs),
        "test_examples": len(test_seqs), "learning_rate": args.learning_rate,
        "batch_size": args.batch_size, "warmup": args.warmup, "seed": args.seed,
    }
    if args.epochs:
        secs = fine_tune(torch, transformers, model, train_seqs, train_labels, args, pad_id)
        result["train_seconds"] = round(secs, 2)
        result["seconds_per_epoch"] = round(secs / args.epochs, 1)
        result["train_sequences_per_sec"] = round(len(train_seqs) * args.epochs / secs, 2)
    model.eval()

    n_infer = args.n_infer or len(test_seqs)
    seqs, labels = test_seqs[:n_infer], test_labels[:n_infer]
    result["inference"] = []
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        if variant == "fp32":
            result["inference"].append(measure(torch, "fp32", model, seqs, labels, args, pad_id))
        elif variant == "int8":
            q = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear},
                                                       dtype=torch.qint8)
            result["inference"].append(measure(torch, "int8", q, seqs, labels, args, pad_id))
        elif variant == "bf16":
            result["inference"].append(measure(torch, "bf16", model, seqs, labels, args, pad_id,
                                               bf16=True))
        else:
            sys.exit(f"bert_peer: unknown variant {variant!r} (known: fp32, int8, bf16)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
