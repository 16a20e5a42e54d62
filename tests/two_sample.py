"""A two-sample statistic for checking that samples follow a distribution."""

import torch


def mmd(a, b, bandwidth=0.1):
    """Unbiased squared MMD with a Gaussian kernel (Gretton et al. 2012); the default bandwidth is as
    narrow as the test mixture's components, so it sees their width."""
    kernel = lambda u, v: torch.exp(-(torch.cdist(u, v) ** 2) / (2 * bandwidth**2))  # noqa: E731
    n, m = len(a), len(b)
    k_aa, k_bb = kernel(a, a), kernel(b, b)
    within = (k_aa.sum() - k_aa.diag().sum()) / (n * (n - 1)) + (k_bb.sum() - k_bb.diag().sum()) / (m * (m - 1))
    return (within - 2 * kernel(a, b).mean()).item()
