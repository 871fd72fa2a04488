"""Small models and float64 reference norms the tests compute themselves."""

import math

import torch


def mlp(sizes=(784, 256, 128, 64, 10), seed=0):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def reference(model):
    """Per-layer (module path) float64 gradient norms and the total, from the gradients now."""
    sums = {}
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        layer = name.rpartition(".")[0] or name
        layer = layer.replace("_orig_mod.", "")
        sums[layer] = sums.get(layer, 0.0) + p.grad.detach().double().pow(2).sum().item()
    total = math.sqrt(math.fsum(sums.values())) if sums else None
    return {k: math.sqrt(v) for k, v in sums.items()}, total


def close(a, b, rel=2e-6):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-30)
