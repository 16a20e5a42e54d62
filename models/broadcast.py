"""A per-sample value of shape [B] broadcast over a batch's trailing dimensions."""


def per_sample(value, x):
    """`value` of shape [B] (a sigma, a threshold) reshaped to broadcast over x [B, ...], in x's dtype."""
    return value.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)
