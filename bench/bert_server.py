"""The Python peer of `taxon serve` for bench/serve_bert.sh: a FastAPI + uvicorn + PyTorch service
around a fine-tuned taxon `bert` model folder, computing what taxon computes.

The folder is a Hugging Face folder plus taxon's files: config.json, tokenizer.json,
model.safetensors (the encoder, and `classifier.weight` / `classifier.bias`), model.json (labels,
pooling, max_len, truncation). Per text: the folder's tokenizer.json through the `tokenizers`
library without special tokens, taxon's truncation (`head-tail`: the first min(128,
ceil((max_len-2)/4)) pieces and the last ones, or `head`), `[CLS] ... [SEP]`; the encoder
(transformers AutoModel, eval mode); masked mean pooling (or the [CLS] state, as model.json
says); the linear head; softmax. So both services give the same label and, up to float
rounding, the same probabilities.

The API is taxon's: POST /v1/predict {"text": "..."} answers
{"label", "scores": {label: p}, "model": {"name", "version"}, "request_id", "cached": false};
GET /health and GET /ready answer 200 once the model is loaded.

The setup is the one FastAPI users get: one uvicorn worker (uvloop + httptools when installed),
torch.set_num_threads(--threads), one forward pass per request under torch.inference_mode().
`--endpoint async` (the default) declares the handler `async def`, so forwards run one at a time
on the event loop thread; `--endpoint sync` declares it `def`, so FastAPI runs each forward in its
thread pool (up to 40 at once, sharing the torch threads). `--quantize int8` applies PyTorch's
dynamic int8 quantization (torch.ao.quantization.quantize_dynamic) to the encoder's Linear
layers, the usual int8 recipe for BERT on CPU (the peer of `taxon model optimize --int8`).

usage: bert_server.py MODEL_DIR [--host 127.0.0.1] [--port 0] [--threads 1]
                      [--endpoint async|sync] [--quantize none|int8] [--name NAME]
                      [--version VERSION]
Prints "listening on http://HOST:PORT" on stderr once the model is loaded and the socket bound.
"""

import argparse
import json
import math
import os
import socket
import sys
import time
import uuid
import warnings


def log(*args):
    print("bert_server:", *args, file=sys.stderr, flush=True)


def split(n, max_len, truncation):
    """(head, tail) word pieces kept of n under max_len: taxon's bert::tokenize::split."""
    budget = max(max_len - 2, 0)
    if n <= budget:
        return n, 0
    if truncation == "head":
        return budget, 0
    head = min(math.ceil(budget / 4), 128)
    return head, budget - head


class Classifier:
    """The encoder, pooling and head of a taxon bert folder, for one text at a time."""

    def __init__(self, model_dir, torch, transformers, tokenizers, safetensors_torch, quantize):
        self.torch = torch
        desc_path = os.path.join(model_dir, "model.json")
        try:
            with open(desc_path, encoding="utf-8") as f:
                desc = json.load(f)
        except (OSError, ValueError) as e:
            sys.exit(f"bert_server: {desc_path}: {e}")
        if desc.get("model_type") != "bert":
            sys.exit(f"bert_server: {desc_path}: model_type is {desc.get('model_type')!r}, not 'bert'")
        params = desc.get("params") or {}
        self.labels = list(desc["labels"])
        self.max_len = int(params.get("max_len", 128))
        self.truncation = params.get("truncation", "head-tail")
        self.pooling = params.get("pooling", "mean")
        if self.truncation not in ("head-tail", "head") or self.pooling not in ("mean", "cls"):
            sys.exit(f"bert_server: {desc_path}: unknown truncation {self.truncation!r} "
                     f"or pooling {self.pooling!r}")

        self.tokenizer = tokenizers.Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.cls = self.tokenizer.token_to_id("[CLS]")
        self.sep = self.tokenizer.token_to_id("[SEP]")
        if self.cls is None or self.sep is None:
            sys.exit(f"bert_server: {model_dir}/tokenizer.json has no [CLS] or [SEP] token")

        config = transformers.AutoConfig.from_pretrained(model_dir)
        extra = {"add_pooling_layer": False} if config.model_type == "bert" else {}
        # model.safetensors also holds classifier.*, which the encoder does not use.
        self.encoder = transformers.AutoModel.from_pretrained(model_dir, config=config, **extra)
        self.encoder.eval()
        if quantize == "int8":
            self.encoder = torch.ao.quantization.quantize_dynamic(
                self.encoder, {torch.nn.Linear}, dtype=torch.qint8)
        weights = safetensors_torch.load_file(os.path.join(model_dir, "model.safetensors"))
        try:
            w, b = weights["classifier.weight"], weights["classifier.bias"]
        except KeyError as e:
            sys.exit(f"bert_server: {model_dir}/model.safetensors has no {e} tensor")
        if tuple(w.shape) != (len(self.labels), config.hidden_size):
            sys.exit(f"bert_server: classifier.weight is {tuple(w.shape)}, expected "
                     f"({len(self.labels)}, {config.hidden_size})")
        self.head = torch.nn.Linear(config.hidden_size, len(self.labels))
        with torch.no_grad():
            self.head.weight.copy_(w)
            self.head.bias.copy_(b)
        self.head.eval()

    def encode(self, text):
        """[CLS] head ... tail [SEP] ids, as taxon truncates."""
        pieces = self.tokenizer.encode(text, add_special_tokens=False).ids
        head, tail = split(len(pieces), self.max_len, self.truncation)
        kept = pieces[:head] + (pieces[len(pieces) - tail:] if tail else [])
        return [self.cls] + kept + [self.sep]

    def predict(self, text):
        """The label probabilities of one text, as a list of floats."""
        torch = self.torch
        ids = torch.tensor([self.encode(text)], dtype=torch.long)
        mask = torch.ones_like(ids)
        with torch.inference_mode():
            hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            if self.pooling == "mean":
                m = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1)
            else:
                pooled = hidden[:, 0]
            probs = torch.softmax(self.head(pooled), dim=-1)
        return probs[0].tolist()


def build_app(clf, name, version, endpoint):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, Field

    app = FastAPI(title="bert_server")

    class PredictRequest(BaseModel):
        text: str = Field(min_length=1, max_length=20_000)

    def answer(text):
        probs = clf.predict(text)
        best = max(range(len(probs)), key=probs.__getitem__)
        return {
            "label": clf.labels[best],
            "scores": dict(zip(clf.labels, probs)),
            "model": {"name": name, "version": version},
            "request_id": uuid.uuid4().hex,
            "cached": False,
        }

    if endpoint == "async":
        @app.post("/v1/predict")
        async def predict(req: PredictRequest):
            return JSONResponse(answer(req.text))
    else:
        @app.post("/v1/predict")
        def predict(req: PredictRequest):
            return JSONResponse(answer(req.text))

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/ready")
    async def ready():
        return {"status": "ready"}

    return app


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", help="a taxon bert model folder")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--endpoint", choices=["async", "sync"], default="async")
    ap.add_argument("--quantize", choices=["none", "int8"], default="none",
                    help="int8: dynamic int8 quantization of the encoder's Linear layers")
    ap.add_argument("--name", default="bert")
    ap.add_argument("--version", default="python")
    args = ap.parse_args()
    if args.threads < 1:
        sys.exit("bert_server: --threads must be at least 1")
    if not os.path.isfile(os.path.join(args.model_dir, "model.json")):
        sys.exit(f"bert_server: {args.model_dir} has no model.json: not a taxon model folder")

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ["HF_HUB_OFFLINE"] = "1"
    import safetensors.torch
    import tokenizers
    import torch
    import transformers
    import uvicorn

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    started = time.perf_counter()
    clf = Classifier(args.model_dir, torch, transformers, tokenizers, safetensors.torch,
                     args.quantize)
    # Warm-up: one-time costs (oneDNN primitives, allocator) on a short and a long text.
    for text in ["warm up", " ".join(["the market rose"] * 200)]:
        clf.predict(text)
    log(f"loaded {args.model_dir} in {time.perf_counter() - started:.1f}s: torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), labels {clf.labels}, max_len {clf.max_len}, "
        f"{clf.truncation}, {clf.pooling} pooling, {args.endpoint} endpoint, "
        f"quantize {args.quantize}")

    app = build_app(clf, args.name, args.version, args.endpoint)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, workers=1, log_level="warning", access_log=False,
                            backlog=2048, timeout_keep_alive=60)
    server = uvicorn.Server(config)
    log(f"listening on http://{host}:{port}")
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
