"""Training noise schedules, each a map from the model's own time t to EDM's sigma.

A schedule noises data as x_t = alpha(t) x0 + sigma(t) eps. Dividing by alpha gives EDM's
sigma-space x = x0 + sigma_edm eps with sigma_edm = sigma / alpha (Karras et al. 2022, eq. 1-4,
Table 1), where every solver works. A schedule is therefore two things:

- its scaling, alpha as a function of sigma_edm: 1/sqrt(1 + s^2) for VP, 1 for VE and EDM,
  1/(1 + s) for flow matching;
- its time map sigma_edm(t) and the inverse t(sigma_edm).

Log-SNR is lambda = log(alpha / sigma) = -log(sigma_edm) for every scaling.
"""

import math

import torch
from torch import nn

SCALINGS = {
    "vp": lambda s: torch.rsqrt(1 + s**2),
    "ve": lambda s: torch.ones_like(s),
    "flow": lambda s: 1 / (1 + s),
}


class NoiseSchedule(nn.Module):
    """Base: subclasses set `scaling`, `t_min`, `t_max` and define `edm_sigma(t)`, `time(sigma)`."""

    scaling = "vp"
    timesteps = None  # number T of training timesteps t = 1..T for a discrete model
    uniform_time = True  # its paper trains with t uniform in its own time

    def edm_sigma(self, t):
        raise NotImplementedError

    def time(self, sigma):
        raise NotImplementedError

    def alpha(self, t):
        return SCALINGS[self.scaling](self.edm_sigma(t))

    def sigma(self, t):
        return self.alpha(t) * self.edm_sigma(t)

    def log_snr(self, t):
        return -torch.log(self.edm_sigma(t))

    def importance(self, t):
        """Weight that keeps the objective independent of a learned schedule's shape: 1 when fixed."""
        return torch.ones_like(t)

    def scale(self, sigma):
        """alpha at EDM sigma: the factor that takes sigma-space x to the model's x_t."""
        return SCALINGS[self.scaling](sigma)

    @property
    @torch.no_grad()
    def sigma_min(self):
        return float(self.edm_sigma(torch.tensor(self.t_min, dtype=torch.float64)))

    @property
    @torch.no_grad()
    def sigma_max(self):
        return float(self.edm_sigma(torch.tensor(self.t_max, dtype=torch.float64)))

    @property
    def discrete_sigmas(self):
        """EDM sigmas of timesteps 1..T for a discrete model, else None."""
        if self.timesteps is None:
            return None
        return self.edm_sigma(torch.arange(1, self.timesteps + 1, dtype=torch.float64))


def _vp_sigma(log_alpha_bar):
    """sigma_edm = sqrt(1/alpha_bar - 1), from log(alpha_bar) without cancellation."""
    return torch.sqrt(torch.expm1(-log_alpha_bar))


def _vp_log_alpha_bar(sigma):
    return -torch.log1p(sigma**2)


class VPLinear(NoiseSchedule):
    """Continuous VP with linear beta(t) (Song et al. 2021, eq. 33): log abar = -(b0 t + (b1-b0) t^2/2)."""

    def __init__(self, beta_min=0.1, beta_max=20.0, t_min=1e-3, t_max=1.0):
        super().__init__()
        self.beta_min, self.beta_max, self.t_min, self.t_max = beta_min, beta_max, t_min, t_max

    def edm_sigma(self, t):
        return _vp_sigma(-(self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2))

    def time(self, sigma):
        b0, db = self.beta_min, self.beta_max - self.beta_min
        return (torch.sqrt(b0**2 + 2 * db * -_vp_log_alpha_bar(sigma)) - b0) / db


class DDPM(NoiseSchedule):
    """Discrete VP of Ho et al. 2020: betas linear in 1e-4..0.02, abar_t = prod_{s<=t} (1 - beta_s).

    Time is the timestep t = 1..T; between timesteps, log(sigma) is interpolated linearly.
    """

    def __init__(self, beta_start=1e-4, beta_end=0.02, timesteps=1000):
        super().__init__()
        self.timesteps, self.t_min, self.t_max = timesteps, 1.0, float(timesteps)
        betas = torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
        self.register_buffer("betas", betas)
        self.register_buffer("log_sigmas", torch.log(_vp_sigma(torch.cumsum(torch.log1p(-betas), 0))))

    def edm_sigma(self, t):
        t = torch.as_tensor(t, dtype=self.log_sigmas.dtype).clamp(1, self.timesteps)
        position = t - 1
        low = position.floor().long().clamp(max=self.timesteps - 2)
        frac = position - low
        log_sigma = torch.lerp(self.log_sigmas[low], self.log_sigmas[low + 1], frac)
        return torch.exp(log_sigma)

    def time(self, sigma):
        log_sigma = torch.log(torch.as_tensor(sigma, dtype=self.log_sigmas.dtype))
        high = torch.searchsorted(self.log_sigmas, log_sigma.clamp(self.log_sigmas[0], self.log_sigmas[-1]))
        high = high.clamp(1, self.timesteps - 1)
        low_value, high_value = self.log_sigmas[high - 1], self.log_sigmas[high]
        return high + (log_sigma - low_value) / (high_value - low_value)


class VPCosine(NoiseSchedule):
    """Cosine VP (Nichol & Dhariwal 2021, eq. 17): abar(t) = f(t)/f(0), f(t) = cos((t+s)/(1+s) pi/2)^2.

    t_max < 1 keeps sigma finite (abar(1) = 0); the default gives sigma_max = 80.
    """

    def __init__(self, s=0.008, t_min=1e-3, t_max=None):
        super().__init__()
        self.s, self.t_min = s, t_min
        self.t_max = t_max if t_max is not None else float(self.time(torch.tensor(80.0, dtype=torch.float64)))

    def edm_sigma(self, t):
        f = lambda u: torch.cos((u + self.s) / (1 + self.s) * math.pi / 2)  # noqa: E731
        return torch.sqrt((f(torch.zeros_like(t)) / f(t)) ** 2 - 1)

    def time(self, sigma):
        f0 = math.cos(self.s / (1 + self.s) * math.pi / 2)
        return torch.acos(f0 * torch.rsqrt(1 + sigma**2)) * 2 / math.pi * (1 + self.s) - self.s


class VE(NoiseSchedule):
    """Variance exploding (Song et al. 2021, SMLD): sigma(t) = sigma_min (sigma_max/sigma_min)^t, alpha = 1."""

    scaling = "ve"

    def __init__(self, sigma_min=0.01, sigma_max=50.0):
        super().__init__()
        self.s_min, self.s_max, self.t_min, self.t_max = sigma_min, sigma_max, 0.0, 1.0

    def edm_sigma(self, t):
        return self.s_min * (self.s_max / self.s_min) ** t

    def time(self, sigma):
        return torch.log(sigma / self.s_min) / math.log(self.s_max / self.s_min)


class EDM(NoiseSchedule):
    """Karras et al. 2022: sigma(t) = t, s(t) = 1, t in [0.002, 80]; trained with log-normal sigma, never t uniform."""

    scaling = "ve"
    uniform_time = False

    def __init__(self, sigma_min=0.002, sigma_max=80.0):
        super().__init__()
        self.t_min, self.t_max = sigma_min, sigma_max

    def edm_sigma(self, t):
        return torch.as_tensor(t) * 1.0

    def time(self, sigma):
        return torch.as_tensor(sigma) * 1.0


class Flow(NoiseSchedule):
    """Flow matching / rectified flow, cond-OT path x_t = (1 - t) x0 + t eps (Lipman et al. 2023;
    Liu et al. 2023): the lecture's x_t = t x1 + (1 - t) x0 with t -> 1 - t. sigma_edm = t/(1 - t).

    The default range keeps t away from 1, where sigma_edm is infinite: sigma in [0.002, 80].
    """

    scaling = "flow"

    def __init__(self, sigma_min=0.002, sigma_max=80.0):
        super().__init__()
        self.t_min, self.t_max = sigma_min / (1 + sigma_min), sigma_max / (1 + sigma_max)

    def edm_sigma(self, t):
        return t / (1 - t)

    def time(self, sigma):
        return sigma / (1 + sigma)


class MonotoneLinear(nn.Linear):
    """A linear layer with positive weights (softplus), so the map it builds is monotone."""

    def forward(self, x):
        return nn.functional.linear(x, nn.functional.softplus(self.weight), self.bias)


class LearnedVP(NoiseSchedule):
    """Learned VP schedule of VDM (Kingma et al. 2021, eq. 14 and App. H): gamma(t) = -lambda(t) is
    a monotone network rescaled to the end points gamma_0 = 2 log sigma_min, gamma_1 = 2 log sigma_max.

    Its shape is trained to minimise the variance of the diffusion loss (`training.train_step`). The
    end points stay fixed: VDM learns them from the prior and reconstruction terms of the likelihood
    bound, which a study of sample quality does not train, and variance alone would collapse them.
    """

    def __init__(self, sigma_min=0.002, sigma_max=80.0, hidden=1024):
        super().__init__()
        self.t_min, self.t_max = 0.0, 1.0
        self.register_buffer("gamma_ends", torch.tensor([2 * math.log(sigma_min), 2 * math.log(sigma_max)]))
        self.l1 = MonotoneLinear(1, 1)
        self.l2 = MonotoneLinear(1, hidden)
        self.l3 = MonotoneLinear(hidden, 1)
        nn.init.constant_(self.l3.weight, -10.0)  # softplus(-10) ~ 0: starts linear in log-SNR

    def _gamma_tilde(self, t):
        h = self.l1(t[..., None])
        return (h + self.l3(torch.sigmoid(self.l2(h))))[..., 0]

    def gamma(self, t):
        t = torch.as_tensor(t, dtype=self.gamma_ends.dtype)
        ends = self._gamma_tilde(torch.tensor([0.0, 1.0], dtype=t.dtype, device=t.device))
        unit = (self._gamma_tilde(t) - ends[0]) / (ends[1] - ends[0])
        return self.gamma_ends[0] + (self.gamma_ends[1] - self.gamma_ends[0]) * unit

    def edm_sigma(self, t):
        return torch.exp(self.gamma(t) / 2)

    def importance(self, t):
        """|d lambda/dt| / (lambda range): turns uniform t into uniform log-SNR (VDM eq. 18, Kingma & Gao
        2023 eq. 7), so the expected loss does not change with the shape and only its variance does."""
        t = t.detach().requires_grad_(True)
        with torch.enable_grad():
            slope = torch.autograd.grad(self.gamma(t).sum(), t, create_graph=True)[0]
        return slope / (self.gamma_ends[1] - self.gamma_ends[0])

    @torch.no_grad()
    def time(self, sigma):
        """Inverse of the monotone gamma by bisection, one halving per bit of the dtype."""
        gamma = 2 * torch.log(torch.as_tensor(sigma, dtype=self.gamma_ends.dtype))
        low, high = torch.zeros_like(gamma), torch.ones_like(gamma)
        for _ in range(torch.finfo(gamma.dtype).bits):
            mid = (low + high) / 2
            below = self.gamma(mid) < gamma
            low, high = torch.where(below, mid, low), torch.where(below, high, mid)
        return (low + high) / 2


NOISE_SCHEDULES = {
    "ddpm": DDPM,
    "vp_linear": VPLinear,
    "vp_cosine": VPCosine,
    "ve": VE,
    "edm": EDM,
    "flow": Flow,
    "learned": LearnedVP,
}
