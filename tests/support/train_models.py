"""Small models written once for torch and for the engine (``lib`` has ``nn`` and ``F``), used by the
training-equivalence tests: an MLP, a CNN with BatchNorm, a 2-block pre-norm transformer LM."""
from __future__ import annotations


def build_mlp(lib, dtype=None):
    nn = lib.nn
    return nn.Sequential(nn.Linear(6, 16, dtype=dtype), nn.ReLU(), nn.Linear(16, 3, dtype=dtype))


def build_cnn(lib, dtype=None):
    nn = lib.nn
    # no conv bias: BatchNorm cancels it, its gradient is rounding noise, and Adam would amplify that noise
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False, dtype=dtype), nn.BatchNorm2d(4, dtype=dtype),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 5, dtype=dtype))


def build_transformer(lib, dtype=None, vocab=11, width=8, heads=2, blocks=2):
    nn, F = lib.nn, lib.F

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(width, dtype=dtype)
            self.qkv = nn.Linear(width, 3 * width, dtype=dtype)
            self.proj = nn.Linear(width, width, dtype=dtype)
            self.ln2 = nn.LayerNorm(width, dtype=dtype)
            self.fc = nn.Linear(width, 4 * width, dtype=dtype)
            self.act = nn.GELU()
            self.out = nn.Linear(4 * width, width, dtype=dtype)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
            q = q.view(B, T, heads, C // heads).transpose(1, 2)
            k = k.view(B, T, heads, C // heads).transpose(1, 2)
            v = v.view(B, T, heads, C // heads).transpose(1, 2)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            x = x + self.proj(y)
            return x + self.out(self.act(self.fc(self.ln2(x))))

    class TinyLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, width, dtype=dtype)
            self.blocks = nn.ModuleList([Block() for _ in range(blocks)])
            self.ln_f = nn.LayerNorm(width, dtype=dtype)
            self.head = nn.Linear(width, vocab, dtype=dtype)

        def forward(self, idx):
            x = self.embed(idx)
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln_f(x))

    return TinyLM()
