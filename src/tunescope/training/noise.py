"""GO training (Gaussian-noise objective, METHODS.md section 4): enlarge the basin around the weights.

Each optimizer step minimises L(theta + eps), eps ~ N(0, sigma^2 I), one draw per optimizer step
(shared by all micro-batches of a gradient-accumulation cycle), and applies the gradient
g = dL/dtheta evaluated at theta + eps to theta itself:
    theta_{t+1} = optimizer_step(theta_t, grad L(theta_t + eps_t)).
theta = the trainable parameters (requires_grad): with LoRA the noise moves the adapters, with full
fine-tuning every weight.

How: before the forward we swap each parameter's storage for theta + eps (`p.data = theta + eps`, a
new tensor) and keep the original tensor; after the backward, before the optimizer step, we swap the
original back. The weights the optimizer updates are therefore bit-identical to theta (no
`theta + eps - eps` rounding), and the gradient in p.grad is the one computed at theta + eps.
Usable from the HF Trainer (`GONoiseCallback`) or from any plain loop (`GaussianWeightNoise`).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import TrainerCallback

from tunescope.errors import UserError
from tunescope.training.addons import TRAINING_ADDONS, AddonBase, RunState
from tunescope.training.options import NoiseOptions  # noqa: F401  (re-exported)


class GaussianWeightNoise:
    """Adds eps ~ N(0, sigma^2 I) to `params` (perturb) and puts the exact originals back (restore).

    Draws come from a torch.Generator seeded with `seed`, in parameter order, so step t's eps is
    reproducible: draw t consumes sum(numel) normals.
    """

    def __init__(self, params: list[nn.Parameter], sigma: float, seed: int = 0) -> None:
        if not sigma > 0:
            raise UserError(f"bad value {sigma} for noise_sigma: expected a positive float (0 disables GO)")
        self.params = [p for p in params if p.requires_grad]
        self.sigma = float(sigma)
        self.generator = torch.Generator().manual_seed(seed)
        self._saved: list[torch.Tensor] | None = None
        self.draws = 0

    @property
    def active(self) -> bool:
        return self._saved is not None

    @torch.no_grad()
    def perturb(self) -> None:
        """theta -> theta + eps (new storage; the original tensors are kept aside untouched)."""
        if self._saved is not None:
            return  # already perturbed in this step: one draw per optimizer step
        saved = []
        for p in self.params:
            eps = torch.randn(p.shape, generator=self.generator, dtype=torch.float32).to(p.device, p.dtype)
            saved.append(p.data)
            p.data = p.data + self.sigma * eps
        self._saved = saved
        self.draws += 1

    @torch.no_grad()
    def restore(self) -> None:
        """theta + eps -> theta: the original tensors are swapped back (bit-exact)."""
        if self._saved is None:
            return
        for p, orig in zip(self.params, self._saved, strict=True):
            p.data = orig
        self._saved = None


class GONoiseCallback(TrainerCallback):
    """HF Trainer callback: perturb at step begin, restore right before the optimizer step.

    on_step_begin fires once per optimizer step (before the first micro-batch of an accumulation
    cycle); on_pre_optimizer_step fires after the backward passes and gradient clipping.
    """

    def __init__(self, model: nn.Module, sigma: float, seed: int = 0) -> None:
        self.noise = GaussianWeightNoise([p for p in model.parameters() if p.requires_grad], sigma, seed)

    def on_step_begin(self, args, state, control, **kwargs):
        self.noise.perturb()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.noise.restore()

    def on_train_end(self, args, state, control, **kwargs):
        self.noise.restore()  # never leave a noisy model behind (e.g. an interrupted cycle)


class GONoise(AddonBase):
    """Training add-on: GO training when the config's noise_sigma > 0 (results.json `go`)."""

    name = "go-noise"

    def enabled(self, config) -> bool:
        return float(getattr(config, "noise_sigma", 0.0) or 0.0) > 0

    def callbacks(self, run: RunState) -> list:
        callback = GONoiseCallback(run.model, run.config.noise_sigma, seed=int(run.config.seed))
        run.extras["go_callback"] = callback
        run.results["go"] = {"noise_sigma": run.config.noise_sigma,
                             "noisy_params": sum(p.numel() for p in callback.noise.params)}
        return [callback]

    def after_train(self, run: RunState) -> None:
        run.results["go"]["draws"] = run.extras["go_callback"].noise.draws  # one per optimizer step


TRAINING_ADDONS.register("go-noise", GONoise())
