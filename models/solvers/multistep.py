"""Multistep solvers that reuse past denoiser outputs: iPNDM and DEIS (Zhang & Chen 2023) and UniPC
(Zhao et al. 2023)."""

import math

from numpy.polynomial import Polynomial

from .contract import derivative, steps, to_zero

# Adams-Bashforth coefficients of orders 1-4, newest derivative first.
ADAMS_BASHFORTH = ((1,), (3 / 2, -1 / 2), (23 / 12, -16 / 12, 5 / 12), (55 / 24, -59 / 24, 37 / 24, -9 / 24))


def ipndm(denoise, x, sigmas, *, generator=None, max_order=4):
    """Improved PNDM (Zhang & Chen 2023, DEIS, Sec. 4 and App. B): Adams-Bashforth on dx/dsigma with
    fixed coefficients, warm-started by the lower orders instead of Runge-Kutta steps.

    The Euler warm-start step and the fixed coefficients on a non-uniform grid limit the global
    order to 2; on a uniform grid the inner steps are 4th order.
    """
    history = []
    for sigma, sigma_next in steps(sigmas):
        history = [derivative(denoise, x, sigma)] + history[: max_order - 1]
        coefficients = ADAMS_BASHFORTH[len(history) - 1]
        x = x + (sigma_next - sigma) * sum(c * d for c, d in zip(coefficients, history))
    return x


def exponential_weights(nodes, a, b):
    """int_a^b l_j(u) e^u du for each Lagrange basis polynomial l_j on `nodes`, exactly:
    int p(u) e^u du = e^u (p - p' + p'' - ...) for a polynomial p."""
    weights = []
    for j, node in enumerate(nodes):
        others = nodes[:j] + nodes[j + 1 :]
        basis = math.prod((Polynomial([-other, 1]) / (node - other) for other in others), start=Polynomial([1.0]))
        antiderivative = sum((-1) ** k * basis.deriv(k) for k in range(len(nodes)))
        weights.append(math.exp(b) * antiderivative(b) - math.exp(a) * antiderivative(a))
    return weights


def deis(denoise, x, sigmas, *, generator=None, max_order=3, lower_order_final=True):
    """DEIS (Zhang & Chen 2023, rhoAB-DEIS, eq. 15), in sigma-space where rho = sigma: each step
    integrates dx/dsigma = eps exactly with eps replaced by its Lagrange polynomial in u = log sigma
    through the last `max_order` outputs (the log-rho form of diffusers' DEISMultistepScheduler):

        x_{i+1} = x_i + sum_j C_ij eps_j,   C_ij = int_{sigma_i}^{sigma_{i+1}} l_j(log sigma) dsigma.

    Warm-started by the lower orders, whose Euler first step limits the global order to 2 (the oracle
    measures 2.6: the first steps, at large sigma, are nearly linear); the step into sigma = 0
    (log sigma = -inf) is an Euler step. lower_order_final: on grids of fewer than 15 steps, the
    last two steps use orders 2 and 1, as in the reference code of DPM-Solver (Lu et al. 2022b) and
    diffusers' DEIS.
    """
    num_steps = len(sigmas) - 1
    history, nodes = [], []
    for i, (sigma, sigma_next) in enumerate(steps(sigmas)):
        history = [derivative(denoise, x, sigma)] + history[: max_order - 1]
        nodes = [math.log(sigma)] + nodes[: max_order - 1]
        if sigma_next == 0:
            return to_zero(x, sigma, history[0])
        order = min(len(nodes), num_steps - i) if lower_order_final and num_steps < 15 else len(nodes)
        weights = exponential_weights(nodes[:order], nodes[0], math.log(sigma_next))
        x = x + sum(c * eps for c, eps in zip(weights, history))
    return x


def unipc(denoise, x, sigmas, *, generator=None, variant="bh2"):
    """UniPC-2 (Zhao et al. 2023, Alg. 2-3 with data prediction): the UniP-2 predictor, then the
    UniC-2 corrector, which reuses the denoiser output at the predicted point, so a step costs one
    call and the corrector raises the order by one (Thm. 3.1).

    B(h) = h ("bh1") or e^h - 1 ("bh2"). First order on the first step; no corrector on the last
    step (it would cost a call), and first order on the step into sigma = 0.
    """
    pairs = list(steps(sigmas))
    m, m_prev, lam_prev = denoise(x, sigmas[0]), None, None
    for i, (sigma, sigma_next) in enumerate(pairs):
        if sigma_next == 0:  # `to_zero` in data prediction: x = D, here at the point last predicted (no new call)
            return m
        lam, lam_next = -math.log(sigma), -math.log(sigma_next)
        h = lam_next - lam
        hh = -h  # data prediction integrates in -lambda
        b_h = hh if variant == "bh1" else math.expm1(hh)
        base = (sigma_next / sigma) * x - math.expm1(hh) * m
        # Predictor UniP-2: with one past output, rho = 1/2 (Zhao et al. 2023, Sec. 3.2).
        d1 = None if m_prev is None else (m_prev - m) / ((lam_prev - lam) / h)
        x_pred = base if d1 is None else base - b_h * 0.5 * d1
        if i == len(pairs) - 1:
            return x_pred
        m_next = denoise(x_pred, sigma_next)
        # Corrector UniC: rho solves sum_m rho_m r_m^(k-1) = k! phi_(k+1)(hh) hh / B(h), k = 1..p.
        phi_2 = math.expm1(hh) / hh - 1
        if d1 is None:
            correction = 0.5 * (m_next - m)
        else:
            phi_3 = phi_2 / hh - 0.5
            r1 = (lam_prev - lam) / h
            # Solve [[1, 1], [r1, 1]] rho = [phi_2, 2 phi_3] / B(h) for the past (r1) and new (1) outputs.
            rho_past = (phi_2 - 2 * phi_3) / (b_h * (1 - r1))
            rho_new = phi_2 / b_h - rho_past
            correction = rho_past * d1 + rho_new * (m_next - m)
        x = base - b_h * correction
        m_prev, lam_prev, m = m, lam, m_next
    return x
