"""PyTorch reference for solescope's embedding benchmark: the same backbones' pooled-embedding throughput.

Run with Debian's python3-torch (/usr/bin/python3). Weights are random (torchvision would download pretrained
ones): throughput does not depend on the weight values. Prints one JSON object:
{"torch": "1.13.1", "threads": 2, "rows": [{"backbone", "batch", "imgPerSec", "msPerBatch", "runs"}]}.

Usage: bench/torch-embed.py [--backbones mobilenet_v2,inception_v3,inception_v3_m7,inception_v3_m67] [--batches 1,16] [--seconds 4] [--threads N]
"""

import argparse
import json
import os
import statistics
import time

import torch
import torchvision


def build(name):
    if name == "mobilenet_v2":
        model = torchvision.models.mobilenet_v2()
        # The embedding: features -> global average pool -> flatten (as Keras' flatten_1 after pooling).
        model.classifier = torch.nn.Identity()
        return model, 224
    if name == "inception_v3":
        model = torchvision.models.inception_v3(aux_logits=False, init_weights=False)
        model.fc = torch.nn.Identity()
        return model, 299
    if name == "inception_v3_m7":
        # solescope's multi-level embedding: the spatial mean of Keras' mixed7 (torchvision's Mixed_6e, 768
        # channels at 17x17) next to the pooled top (2048), 2816-d: the same network and one more reduction.
        return InceptionMulti(["Mixed_6e"]), 299
    if name == "inception_v3_m67":
        # The same with Keras' mixed6 (torchvision's Mixed_6d) first: 3584-d.
        return InceptionMulti(["Mixed_6d", "Mixed_6e"]), 299
    raise SystemExit(f"unknown backbone {name}")


class InceptionMulti(torch.nn.Module):
    """InceptionV3 whose embedding is the spatial means of some mid-level blocks, then the pooled top."""

    def __init__(self, blocks):
        super().__init__()
        self.net = torchvision.models.inception_v3(aux_logits=False, init_weights=False)
        self.net.fc = torch.nn.Identity()
        self.mid = {}
        for block in blocks:
            getattr(self.net, block).register_forward_hook(lambda _m, _i, out, block=block: self.mid.__setitem__(block, out))
        self.blocks = blocks

    def forward(self, x):
        top = self.net(x)
        return torch.cat([self.mid[b].mean(dim=(2, 3)) for b in self.blocks] + [top], dim=1)


def measure(model, size, batch, seconds):
    x = torch.rand(batch, 3, size, size)
    with torch.no_grad():
        model(x)  # warm-up
        times = []
        started = time.perf_counter()
        while len(times) < 2 or (time.perf_counter() - started < seconds and len(times) < 50):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1000
    return {"batch": batch, "imgPerSec": batch / (ms / 1000), "msPerBatch": ms, "runs": len(times)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbones", default="mobilenet_v2,inception_v3")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.backbones.split(","):
        model, size = build(name)
        model.eval()
        for batch in [int(b) for b in args.batches.split(",")]:
            row = measure(model, size, batch, args.seconds)
            row["backbone"] = name
            rows.append(row)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}))


if __name__ == "__main__":
    main()
