"""Built-in method `adapter`: Houlsby bottleneck adapters, built on plain torch modules (peft has none).

Each transformer layer gets two small residual MLPs (hidden -> bottleneck ->
hidden), one after the attention output projection and one after the MLP
output projection, as in Houlsby et al. 2019; the base stays frozen. The up
projection starts at zero, so the model starts as the base model. Registered
through the entry point `advisor.plugins.adapter`.
"""

import functools
from typing import Any

from pydantic import Field

from advisor import Footprint, Method, MethodHyperparameters, hookimpl
from advisor.architecture import Architecture, LinearSpec
from advisor.errors import UserError

from ._peft_common import architecture_of, check_task_type, is_classifier_head, layer_index


class AdapterHyperparameters(MethodHyperparameters):
    bottleneck: int = Field(64, ge=1, le=8192, description="inner width of each adapter (smaller than the hidden size)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout inside each adapter, after the non-linearity")


#: The attention output projection's name in each layout (Phi-3 declares o_proj before its fused qkv_proj).
ATTENTION_OUTPUTS = ("o_proj", "c_proj", "dense")


def _output_projections(arch: Architecture) -> list[int]:
    """Indices in layer_linears() of the attention output projection and the MLP's last linear.

    A MoE layer's MLP output comes from its experts (3D parameters, not a module), so MoE models are refused.
    """
    if arch.is_moe:
        raise UserError(f"bottleneck adapters need a linear MLP output; a {arch.family} model's comes from its experts")
    linears = arch.layer_linears()
    attention = next(i for i, l in enumerate(linears) if l.role == "attention" and l.name in ATTENTION_OUTPUTS)
    mlp = max(i for i, l in enumerate(linears) if l.role == "mlp")
    return [attention, mlp]


def _adapter_params(hidden: int, bottleneck: int) -> int:
    return 2 * hidden * bottleneck + bottleneck + hidden  # down and up projections, with biases


@functools.cache
def _modules() -> tuple[type, type]:
    """The torch module classes, defined on first use so listing methods never imports torch."""
    from torch import nn

    class BottleneckAdapter(nn.Module):
        """x + up(dropout(gelu(down(x)))): a residual bottleneck MLP."""

        def __init__(self, hidden: int, bottleneck: int, dropout: float):
            super().__init__()
            self.down = nn.Linear(hidden, bottleneck)
            self.up = nn.Linear(bottleneck, hidden)
            self.activation = nn.GELU()
            self.dropout = nn.Dropout(dropout)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

        def forward(self, hidden_states):
            return hidden_states + self.up(self.dropout(self.activation(self.down(hidden_states))))

    class WithAdapter(nn.Module):
        """A frozen projection followed by its adapter."""

        def __init__(self, base: nn.Module, adapter: nn.Module):
            super().__init__()
            self.base = base
            self.adapter = adapter

        def forward(self, *args, **kwargs):
            return self.adapter(self.base(*args, **kwargs))

    return BottleneckAdapter, WithAdapter


def _layer_linear_modules(model: Any) -> dict[int, list[tuple[str, Any]]]:
    """(name, module) of every linear (nn.Linear or GPT-2 Conv1D) per transformer layer, in module order."""
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    layers: dict[int, list[tuple[str, Any]]] = {}
    for name, module in model.named_modules():
        index = layer_index(name + ".")
        if index is not None and isinstance(module, (nn.Linear, Conv1D)):
            layers.setdefault(index, []).append((name, module))
    return layers


class HoulsbyAdapter(Method):
    Hyperparameters = AdapterHyperparameters

    def footprint(self, arch: Architecture, hp: AdapterHyperparameters) -> Footprint:
        if hp.bottleneck >= arch.hidden_size:
            raise UserError(
                f"invalid value {hp.bottleneck} for 'bottleneck': must be smaller than the hidden size {arch.hidden_size}"
            )
        linears: list[LinearSpec] = arch.layer_linears()
        outputs = _output_projections(arch)
        params = arch.num_layers * len(outputs) * _adapter_params(arch.hidden_size, hp.bottleneck)
        return Footprint(
            trainable_params=params,
            added_params=params,
            adapted_linears=[linears[index].name for index in outputs],
            adapter_rank=hp.bottleneck,
            adapter_kind="bottleneck",
            adapter_dropout=hp.dropout,
        )

    def build(self, model: Any, hp: AdapterHyperparameters, task_type: str = "CAUSAL_LM") -> Any:
        check_task_type(task_type)
        arch = architecture_of(model)
        self.footprint(arch, hp)  # refuses a bottleneck that is no bottleneck
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(task_type == "SEQ_CLS" and is_classifier_head(name))
        BottleneckAdapter, WithAdapter = _modules()
        expected = arch.layer_linears()
        for index, modules in sorted(_layer_linear_modules(model).items()):
            if len(modules) != len(expected):
                raise UserError(
                    f"layer {index} has {len(modules)} linear modules, expected {len(expected)} for a {arch.family} model"
                )
            for position in _output_projections(arch):
                name, projection = modules[position]
                weight = projection.weight
                adapter = BottleneckAdapter(arch.hidden_size, hp.bottleneck, hp.dropout).to(weight.device, weight.dtype)
                parent_name, _, attribute = name.rpartition(".")
                setattr(model.get_submodule(parent_name), attribute, WithAdapter(projection, adapter))
        return model


METHOD = HoulsbyAdapter(
    name="adapter",
    description="Bottleneck adapters (Houlsby): small MLPs after attention and MLP; add latency, cannot be merged",
    family="additive",
    mergeable=False,
    plain_checkpoint=False,
    capacity=3,
    learning_rate=(1e-4, 1e-3),
    source="003_483fda984e781d7e.txt §2.3.3 Adapter Modules; 002_cb6d472d11844b9e.txt Adapter Layers; "
    "000_df4a6b7376d2b11b.txt §3 (Adapters: bottleneck layers)",
)


@hookimpl
def advisor_register_methods(register):
    register(METHOD)
