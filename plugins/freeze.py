"""Built-in method `freeze`: only the last K transformer layers are trained (optionally unfrozen gradually).

Registered through the entry point `advisor.plugins.freeze`. With gradual
unfreezing (ULMFiT-style, seed 000 §2) the last layer trains first and one more
layer joins each epoch until K train; the optimizer holds all K from the start,
so the peak footprint is that of K layers.
"""

from typing import Any

from pydantic import Field, model_validator

from advisor import Footprint, Method, MethodHyperparameters, hookimpl
from advisor.architecture import Architecture
from advisor.errors import UserError

from ._peft_common import check_task_type, is_classifier_head, layer_index


class FreezeHyperparameters(MethodHyperparameters):
    trainable_layers: int = Field(2, ge=1, le=512, description="how many of the last transformer layers are trained")
    gradual_unfreezing: bool = Field(
        False, description="start with the last layer and unfreeze one more per epoch, up to trainable_layers"
    )

    @model_validator(mode="after")
    def _gradual_needs_layers(self) -> "FreezeHyperparameters":
        if self.gradual_unfreezing and self.trainable_layers < 2:
            raise ValueError("gradual_unfreezing needs trainable_layers >= 2 (one layer has nothing to unfreeze)")
        return self


def _check_layers(num_layers: int, hp: FreezeHyperparameters) -> None:
    if hp.trainable_layers > num_layers:
        raise UserError(
            f"invalid value {hp.trainable_layers} for 'trainable_layers': the model has {num_layers} layers"
        )


def _layer_parameters(model: Any) -> dict[int, list[Any]]:
    """The model's parameters grouped by the transformer layer they belong to."""
    layers: dict[int, list[Any]] = {}
    for name, parameter in model.named_parameters():
        index = layer_index(name)
        if index is not None:
            layers.setdefault(index, []).append(parameter)
    return layers


def _set_trainable_layers(layers: dict[int, list[Any]], count: int) -> None:
    """requires_grad on the parameters of the last `count` layers only."""
    last = sorted(layers)[-count:] if count else []
    for index, parameters in layers.items():
        for parameter in parameters:
            parameter.requires_grad_(index in last)


class FreezeLayers(Method):
    Hyperparameters = FreezeHyperparameters

    def footprint(self, arch: Architecture, hp: FreezeHyperparameters) -> Footprint:
        _check_layers(arch.num_layers, hp)
        # The final norm stays frozen, as in the calibration's freeze2 recipe.
        return Footprint(
            trainable_params=arch.top_layers_params(hp.trainable_layers),
            backward_layers=hp.trainable_layers,
            storage_params=arch.total_params(),  # the saved model is a full checkpoint
        )

    def build(self, model: Any, hp: FreezeHyperparameters, task_type: str = "CAUSAL_LM") -> Any:
        check_task_type(task_type)
        layers = _layer_parameters(model)
        _check_layers(len(layers), hp)
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(task_type == "SEQ_CLS" and is_classifier_head(name))
        _set_trainable_layers(layers, hp.trainable_layers)
        return model

    def training_callbacks(self, model: Any, hp: FreezeHyperparameters) -> list[Any]:
        if not hp.gradual_unfreezing:
            return []
        from transformers import TrainerCallback

        layers = _layer_parameters(model)

        class GradualUnfreezing(TrainerCallback):
            """Epoch e trains the last e+1 layers (at most trainable_layers); frozen ones get no gradient."""

            def on_epoch_begin(self, args, state, control, **kwargs):
                epoch = int(state.epoch or 0)
                _set_trainable_layers(layers, min(hp.trainable_layers, epoch + 1))

        return [GradualUnfreezing()]


METHOD = FreezeLayers(
    name="freeze",
    description="Layer freezing: train only the last K transformer layers (optionally unfrozen one per epoch)",
    family="partial",
    mergeable=True,
    capacity=2,
    learning_rate=(1e-5, 1e-4),
    source="000_df4a6b7376d2b11b.txt §2 Layer Freezing Strategies",
)


@hookimpl
def advisor_register_methods(register):
    register(METHOD)
