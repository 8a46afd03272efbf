#!/usr/bin/env python3
"""all-MiniLM-L6-v2 in PyTorch eager, written here after Hugging Face's BertModel and
sentence-transformers' encode() (tokenised by Hugging Face's Python tokenizers, truncated at
max_seq_length, sorted by length, padded per batch, mean-pooled, L2-normalised): the reference
`scripts/make-minilm-fixtures` writes nml's test fixture with, and the PyTorch row of
`nml bench --only text`, timed on the same generated texts.

  python3 bench/minilm_torch.py MODEL_DIR [--texts N] [--batch 32] [--threads N]
Prints JSON: sentences/s and the process's peak resident memory. Needs torch (Debian's
python3-torch) and the `tokenizers` package on the path (scripts/make-minilm-fixtures shows
how to fetch it with pip).
"""
import argparse, json, os, resource, struct, time

import numpy as np
import torch
import tokenizers

WORDS = ("the of and to in is was for on that with as by at from it an be this which or are "
         "noise label model data feature training learning network image text task domain "
         "transfer spectrum value large small clean shift test accuracy foundation pretrained").split()


def generated_texts(n):
    """Text i of `nml bench --only text`: 8 to 47 words from a fixed list, by formula."""
    return [" ".join(WORDS[(i * 7 + j * 13) % len(WORDS)] for j in range(8 + (i * 5) % 40)) for i in range(n)]


class MiniLM:
    def __init__(self, model_dir):
        blob = open(f"{model_dir}/model.safetensors", "rb").read()
        n = struct.unpack("<Q", blob[:8])[0]
        header = json.loads(blob[8:8 + n])
        self.weights = {}
        for key, meta in header.items():
            if key == "__metadata__":
                continue
            start, end = meta["data_offsets"]
            dtype = {"F32": np.float32, "I64": np.int64}[meta["dtype"]]
            data = np.frombuffer(blob[8 + n + start:8 + n + end], dtype=dtype).reshape(meta["shape"])
            self.weights[key] = torch.from_numpy(data.copy())
        self.config = json.load(open(f"{model_dir}/config.json"))
        self.max_len = json.load(open(f"{model_dir}/sentence_bert_config.json"))["max_seq_length"]
        self.tokenizer = tokenizers.Tokenizer.from_file(f"{model_dir}/tokenizer.json")
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_len)
        self.pad = self.tokenizer.token_to_id("[PAD]")

    def _norm(self, x, prefix):
        w = self.weights
        return torch.nn.functional.layer_norm(x, x.shape[-1:], w[prefix + ".weight"], w[prefix + ".bias"],
                                              self.config["layer_norm_eps"])

    def _linear(self, x, prefix):
        return torch.nn.functional.linear(x, self.weights[prefix + ".weight"], self.weights[prefix + ".bias"])

    def forward(self, ids, types, mask):
        w, heads = self.weights, self.config["num_attention_heads"]
        b, t = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.token_type_embeddings.weight"][types]
             + w["embeddings.position_embeddings.weight"][torch.arange(t)][None])
        x = self._norm(x, "embeddings.LayerNorm")
        # BertModel's extended attention mask: 0 to keep, the dtype's minimum at padding keys.
        bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for i in range(self.config["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            split = lambda y: y.view(b, t, heads, -1).transpose(1, 2)
            q, k, v = (split(self._linear(x, p + f"attention.self.{n}")) for n in ("query", "key", "value"))
            scores = q @ k.transpose(-1, -2) / (q.shape[-1] ** 0.5) + bias
            context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, -1)
            x = self._norm(self._linear(context, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            inner = torch.nn.functional.gelu(self._linear(x, p + "intermediate.dense"))
            x = self._norm(self._linear(inner, p + "output.dense") + x, p + "output.LayerNorm")
        return x

    def encode(self, texts, batch=32):
        """sentence-transformers' encode(): longest first, padded per batch, input order out."""
        encodings = [self.tokenizer.encode(text) for text in texts]
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = [None] * len(texts)
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            longest = max(len(encodings[i].ids) for i in rows)
            pad = lambda seq, v: seq + [v] * (longest - len(seq))
            ids = torch.tensor([pad(encodings[i].ids, self.pad) for i in rows])
            types = torch.tensor([pad(encodings[i].type_ids, 0) for i in rows])
            mask = torch.tensor([pad([1] * len(encodings[i].ids), 0) for i in rows])
            with torch.no_grad():
                states = self.forward(ids, types, mask)
                weights = mask[..., None].float()
                pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
                embedded = torch.nn.functional.normalize(pooled, p=2, dim=1)
            for row, i in enumerate(rows):
                out[i] = embedded[row]
        return torch.stack(out), encodings


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model_dir")
    p.add_argument("--texts", type=int, default=512)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model = MiniLM(a.model_dir)
    texts = generated_texts(a.texts)
    model.encode(texts[:a.batch], a.batch)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        model.encode(texts, a.batch)
        times.append(time.perf_counter() - start)
    seconds = sorted(times)[1]
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "texts": a.texts,
                      "sentences_per_second": a.texts / seconds, "seconds": seconds,
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
