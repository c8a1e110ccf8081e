"""memo.by_footprint: an equal question is answered from memory, any difference is asked anew, and the function
runs with the footprint it was given."""

from advisor.architecture import Architecture
from advisor.estimate import memo
from advisor.methods import Footprint

ARCH = Architecture(family="llama", num_layers=2, hidden_size=64, intermediate_size=128, num_heads=4,
                    num_kv_heads=2, vocab_size=256, tied_embeddings=False)


class TaggedFootprint(Footprint):
    tag: str = "x"


def test_equal_questions_are_answered_once_and_every_difference_is_asked():
    asked = []

    @memo.by_footprint
    def answer(arch, fp, extra):
        asked.append((arch, fp, extra))
        return fp.trainable_params + extra

    lora = Footprint(trainable_params=10, adapted_linears=["q_proj"])
    assert answer(ARCH, lora, 1) == 11
    assert answer(ARCH, Footprint(trainable_params=10, adapted_linears=["q_proj"]), 1) == 11
    assert asked == [(ARCH, lora, 1)]  # once, with the very footprint given

    answer(ARCH, Footprint(trainable_params=10, adapted_linears=["k_proj"]), 1)
    answer(ARCH, lora, 2)
    answer(ARCH.model_copy(update={"num_layers": 3}), lora, 1)
    answer(ARCH, TaggedFootprint(trainable_params=10, adapted_linears=["q_proj"]), 1)
    assert len(asked) == 5
    assert answer(ARCH, lora, extra=1) == 11  # a keyword is another question, with the same answer
    assert len(asked) == 6


def test_memory_starts_over_when_full(monkeypatch):
    monkeypatch.setattr(memo, "KEPT", 2)
    asked = []

    @memo.by_footprint
    def answer(arch, fp):
        asked.append(fp.trainable_params)
        return fp.trainable_params

    for params in (1, 2, 3, 1):
        answer(ARCH, Footprint(trainable_params=params))
    assert asked == [1, 2, 3, 1]
