#!/usr/bin/env python3
"""PyTorch (float32) reference for bench/featurizers.R: nbi's featurizer_resnet_gru() + flow_maf().

The featurizer of nbi's src/feat/resnet_gru.c: `depth` residual blocks, block i with
min(dim_conv_min 2^i, dim_conv_max) channels, each
  conv k ('same' zero padding, bias) -> layer norm over channels -> GELU (exact, erf)
  -> conv k -> layer norm -> + skip (identity, or a 1x1 convolution with bias when the
  channel count changes) -> GELU -> max-pool by 2 (all blocks but the last, while length >= 2);
then `n_rnn` GRU layers (hidden size = the last block's channels; PyTorch's gate equations,
which are nbi's), and a linear map of the last state to dim_out, the conditioning vector of
the MAF of torch_maf.py. Same parameter count as nbi (printed next to nbi's formula).

nbi holds a sequence as length x channels (channels contiguous); PyTorch's Conv1d wants
channels x length, so each block transposes around its two layer norms.

Prints one JSON line per thread count: parameters and training samples per second (-log q +
backward + gradient-norm clip 5 + Adam, random standardised sequences of length --seq-len,
4 batches cycled, after a warm-up). The defaults are bench/featurizers.R's case 1.

  python3 torch_resnet_gru.py --seq-len 50 --channels 1 --threads 1,2 --seconds 3
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_maf import Maf, blas_name, nbi_n_params, set_threads, train_rate  # noqa: E402


class ResBlock(torch.nn.Module):
    def __init__(self, ci, co, k, pool):
        super().__init__()
        self.conv1 = torch.nn.Conv1d(ci, co, k, padding=k // 2)
        self.ln1 = torch.nn.LayerNorm(co)  # eps 1e-5, as nbi
        self.conv2 = torch.nn.Conv1d(co, co, k, padding=k // 2)
        self.ln2 = torch.nn.LayerNorm(co)
        self.proj = torch.nn.Conv1d(ci, co, 1) if ci != co else None
        self.pool = pool

    def forward(self, x):  # (B, C, L)
        def ln(norm, h):  # layer norm over the channels of each position
            return norm(h.transpose(1, 2)).transpose(1, 2)
        h = ln(self.ln2, self.conv2(F.gelu(ln(self.ln1, self.conv1(x)))))
        out = F.gelu(h + (x if self.proj is None else self.proj(x)))
        return F.max_pool1d(out, 2) if self.pool else out


class ResNetGRU(torch.nn.Module):
    def __init__(self, seq_len, channels, depth, kernel, dim_conv_min, dim_conv_max, n_rnn, dim_out):
        super().__init__()
        blocks, L, ci = [], seq_len, channels
        for i in range(depth):
            co = min(dim_conv_min * 2 ** i, dim_conv_max)
            pool = i < depth - 1 and L >= 2
            blocks.append(ResBlock(ci, co, kernel, pool))
            L, ci = (L // 2 if pool else L), co
        self.blocks = torch.nn.Sequential(*blocks)
        self.gru = torch.nn.GRU(ci, ci, num_layers=n_rnn, batch_first=True)
        self.out = torch.nn.Linear(ci, dim_out)

    def forward(self, x):  # (B, L, C) as nbi
        h = self.blocks(x.transpose(1, 2)).transpose(1, 2)
        seq, _ = self.gru(h)
        return self.out(seq[:, -1])


class Model(torch.nn.Module):
    def __init__(self, feat, flow):
        super().__init__()
        self.feat, self.flow = feat, flow

    def log_prob(self, theta, x):
        return self.flow.log_prob(theta, self.feat(x))


def nbi_feat_params(seq_len, channels, depth, kernel, dim_conv_min, dim_conv_max, n_rnn, dim_out):
    """nbi's count (src/feat/resnet_gru.c make_plan)."""
    p, ci = 0, channels
    for i in range(depth):
        co = min(dim_conv_min * 2 ** i, dim_conv_max)
        p += co * kernel * ci + 3 * co + co * kernel * co + 3 * co + (co * ci + co if ci != co else 0)
        ci = co
    for j in range(n_rnn):
        p += 3 * ci * ci * 2 + 6 * ci
    return p + dim_out * ci + dim_out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seq-len", type=int, default=50)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--kernel", type=int, default=3)
    ap.add_argument("--dim-conv-min", type=int, default=32)
    ap.add_argument("--dim-conv-max", type=int, default=256)
    ap.add_argument("--n-rnn", type=int, default=2)
    ap.add_argument("--dim-out", type=int, default=128)
    ap.add_argument("--d", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=128, help="flow hidden units")
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--mixture", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", default="1", help="thread counts, comma separated")
    ap.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    ap.add_argument("--repeat", type=int, default=1, help="best of")
    ap.add_argument("--average", type=float, default=0.0, help="iterate-average decay (0: none)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps before each timing")
    a = ap.parse_args()

    torch.manual_seed(1)
    set_threads(1)
    fa = (a.seq_len, a.channels, a.depth, a.kernel, a.dim_conv_min, a.dim_conv_max, a.n_rnn, a.dim_out)
    model = Model(ResNetGRU(*fa), Maf(a.d, a.dim_out, a.hidden, a.blocks, a.mixture, a.layers))
    n_params = sum(p.numel() for p in model.parameters())
    n_nbi = nbi_feat_params(*fa) + nbi_n_params(a.d, a.dim_out, a.hidden, a.layers, a.blocks, a.mixture)
    data = [(torch.randn(a.batch, a.d), torch.randn(a.batch, a.seq_len, a.channels)) for _ in range(4)]
    for th in [int(t) for t in a.threads.split(",")]:
        set_threads(th)
        out = dict(model="resnet_gru+maf", seq_len=a.seq_len, channels=a.channels, depth=a.depth,
                   kernel=a.kernel, dim_conv_min=a.dim_conv_min, dim_conv_max=a.dim_conv_max,
                   n_rnn=a.n_rnn, dim_out=a.dim_out, d=a.d, hidden=a.hidden, blocks=a.blocks,
                   mixture=a.mixture, batch=a.batch, threads=th, params=n_params, params_nbi=n_nbi,
                   train=train_rate(model, data, a.seconds, a.repeat, a.average, a.warmup),
                   torch=torch.__version__, blas=blas_name())
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
