"""What an encoder can be trained for here: a sequence classifier, and nothing else.

An encoder (BERT, MiniLM: `Architecture.kind == "encoder"`) is pre-trained to
fill in masked tokens while seeing both sides of them, not to continue text,
so it cannot be given a task that trains a language-model head (generation,
instruction, chat, code, QA, summaries, preference pairs) nor continued
pre-training on a corpus, which is next-token training here. NER on an
encoder is token classification (one label per token,
AutoModelForTokenClassification), which no backend path trains yet; a
decoder learns NER by generating the entities. `advisor plan` refuses such a
profile and `advisor execute` such a plan, each in one line naming what to
change (a flag, or a plan.json key).
"""

from __future__ import annotations

from typing import Optional

from .errors import UserError
from .facts import CPT_MIN_TOKENS
from .knowledge_base import ModelEntry
from .models import Profile

#: The only task an encoder trains here.
ENCODER_TASK = "classification"
#: A decoder to suggest instead: the one a plan gets when no --model is given.
SUGGESTED_DECODER = Profile.model_fields["model"].default


def encoder_refusal(task: str, corpus_pretraining: bool = False, default_task: bool = False) -> Optional[str]:
    """Why an encoder cannot train `task` (after continued pre-training on a corpus, if asked), or None."""
    if task == "ner":
        return ("NER on an encoder is token classification (one label per token), which advisor does not support "
                "yet; a decoder learns NER by generating the entities")
    if task != ENCODER_TASK:
        named = f"task '{task}'" + (" (the default)" if default_task else "")
        return (f"{named} trains a language-model head to generate text, and an encoder is pre-trained to fill "
                "in masked tokens, not to continue text")
    if corpus_pretraining:
        return ("continued pre-training on the corpus is next-token training, which an encoder cannot do "
                "(masked-language-model pre-training is not supported)")
    return None


def refuse_encoder_profile(profile: Profile, model: ModelEntry) -> None:
    """UserError, naming the flags to change, when `profile` asks an encoder for what it cannot train here."""
    if model.architecture.kind != "encoder":
        return
    corpus = (profile.corpus_tokens or 0) >= CPT_MIN_TOKENS
    reason = encoder_refusal(profile.task, corpus, default_task="task" not in profile.model_fields_set)
    if reason is None:
        return
    keep = ("Drop --corpus-tokens to plan the classifier alone" if profile.task == ENCODER_TASK
            else f"An encoder trains a sequence classifier here (--task {ENCODER_TASK})")
    raise UserError(f"{profile.model} is an encoder: {reason}. {keep}, or choose a decoder "
                    f"for --task {profile.task}, e.g. --model {SUGGESTED_DECODER} (`advisor models` lists them)")


def refuse_encoder_plan(task: str, model_name: str, model: ModelEntry) -> None:
    """UserError, naming the plan.json keys, when a (hand-edited) plan trains an encoder for another task."""
    if model.architecture.kind != "encoder":
        return
    reason = encoder_refusal(task)
    if reason is not None:
        raise UserError(
            f"plan.json profile.model '{model_name}' is an encoder and profile.task is '{task}': {reason}. An encoder "
            f"trains a sequence classifier here (profile.task '{ENCODER_TASK}', with text,label data); plan again "
            f"(`advisor plan --task {ENCODER_TASK}`, or a decoder such as --model {SUGGESTED_DECODER})"
        )
