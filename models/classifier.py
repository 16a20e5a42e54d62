"""A small image classifier whose penultimate activations are the FID features of small datasets.

Inception-v3 features (Heusel et al. 2017) mean little on 8x8 digits; as for MNIST-scale FID in
the literature, a classifier trained on the data itself supplies the feature space.
"""

import torch
import torch.nn.functional as F
from torch import nn


class Classifier(nn.Module):
    """conv 3x3 (32) -> conv 3x3 (64) -> 2x2 max-pool -> linear (num_features) -> linear (classes),
    ReLU after each hidden layer and dropout before each linear layer."""

    def __init__(self, in_channels=1, image_size=8, num_classes=10, num_features=64, dropout=0.25):
        super().__init__()
        if image_size % 2:
            raise ValueError(f"Classifier: image_size={image_size!r}; allowed: an even number of pixels")
        self.num_features = num_features
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.hidden = nn.Linear(64 * (image_size // 2) ** 2, num_features)
        self.out = nn.Linear(num_features, num_classes)
        self.dropout = nn.Dropout(dropout)

    def features(self, x):
        """Penultimate activations [B, num_features] of images [B, C, H, W] in [-1, 1]."""
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.hidden(self.dropout(x.flatten(1))))

    def forward(self, x):
        """Class logits [B, num_classes]."""
        return self.out(self.dropout(self.features(x)))


def random_shift(images, generator, pixels=1):
    """Each image moved by its own random offset in [-pixels, pixels] along each axis; the border
    is repeated into the uncovered rows and columns."""
    batch, _, height, width = images.shape
    padded = F.pad(images, (pixels,) * 4, mode="replicate")
    dy, dx = torch.randint(0, 2 * pixels + 1, (2, batch, 1), generator=generator).to(images.device)
    rows = (dy + torch.arange(height, device=images.device))[:, :, None]  # [B, H, 1]
    cols = (dx + torch.arange(width, device=images.device))[:, None, :]  # [B, 1, W]
    index = torch.arange(batch, device=images.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[index, rows, cols].permute(0, 3, 1, 2)


def train_classifier(model, images, labels, *, steps, batch_size=128, lr=1e-3, seed=0):
    """Adam on cross-entropy over random batches with random 1-pixel shifts; the same seed gives
    the same weights on CPU, and the caller's random state is left as it was. Returns the model
    in eval mode."""
    device = next(model.parameters()).device
    images, labels = images.to(device), labels.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout draws from the global generator
        generator = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(steps):
            batch = torch.randint(0, len(images), (batch_size,), generator=generator).to(device)
            loss = F.cross_entropy(model(random_shift(images[batch], generator)), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def accuracy(model, images, labels, batch_size=1024):
    """Fraction of images whose arg-max logit is their label, in eval mode; the model's mode is restored."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = sum(
        (model(x.to(device)).argmax(1) == y.to(device)).sum().item() for x, y in zip(images.split(batch_size), labels.split(batch_size))
    )
    model.train(was_training)
    return correct / len(labels)
