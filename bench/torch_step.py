"""PyTorch eager peer of the training benchmark (bench/pytorch.ts starts it).

The same GPT-style model as stdlib's Transformer (token + learned position
embeddings, pre-norm blocks of causal multi-head attention with one qkv
projection and a GELU (tanh) MLP of width 4d, final LayerNorm, a bias-free
head), the same next-token cross-entropy, AdamW (betas, weight decay on the
matrices only, as the recipe's declarations give it), global-norm clipping and
the cosine schedule with warm-up, on random tokens of the same shape. Prints
one JSON line: the seconds of each measured step and what ran.

    python3 bench/torch_step.py '{"vocab": 58, "dim": 256, "layers": 4, "heads": 4,
        "ctx": 64, "batch": 16, "threads": 2, "warmup": 3, "steps": 12}'

Thread count: set OMP_NUM_THREADS and OPENBLAS_NUM_THREADS before starting it
(bench/pytorch.ts does); torch.set_num_threads is called as well.
"""
import json
import math
import sys
import time

import torch
import torch.nn.functional as F


class Block(torch.nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = torch.nn.LayerNorm(d)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.proj = torch.nn.Linear(d, d)
        self.norm2 = torch.nn.LayerNorm(d)
        self.up = torch.nn.Linear(d, 4 * d)
        self.down = torch.nn.Linear(4 * d, d)

    def forward(self, x, mask):
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        scores = (q @ k.transpose(-1, -2)) * (d // self.heads) ** -0.5
        att = torch.softmax(scores.masked_fill(~mask, float('-inf')), dim=-1)
        h = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d))
        return h + self.down(F.gelu(self.up(self.norm2(h)), approximate='tanh'))


class Gpt(torch.nn.Module):
    def __init__(self, vocab, ctx, d, layers, heads):
        super().__init__()
        self.token = torch.nn.Embedding(vocab, d)
        self.pos = torch.nn.Parameter(torch.randn(ctx, d) * 0.02)
        self.blocks = torch.nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.norm = torch.nn.LayerNorm(d)
        self.head = torch.nn.Linear(d, vocab, bias=False)

    def forward(self, tokens):
        t = tokens.shape[1]
        mask = torch.ones(t, t, dtype=torch.bool).tril()
        x = self.token(tokens) + self.pos[:t]
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.norm(x))


def main():
    c = json.loads(sys.argv[1])
    torch.set_num_threads(c['threads'])
    torch.manual_seed(0)
    model = Gpt(c['vocab'], c['ctx'], c['dim'], c['layers'], c['heads'])
    # Weight decay on the Linear matrices only: embeddings, positions, norms and biases
    # are declared `decay: false` or are vectors in stdlib's blocks.
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and not n.startswith(('token', 'pos'))]
    rest = [p for n, p in model.named_parameters() if not (p.dim() == 2 and not n.startswith(('token', 'pos')))]
    lr, warmup, total, min_lr = 1e-3, 50, 1000, 1e-4
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1}, {'params': rest, 'weight_decay': 0.0}], lr=lr, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(1)
    steps = []
    losses = []
    for step in range(1, c['warmup'] + c['steps'] + 1):
        t0 = time.perf_counter()
        tokens = torch.randint(0, c['vocab'], (c['batch'], c['ctx']), generator=gen)
        if step < warmup:
            now = lr * step / warmup
        else:
            progress = min(max((step - warmup) / (total - warmup), 0), 1)
            now = min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
        for g in opt.param_groups:
            g['lr'] = now
        logits = model(tokens)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, c['vocab']), tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step > c['warmup']:
            steps.append(time.perf_counter() - t0)
    blas = next((line.split()[-1] for line in open('/proc/self/maps') if 'blas' in line and '.so' in line), 'unknown')
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({'steps': steps, 'loss_first': losses[0], 'loss_last': losses[-1], 'params': params, 'threads': torch.get_num_threads(), 'torch': torch.__version__, 'blas': blas}))


if __name__ == '__main__':
    main()
