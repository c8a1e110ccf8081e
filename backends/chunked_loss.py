"""The causal-LM loss without the full logits: liger-kernel's fused linear cross-entropy, or a chunked twin.

With a 128K-256K vocabulary the logits of one micro-batch ([tokens x vocab],
upcast to fp32 by transformers' ForCausalLMLoss, then two fp32 gradients of
that size in the backward) can be the largest thing a step holds.

- On CUDA with liger-kernel installed, the Trainer applies liger's fused linear
  cross-entropy itself (TrainingArguments.use_liger_kernel, see
  `liger_config`): no logits are materialised.
- Elsewhere, `install_chunked_loss` gives the model a training forward that
  runs the LM head and the cross-entropy over chunks of tokens, each chunk
  recomputed in the backward (torch.utils.checkpoint), so at most one chunk's
  logits exist at a time. This is a hand-written twin of liger's kernel, kept
  because liger needs triton and CUDA (its kernels are triton; neither runs on
  the CPU, where our tests and the CPU backend train). Measured on the CPU
  (benchmarks/fused_loss.py: a llama-shaped model, 128K vocabulary, LoRA, one
  row of 2048 tokens, fp32): the step's peak above its start was 3020 MiB with
  transformers' loss (one fp32 copy of the logits is 1002 MiB) and 215 MiB
  with the chunked one, at the same losses (within 1e-6).

The chunked loss is the standard one, summed chunk by chunk: labels shift by
one with -100 padding (so packed rows, whose examples each start with -100,
never score across a boundary; chat SFT's masked prompts stay masked), and
the sum is divided by the Trainer's `num_items_in_batch` under gradient
accumulation, else by the labelled tokens of the batch, as
`transformers.loss.loss_utils.ForCausalLMLoss` does. The head is the model's
own output-embedding module, called per chunk: a tied embedding, a bias or a
LoRA layer on the head work as they do in the model's forward. Evaluation and
generation (model.eval(), or no labels) run the model's own forward.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

from ..estimate.activations import loss_chunk_tokens

#: The kernels the liger path turns on: the fused loss only (the others change more than the loss's memory).
LIGER_CONFIG = {"fused_linear_cross_entropy": True, "cross_entropy": False, "rope": False, "rms_norm": False,
                "swiglu": False}
IGNORE_INDEX = -100


def liger_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("liger_kernel") is not None


def fused_loss_kind(fused: Optional[bool], kind: str, device_kind: str) -> Optional[str]:
    """'liger', 'chunked' or None (the standard loss) for a causal-LM run with the plan's setting."""
    if not fused or kind != "causal_lm":
        return None
    return "liger" if device_kind == "cuda" and liger_available() else "chunked"


def chunked_cross_entropy(
    head: Any, hidden: Any, labels: Optional[Any] = None, num_items_in_batch: Optional[Any] = None,
    shift_labels: Optional[Any] = None, softcap: Optional[float] = None, chunk: Optional[int] = None,
) -> Any:
    """ForCausalLMLoss(head(hidden), labels), one chunk of tokens at a time."""
    import torch
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    if shift_labels is None:
        shift_labels = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
    flat_hidden = hidden.reshape(-1, hidden.shape[-1])
    flat_labels = shift_labels.reshape(-1).to(hidden.device)
    vocab = getattr(head, "out_features", None) or head.weight.shape[0]
    size = chunk or loss_chunk_tokens(flat_hidden.shape[0], flat_hidden.shape[-1], vocab)

    def chunk_loss(states: Any, targets: Any) -> Any:
        logits = head(states).float()
        if softcap:  # Gemma 2's final logit soft-capping, as its forward applies it
            logits = torch.tanh(logits / softcap) * softcap
        return F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")

    total = flat_hidden[:0].float().sum()  # 0, but on the graph even where no chunk is scored
    for start in range(0, flat_hidden.shape[0], size):
        targets = flat_labels[start:start + size]
        if not bool((targets != IGNORE_INDEX).any()):
            continue  # nothing scored here (a masked prompt): no logits to make
        total = total + checkpoint(
            chunk_loss, flat_hidden[start:start + size], targets, use_reentrant=False,
            preserve_rng_state=False,  # nothing random in a head and a loss: no RNG state kept per chunk
        )
    if num_items_in_batch is None:
        return total / (flat_labels != IGNORE_INDEX).sum()
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


def install_chunked_loss(model: Any, chunk: Optional[int] = None) -> Any:
    """Give `model`'s causal-LM (under a peft wrapper too) a training forward with the chunked loss
    (`chunk` tokens per chunk; default `loss_chunk_tokens`)."""
    from transformers.modeling_outputs import CausalLMOutputWithPast
    from transformers.trainer_utils import unwrap_peft_model

    lm = unwrap_peft_model(model)  # LoRA layers sit inside it: the chunks run through them
    original = lm.forward
    softcap = getattr(lm.config, "final_logit_softcapping", None)

    @functools.wraps(original)  # the Trainer reads the signature: columns kept, loss kwargs accepted
    def forward(*args: Any, **kwargs: Any) -> Any:
        labels = kwargs.pop("labels", None)
        if not lm.training or labels is None or args or kwargs.get("logits_to_keep"):
            return original(*args, labels=labels, **kwargs)
        loss_kwargs = {key: kwargs.pop(key, None) for key in ("num_items_in_batch", "shift_labels")}
        kwargs.pop("logits_to_keep", None)
        outputs = lm.base_model(**kwargs)
        loss = chunked_cross_entropy(lm.get_output_embeddings(), outputs[0], labels, softcap=softcap, chunk=chunk,
                                    **loss_kwargs)
        return CausalLMOutputWithPast(loss=loss)

    lm.forward = forward
    return model
