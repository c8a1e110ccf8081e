"""What a fine-tuning method is, as the rest of advisor sees it.

A method plugin registers one `Method` per method (through the
`advisor_register_methods` hook, see hookspecs.py). The planner's rules read
its metadata (family, mergeable, requires_cuda, capacity), the estimator reads
its `footprint` for an architecture, and the backends call `build` to turn a
base model into the trainable one. Nothing here imports torch: `build`
imports what it needs when it runs.
"""

from typing import Any, ClassVar, Iterator, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from .architecture import Architecture
from .models import StrictModel
from .precision import Dtypes

MethodFamily = Literal["full", "partial", "additive", "reparameterisation", "soft-prompt"]
#: The model head a plan trains: a language-model head (causal LM) or a sequence-classification head.
Head = Literal["lm", "classification"]


class MethodHyperparameters(StrictModel):
    """Base of every method's own settings (rank, virtual tokens, layers...): unknown keys, infinities,
    and booleans for numbers (or numbers for booleans) refused, like every input model."""


class Footprint(BaseModel):
    """What a method does to one architecture: the estimator's whole view of the method."""

    model_config = ConfigDict(extra="forbid")

    trainable_params: int = Field(ge=0, description="parameters that receive gradients and optimizer state")
    added_params: int = Field(0, ge=0, description="parameters the method adds to the base model")
    quantized_base: bool = Field(False, description="the base's layer linears are stored 4-bit NF4 (double quant)")
    upcast_unquantized_fp32: bool = Field(
        False, description="prepare_model_for_kbit_training casts non-quantised parameters to fp32"
    )
    backward_layers: Optional[int] = Field(
        None, ge=0, description="top layers the backward pass runs through (None: all layers)"
    )
    virtual_tokens: int = Field(0, ge=0, description="soft-prompt tokens added to each sequence")
    virtual_tokens_in: Literal["sequence", "kv"] = Field(
        "sequence", description="prompt tuning lengthens the sequence; prefix tuning only the keys/values"
    )
    adapted_linears: list[str] = Field(
        [], description="layer linears (LinearSpec.name) that carry an adapter"
    )
    adapted_experts: dict[str, int] = Field(
        {},
        description="MoE expert weights (3D parameters) peft's ParamWrapper adapts: "
        "name -> rank of each expert's update",
    )
    adapter_rank: int = Field(0, ge=0, description="the adapter's inner width (LoRA r, bottleneck size)")
    adapter_kind: Literal["lora", "dora", "ia3", "bottleneck"] = Field(
        "lora", description="what the adapted linears compute, which sets what they keep for the backward pass"
    )
    adapter_dropout: float = Field(
        0.0, ge=0, lt=1, description="dropout on the adapters' input (peft skips it, and its mask, at 0)"
    )
    input_scaled_linears: list[str] = Field(
        [], description="IA3: adapted linears whose input (not output) is rescaled"
    )
    forces_gradient_checkpointing: bool = False
    scope: str = Field(
        "", description="what the method adapts on this model, in one sentence, where its description does not say "
        "(a mixture-of-experts model's experts and router); the plan's summary carries it"
    )
    storage_params: Optional[int] = Field(
        None, description="parameters saved per task (default: trainable_params)"
    )
    sequences_per_example: int = Field(
        1, ge=1, description="sequences one example puts through the model per step (preference pairs: 2)"
    )
    reference_copy: bool = Field(
        False, description="a frozen copy of the base model scores the reference (full-parameter DPO)"
    )

    @property
    def freezes_base_weights(self) -> bool:
        """Base weights stay frozen: all of them (only what the method adds trains: adapters, prompts) or all
        but the top `backward_layers` (freeze). Frozen weights may load in fp16 (advisor.precision)."""
        return self.trainable_params <= self.added_params or self.backward_layers is not None


class MethodInfo(BaseModel):
    """What a method says about itself: the fields a plugin passes when it constructs its Method."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_\-]*$", description="the name plans and flags use")
    description: str
    family: MethodFamily
    mergeable: bool = Field(description="can be merged into the base weights: no added inference latency")
    requires_cuda: bool = Field(False, description="needs a CUDA GPU (e.g. 4-bit bitsandbytes)")
    quantized: bool = Field(False, description="trains on a quantised base to save memory")
    capacity: int = Field(
        3, ge=1, le=4,
        description="how much the method can change the model: 1 soft prompts/IA3 .. 4 full fine-tuning",
    )
    learning_rate: tuple[float, float] = Field(description="usual learning-rate range for this method")
    plain_checkpoint: bool = Field(
        True, description="its saved model loads with plain transformers or peft; False: rebuild it with the "
        "plugin (advisor.backends.reload.load_trained), as for modules no transformers class has"
    )
    objective: Literal["supervised", "preference"] = Field(
        "supervised",
        description="what the method trains on: supervised examples (the Trainer's loss), or preference pairs "
        "(the TRL trainer `preference_trainer` names: DPO, and ORPO or KTO from a plugin)",
    )
    source: str = Field("", description="where the method and its defaults come from")


class Method:
    """A fine-tuning method. Plugins subclass it, construct it with MethodInfo's fields and implement two methods.

    The fields are validated by pydantic once, into `info`, and read as attributes (`method.family`). A Method
    itself is a plain class on purpose: every plugin subclasses it, and each pydantic subclass would build its
    own schema on every start (measured: 12 subclasses, about 50 M of the 1,180 M instructions of a cold
    `advisor plan`).
    """

    #: The pydantic model of this method's own hyperparameters (defaults and ranges).
    Hyperparameters: ClassVar[type[MethodHyperparameters]] = MethodHyperparameters

    def __init__(self, **fields: Any) -> None:
        object.__setattr__(self, "info", MethodInfo(**fields))

    def __getattr__(self, name: str) -> Any:  # called only for names the class and instance do not have
        if name in MethodInfo.model_fields and "info" in self.__dict__:
            return getattr(self.__dict__["info"], name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"method '{self.name}' is frozen: construct it with its fields instead")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, family={self.family!r})"

    # What plugins written when Method was a pydantic model use: `dict(method)`, model_dump and model_copy.
    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(self.info)

    def model_dump(self, **options: Any) -> dict[str, Any]:
        return self.info.model_dump(**options)

    def model_copy(self, update: Optional[dict[str, Any]] = None) -> "Method":
        """A method of the same class with some fields changed (validated again)."""
        return type(self)(**{**self.info.model_dump(), **(update or {})})

    @property
    def approach(self) -> Literal["peft", "full_finetune"]:
        return "full_finetune" if self.family == "full" else "peft"

    def hyperparameters(self, values: Optional[dict[str, Any]] = None) -> MethodHyperparameters:
        """Validate `values` (may be partial) into this method's hyperparameters."""
        return self.Hyperparameters.model_validate(values or {})

    def footprint(self, arch: Architecture, hp: MethodHyperparameters) -> Footprint:
        """What training this method on `arch` with `hp` costs (exact parameter counts)."""
        raise NotImplementedError

    def unavailable(self, arch: Architecture, head: Head) -> Optional[str]:
        """Why this method cannot train `arch` with `head` at all, or None when it can.

        The planner asks before anything else and lists a method with a reason
        as unavailable (and refuses it under --method), so a method never
        fails at run time for a model or task it cannot serve. Settings that
        do not fit the model are `footprint`'s UserError, which the planner
        treats the same way.
        """
        return None

    def build(self, model: Any, hp: MethodHyperparameters, task_type: str = "CAUSAL_LM") -> Any:
        """Turn a loaded base model into the trainable model (peft wrap or freezing).

        `task_type` is peft's TaskType name: CAUSAL_LM or SEQ_CLS. Called only
        on the training path; heavy imports belong inside.
        """
        raise NotImplementedError

    def load_options(self, hp: MethodHyperparameters, dtypes: Dtypes) -> dict[str, Any]:
        """Extra keyword arguments for the base model's `from_pretrained` (e.g. qlora's 4-bit config).

        `dtypes` are the run's (advisor.precision: the plan's precision on this
        device). Called on the training path before `build`; heavy imports
        belong inside.
        """
        return {}

    def preference_trainer(self, hp: MethodHyperparameters) -> tuple[type, type, dict[str, Any]]:
        """A preference method's (TRL trainer class, its config class, config keyword arguments).

        The backend builds the config from the plan's training arguments plus
        these keywords, and the trainer with the model `build` returned, the
        tokenizer and the pairs in TRL's prompt/chosen/rejected layout.
        """
        raise NotImplementedError(f"method '{self.name}' trains on supervised examples, not preference pairs")

    def training_callbacks(self, model: Any, hp: MethodHyperparameters) -> list[Any]:
        """transformers TrainerCallbacks the method needs while training (e.g. gradual unfreezing)."""
        return []


def trainable_parameter_count(model: Any) -> int:
    """Parameters of a torch module that receive gradients: what `Footprint.trainable_params` predicts."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
