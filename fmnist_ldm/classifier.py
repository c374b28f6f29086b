"""The judge's network: a small Fashion-MNIST classifier whose penultimate features are the space
the metrics (FID, KID, precision / recall, memorisation) are computed in. It sits beside the VAE
and the UNet so that weights.py builds all three; metrics/judge.py trains, loads and runs it."""
from __future__ import annotations

import torch.nn as nn

from .config import NUM_CLASSES


class Judge(nn.Module):
    """A small VGG-style CNN: 2 x (conv-BN-ReLU x2, max-pool), then 256 features, then 10 logits."""

    num_features = 256   # read by torchmetrics

    def __init__(self):
        super().__init__()
        block = lambda i, o: [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]
        self.body = nn.Sequential(*block(1, 32), *block(32, 32), nn.MaxPool2d(2),
                                  *block(32, 64), *block(64, 64), nn.MaxPool2d(2), nn.Flatten(),
                                  nn.Linear(64 * 7 * 7, 256), nn.BatchNorm1d(256), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(256, NUM_CLASSES))

    def features(self, x):
        """float [N,1,28,28] in [-1,1] -> penultimate features [N,256]."""
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))
