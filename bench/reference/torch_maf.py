#!/usr/bin/env python3
"""PyTorch (float32) reference for bench/throughput.R: the conditional MAF of nbi's flow_maf().

The same network as nbi's C core (src/flow/): `blocks - 1` affine MADE blocks, then one
autoregressive mixture-of-Gaussians block with `mixture` components per coordinate. Each
block is a MADE (made.c) with its own random ordering: hidden unit h has degree h mod d, the
first hidden layer takes the masked block input plus the (unmasked) context with one bias,
`layers - 1` masked H x H layers follow (ReLU, nbi's default activation), and the outputs
are a masked linear map of the last hidden layer plus an unbiased linear skip from the
context. Affine block (block_affine.c): outputs (shift_j, raw_j), a_j = 1 tanh(raw_j / 1),
density direction y_j = (z_j - shift_j) e^{-a_j}. Mixture block (block_mog.c): per
coordinate and component (mean, raw log-sd, logit), log-sd 5 tanh(raw / 5). The parameter
count is nbi's exactly (printed next to nbi's formula, layout.c block_size).

Prints one JSON line per thread count: parameters, and samples per second of
  train   -log q + backward + gradient-norm clip 5 + Adam (lr 1e-4), as nbi's trainer, on
          random standardised data (4 batches cycled), steady state after a warm-up;
  sample  draws for one context: the sequential inverse (d passes of each block), no grad;
  logq    log-densities, one context per point, no grad.
nbi's trainer also keeps an iterate average each step (fit(average = 0.999)): --average.

  python3 torch_maf.py --d 3 --context 64 --hidden 32 --blocks 10 --mixture 8 \
      --batch 256 --threads 1,2 --seconds 2
"""
import argparse
import ctypes
import json
import math
import time

import torch
import torch.nn.functional as F

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def soft_clamp(raw, c):
    return c * torch.tanh(raw / c)


def uniform_(w, scale):
    with torch.no_grad():
        w.uniform_(-scale, scale)


class Made(torch.nn.Module):
    """One MADE block with a conditioning input (nbi src/flow/made.c, layout.c)."""

    def __init__(self, d, nc, H, layers, od, order, out_coord):
        super().__init__()
        rank = torch.empty(d, dtype=torch.long)
        rank[order] = torch.arange(d)
        deg = torch.arange(H) % d
        self.win = torch.nn.Linear(d, H)                  # + b1
        self.wc = torch.nn.Linear(nc, H, bias=False)
        self.wh = torch.nn.ModuleList(torch.nn.Linear(H, H) for _ in range(layers - 1))
        self.wout = torch.nn.Linear(H, od)                # + bout
        self.wco = torch.nn.Linear(nc, od, bias=False)    # context skip to the outputs
        self.register_buffer("m_in", (deg[:, None] >= rank[None, :] + 1).float())
        self.register_buffer("m_hh", (deg[:, None] >= deg[None, :]).float())
        self.register_buffer("m_out", (deg[None, :] <= rank[out_coord][:, None]).float())
        # nbi's initialisation (flow_init_params): small outputs, biases zero
        for w, s in [(self.win.weight, 1 / math.sqrt(d + nc)), (self.wc.weight, 1 / math.sqrt(d + nc)),
                     (self.wout.weight, 0.1 / math.sqrt(H)), (self.wco.weight, 0.1 / math.sqrt(max(nc, 1)))]:
            uniform_(w, s)
        for lin in self.wh:
            uniform_(lin.weight, 1 / math.sqrt(H))
        for b in [self.win.bias, self.wout.bias] + [lin.bias for lin in self.wh]:
            torch.nn.init.zeros_(b)

    def forward(self, z, c):  # c: rows of z, or 1 row (broadcast)
        h = F.relu(F.linear(z, self.win.weight * self.m_in, self.win.bias) + self.wc(c))
        for lin in self.wh:
            h = F.relu(F.linear(h, lin.weight * self.m_hh, lin.bias))
        return F.linear(h, self.wout.weight * self.m_out, self.wout.bias) + self.wco(c)


class Maf(torch.nn.Module):
    def __init__(self, d, nc, hidden, blocks, mixture, layers=2, clamp=1.0, clamp_mix=5.0, seed=1):
        super().__init__()
        self.d, self.K, self.clamp, self.clamp_mix = d, mixture, clamp, clamp_mix
        g = torch.Generator().manual_seed(seed)
        self.orders = [torch.randperm(d, generator=g).tolist() for _ in range(blocks)]
        K = mixture
        mods = [Made(d, nc, hidden, layers, 2 * d, o, torch.arange(2 * d) % d) for o in self.orders[:-1]]
        mods.append(Made(d, nc, hidden, layers, 3 * K * d, self.orders[-1], torch.arange(3 * K * d) // (3 * K)))
        self.blocks = torch.nn.ModuleList(mods)
        # mixture biases as nbi's mog_init_bias: means spread over (-1, 1), total variance ~1
        m = torch.tensor([0.0] if K == 1 else [-1 + 2 * (k + 0.5) / K for k in range(K)])
        m2 = 0.0 if K == 1 else float((m * m).mean())
        logsd = 0.5 * math.log(max(0.1, 1 - m2))
        with torch.no_grad():
            b = self.blocks[-1].wout.bias.view(d, K, 3)
            b[..., 0] = m
            b[..., 1] = clamp_mix * math.atanh(logsd / clamp_mix)
            b[..., 2] = 0.0

    def mixture(self, o):  # (n, d*3K) -> means, log-sds, logits: (n, d, K) each
        mean, raw, logit = o.view(o.shape[0], self.d, self.K, 3).unbind(-1)
        return mean, soft_clamp(raw, self.clamp_mix), logit

    def log_prob(self, x, c):
        d, lq, z = self.d, 0.0, x
        for blk in self.blocks[:-1]:
            o = blk(z, c)
            a = soft_clamp(o[:, d:], self.clamp)
            z = (z - o[:, :d]) * torch.exp(-a)
            lq = lq - a.sum(1)
        mean, a, logit = self.mixture(self.blocks[-1](z, c))
        u = (z[..., None] - mean) * torch.exp(-a)
        lp = torch.logsumexp(F.log_softmax(logit, -1) - a - 0.5 * u * u, -1) - LOG_SQRT_2PI
        return lq + lp.sum(1)

    @torch.no_grad()
    def sample(self, n, c):  # c: (1, nc)
        d = self.d
        z = torch.zeros(n, d)
        for j in self.orders[-1]:  # the mixture block, coordinate by coordinate
            mean, a, logit = (t[:, j] for t in self.mixture(self.blocks[-1](z, c)))
            k = (logit - torch.log(-torch.log(torch.rand_like(logit)))).argmax(1, keepdim=True)
            z[:, j] = (mean.gather(1, k) + a.gather(1, k).exp() * torch.randn(n, 1)).squeeze(1)
        for b in range(len(self.blocks) - 2, -1, -1):  # affine blocks inverted
            y, z = z, torch.zeros(n, d)
            for j in self.orders[b]:
                o = self.blocks[b](z, c)
                z[:, j] = y[:, j] * torch.exp(soft_clamp(o[:, d + j], self.clamp)) + o[:, j]
        return z


def nbi_n_params(d, nc, H, layers, blocks, K):
    """nbi's count (src/flow/layout.c block_size)."""
    def block(od):
        return H * d + H * nc + H + (layers - 1) * (H * H + H) + od * H + od + od * nc
    return (blocks - 1) * block(2 * d) + block(3 * K * d)


_openblas = None


def set_threads(n):
    """torch's intra-op threads, and OpenBLAS's own (Debian's torch calls its sgemm)."""
    global _openblas
    torch.set_num_threads(n)
    if _openblas is None:
        try:
            _openblas = ctypes.CDLL("libopenblas.so.0")
            _openblas.openblas_get_config.restype = ctypes.c_char_p
        except OSError:
            _openblas = False
    if _openblas:
        _openblas.openblas_set_num_threads(n)


def blas_name():
    return _openblas.openblas_get_config().decode() if _openblas else "unknown"


def rate(fn, units, seconds, repeat=1, warmup=3):
    """units per second of fn(), best of `repeat` runs of >= `seconds` each."""
    for _ in range(warmup):
        fn()
    best = 0.0
    for _ in range(repeat):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            t = time.perf_counter() - t0
            if t >= seconds:
                break
        best = max(best, n * units / t)
    return best


def train_rate(model, data, seconds, repeat, average=0.0, warmup=3, lr=1e-4, clip=5.0):
    """training samples/s; data: list of (theta, x) batches, cycled"""
    params = [p for p in model.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    avg = [p.detach().clone() for p in params] if average > 0 else None
    it = [0]

    def step():
        theta, x = data[it[0] % len(data)]
        it[0] += 1
        opt.zero_grad(set_to_none=True)
        loss = -model.log_prob(theta, x).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        if avg is not None:
            with torch.no_grad():
                torch._foreach_mul_(avg, average)
                torch._foreach_add_(avg, params, alpha=1 - average)

    return rate(step, data[0][0].shape[0], seconds, repeat, warmup)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--d", type=int, default=3)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--mixture", type=int, default=8)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", default="1", help="thread counts, comma separated")
    ap.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    ap.add_argument("--repeat", type=int, default=1, help="best of")
    ap.add_argument("--draws", type=int, default=1024, help="draws per sampling call")
    ap.add_argument("--eval", type=int, default=2048, help="points per log-density call")
    ap.add_argument("--average", type=float, default=0.0, help="iterate-average decay (0: none)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls before each timing")
    a = ap.parse_args()

    torch.manual_seed(1)
    set_threads(1)
    model = Maf(a.d, a.context, a.hidden, a.blocks, a.mixture, a.layers)
    n_params = sum(p.numel() for p in model.parameters())
    data = [(torch.randn(a.batch, a.d), torch.randn(a.batch, a.context)) for _ in range(4)]
    c1 = torch.randn(1, a.context)
    x_eval, th_eval = torch.randn(a.eval, a.context), torch.randn(a.eval, a.d)

    def logq():
        with torch.no_grad():
            model.log_prob(th_eval, x_eval)

    for th in [int(t) for t in a.threads.split(",")]:
        set_threads(th)
        out = dict(model="maf", d=a.d, context=a.context, hidden=a.hidden, blocks=a.blocks,
                   mixture=a.mixture, layers=a.layers, batch=a.batch, threads=th,
                   params=n_params,
                   params_nbi=nbi_n_params(a.d, a.context, a.hidden, a.layers, a.blocks, a.mixture),
                   train=train_rate(model, data, a.seconds, a.repeat, a.average, a.warmup),
                   sample=rate(lambda: model.sample(a.draws, c1), a.draws, a.seconds, a.repeat,
                               a.warmup),
                   logq=rate(logq, a.eval, a.seconds, a.repeat, a.warmup),
                   torch=torch.__version__, blas=blas_name())
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
