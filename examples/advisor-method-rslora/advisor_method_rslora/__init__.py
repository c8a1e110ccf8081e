"""rsLoRA as an advisor method plugin: LoRA with the update scaled by alpha / sqrt(r) instead of alpha / r.

With alpha / r the update shrinks as the rank grows, so high ranks learn
slowly; rank-stabilised scaling (Kalajdzievski 2023) keeps them useful. The
parameters are LoRA's, so the footprint is too; only peft's LoraConfig gets
`use_rslora=True`.

advisor imports this module through the entry point in pyproject.toml
(`[project.entry-points.advisor] rslora = "advisor_method_rslora"`) and calls
`advisor_register_methods`. Keep imports here light: `advisor plugins` and
`advisor plan` import this module; peft is imported only when `build` runs.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from advisor import Footprint, hookimpl
from advisor.architecture import Architecture
from advisor.plugins.lora import LoRA, LoraHyperparameters

__version__ = "0.1.0"


class RsLoraHyperparameters(LoraHyperparameters):
    """LoRA's settings; only the meaning of alpha changes."""

    alpha: float = Field(32, gt=0, le=4096, description="scaling numerator: the update is scaled by alpha / sqrt(r)")


class RsLoRA(LoRA):
    Hyperparameters = RsLoraHyperparameters
    #: Passed to peft's LoraConfig by LoRA.build.
    peft_options: ClassVar[dict[str, Any]] = {"use_rslora": True}

    def footprint(self, arch: Architecture, hp: RsLoraHyperparameters) -> Footprint:
        # Same A and B matrices as LoRA: the scale is a constant, not a parameter.
        return super().footprint(arch, hp)


METHOD = RsLoRA(
    name="rslora",
    description="rsLoRA: LoRA scaled by alpha/sqrt(r), so high ranks keep learning; mergeable like LoRA",
    family="reparameterisation",
    mergeable=True,
    capacity=3,
    learning_rate=(1e-4, 3e-4),
    source="Kalajdzievski 2023, rsLoRA (arXiv:2312.03732); peft LoraConfig(use_rslora=True)",
)


@hookimpl
def advisor_register_methods(register):
    """Give advisor the one method this package provides."""
    register(METHOD)
