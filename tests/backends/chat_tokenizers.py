"""Tiny offline tokenizers of the big chat families, with their real chat templates and special tokens.

`chat_tokenizer("llama3.1")` is a byte-level BPE (a few hundred tokens, trained
here on a small corpus, no download) that carries the family's published chat
template (tests/fixtures/chat_templates/, each file names its source) and its
special tokens as the family sets them: which is BOS/EOS/pad, and whether
`tokenizer(text)` puts BOS in front (the post-processor of Llama 3, Mistral and
Gemma does; Qwen has no BOS). The vocabulary is not the family's, the
templates and special-token behaviour are: that is what chat SFT must match.

`save_tiny_chat_model(family, directory)` writes a 2-layer Llama (vocab = the
tokenizer's size) with such a tokenizer, ready for `advisor execute` and for
reloading with plain transformers/peft.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates"

#: Words the tests' conversations use; the BPE is trained on them so they are a few tokens each.
WORDS = (
    "you are a terse helpful assistant name the colour of sky grass sea sun plum snow coal it is blue green "
    "white black red yellow and what about today think reasoning answer first second question Hello Hi there "
    "system user assistant model Cutting Knowledge Date December 2023 Today 26 Jul 2024 Environment ipython "
    "Qwen created by Alibaba Cloud"
).split()


@dataclass(frozen=True)
class ChatFamily:
    template: str  # file under tests/fixtures/chat_templates
    eos: str
    bos: str | None = None
    pad: str | None = None
    unk: str | None = None
    control: tuple[str, ...] = ()  # the family's other special tokens
    plain_added: tuple[str, ...] = ()  # added tokens that are not special (Qwen3's <think>)
    adds_bos: bool = False  # tokenizer(text) puts BOS in front
    end_of_turn: str = field(default="")  # what closes an assistant turn in the template (for tests)


_LLAMA3_CONTROL = ("<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|python_tag|>",
                   "<|finetune_right_pad_id|>")
_QWEN_CONTROL = ("<|endoftext|>", "<|im_start|>")
_MISTRAL_CONTROL = ("[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]",
                    "[/TOOL_RESULTS]")
_GEMMA_CONTROL = ("<start_of_turn>", "<end_of_turn>")

FAMILIES: dict[str, ChatFamily] = {
    # Llama 3.1/3.2 Instruct: BOS <|begin_of_text|> added by the post-processor AND written by the template.
    "llama3.1": ChatFamily("llama3_1.jinja", eos="<|eot_id|>", bos="<|begin_of_text|>", control=_LLAMA3_CONTROL,
                           adds_bos=True, end_of_turn="<|eot_id|>"),
    "llama3.2": ChatFamily("llama3_2.jinja", eos="<|eot_id|>", bos="<|begin_of_text|>", control=_LLAMA3_CONTROL,
                           adds_bos=True, end_of_turn="<|eot_id|>"),
    "qwen2.5": ChatFamily("qwen2_5.jinja", eos="<|im_end|>", pad="<|endoftext|>", control=_QWEN_CONTROL,
                          end_of_turn="<|im_end|>"),
    "qwen3": ChatFamily("qwen3.jinja", eos="<|im_end|>", pad="<|endoftext|>", control=_QWEN_CONTROL,
                        plain_added=("<think>", "</think>"), end_of_turn="<|im_end|>"),
    # Mistral v0.3 (v3 tokenizer): <s> from the post-processor and from the template.
    "mistral": ChatFamily("mistral_v0_3.jinja", eos="</s>", bos="<s>", unk="<unk>", control=_MISTRAL_CONTROL,
                          adds_bos=True, end_of_turn="</s>"),
    "gemma2": ChatFamily("gemma2.jinja", eos="<eos>", bos="<bos>", pad="<pad>", unk="<unk>", control=_GEMMA_CONTROL,
                         adds_bos=True, end_of_turn="<end_of_turn>"),
    "gemma3": ChatFamily("gemma3.jinja", eos="<eos>", bos="<bos>", pad="<pad>", unk="<unk>", control=_GEMMA_CONTROL,
                         adds_bos=True, end_of_turn="<end_of_turn>"),
}


def chat_template(family: str) -> str:
    """The family's published template, exactly (the fixture's first line, naming its source, dropped)."""
    text = (TEMPLATES / FAMILIES[family].template).read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    assert first.startswith("{#- Source:"), f"{family}: the fixture must start with its source"
    return rest


def chat_tokenizer(family: str, vocab_size: int = 600) -> Any:
    """A byte-level BPE fast tokenizer with `family`'s chat template and special tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    spec = FAMILIES[family]
    specials = [token for token in (spec.bos, spec.eos, spec.pad, spec.unk) if token] + list(spec.control)
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [" ".join(WORDS), "\n".join(WORDS), "\n\n".join(WORDS)] * 4
    core.train_from_iterator(corpus, trainer=trainer)
    if spec.plain_added:
        core.add_tokens([AddedToken(token, special=False, normalized=False) for token in spec.plain_added])
    if spec.adds_bos:
        core.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos} $A", pair=f"{spec.bos} $A {spec.bos} $B",
            special_tokens=[(spec.bos, core.token_to_id(spec.bos))])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=spec.bos, eos_token=spec.eos, pad_token=spec.pad, unk_token=spec.unk,
        extra_special_tokens=list(spec.control),
    )
    tokenizer.chat_template = chat_template(family)
    return tokenizer


def save_tiny_chat_model(family: str, directory: Path, seed: int = 0) -> Path:
    """A 2-layer Llama (hidden 32) sized to `family`'s tiny tokenizer, saved with it like a downloaded model."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = chat_tokenizer(family)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
