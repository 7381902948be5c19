"""Small PyTorch models shared by the lowbit.sim.torch tests (not a test module)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class SmallCNN(nn.Module):
    """Conv with dilation, grouped strided conv, Conv1d, max-pool, flatten, two linears."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=2, dilation=2)
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4)
        self.conv1d = nn.Conv1d(8, 4, 3, padding=1)
        self.fc1 = nn.Linear(4 * 16, 16)
        self.fc2 = nn.Linear(16, 5)

    def forward(self, x):
        x = F.relu(self.conv1(x))                 # (N, 8, 8, 8)
        x = F.max_pool2d(F.relu(self.conv2(x)), 1)  # (N, 8, 4, 4)
        x = F.relu(self.conv1d(x.flatten(2)))     # (N, 4, 16)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class TinyEncoder(nn.Module):
    """Token embedding + 2 nn.TransformerEncoderLayer + mean pool + classifier."""

    def __init__(self, vocab=32, d=16, heads=2, ff=32, classes=4):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, ids):
        return self.head(self.encoder(self.emb(ids)).mean(1))


class ExplicitAttention(nn.Module):
    """Attention written with torch.matmul, @ and F.scaled_dot_product_attention."""

    def __init__(self, d=16):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        s = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / 4.0, -1)
        return (s @ v) + F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]


def make_data(seed=0, n=24):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 5, (n,), generator=g),
            torch.randint(0, 32, (n, 6), generator=g), torch.randint(0, 4, (n,), generator=g))
