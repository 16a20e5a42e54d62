"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs", Sec. 2.3 and Eq. 4):
the unbiased estimate of the squared maximum mean discrepancy between real and generated features
with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3,

    KID = 1/(m(m-1)) sum_{i != j} k(r_i, r_j) + 1/(n(n-1)) sum_{i != j} k(f_i, f_j) - 2/(mn) sum_{i,j} k(r_i, f_j).

Unlike FID, whose estimate from n samples is biased upward by a term that falls with n, its mean is
the population value at any n (it can come out negative when the two are close). Computed on all the
samples at once, as torchmetrics' `KernelInceptionDistance` does on each of its subsets; the spread
of a cell comes from the same bootstrap resamples as its FID's (`kids` with weights), so that two
cells' differences are paired."""

KID_REAL = 10_000  # at most: the real features a KID is measured against (the first of the training images)


def kernel(x, y):
    """k(x, y) = (x.y / d + 1)^3 between the rows of x [M, d] and y [N, d]: [M, N]."""
    return (x @ y.t() / x.shape[1] + 1) ** 3


def within(features):
    """The mean of k over the pairs of distinct real features [M, d]: the real term of every KID."""
    gram = kernel(features, features)
    return ((gram.sum() - gram.diagonal().sum()) / (len(features) * (len(features) - 1))).item()


def kids(real, real_term, fake, weights):
    """KID [B] of generated features `fake` [N, d] against `real` [M, d] (`real_term` = `within(real)`),
    each sample of the b-th estimate counted weights[b] [N] times (bootstrap counts, or ones): pairs
    of a sample with itself (or with its own copies) left out of the generated term."""
    weights = weights.to(fake)
    gram, cross = kernel(fake, fake), kernel(real.to(fake), fake).mean(dim=0)
    pairs = weights.sum(dim=1) ** 2 - (weights**2).sum(dim=1)
    generated = (((weights @ gram) * weights).sum(dim=1) - (weights**2 * gram.diagonal()).sum(dim=1)) / pairs
    return real_term + generated - 2 * (weights @ cross) / weights.sum(dim=1)


def kid(real, fake):
    """KID of generated features `fake` [N, d] against real features `real` [M, d]."""
    return kids(real, within(real), fake, fake.new_ones(1, len(fake))).item()
