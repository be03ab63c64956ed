"""Top-1 accuracy of a model on a dataset."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .layout import channels_last


def accuracy(model: nn.Module, data: Dataset, batch_size: int = 512) -> float:
    """Top-1 accuracy, on whatever device the model's weights are."""
    model.eval()
    device = next(model.parameters()).device
    correct = total = 0
    with channels_last(model), torch.inference_mode():  # layouts restored outside inference mode
        for images, labels in DataLoader(data, batch_size=batch_size):
            correct += int((model(images.to(device)).argmax(1).cpu() == labels).sum())
            total += len(labels)
    return correct / total
