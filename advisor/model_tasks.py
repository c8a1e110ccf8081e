"""Which tasks a model can be trained for here: the refusals of a task the model cannot learn.

An encoder (BERT, MiniLM: `Architecture.kind == "encoder"`) is pre-trained to
fill in masked tokens while seeing both sides of them, not to continue text,
so it cannot be given a task that trains a language-model head (generation,
instruction, chat, code, QA, summaries, preference pairs) nor continued
pre-training on a corpus, which is next-token training here. NER on an
encoder is token classification (one label per token,
AutoModelForTokenClassification), which no backend path trains yet; a
decoder learns NER by generating the entities.

A vision-language task trains on images with their text, so it needs a model
with a vision tower (`Architecture.vision_params`: Gemma 3 from 4B, or a
local directory whose config.json has a vision_config); a text-only model has
nothing to see the images with.

`advisor plan` refuses such a profile and `advisor execute` such a plan, each
in one line naming what to change (a flag, or a plan.json key).

`advisor execute` reads text records only, so a vision-language plan (on a
model that sees images) is advice for the user's own image-and-text training
code: the plan says so in a warning, and execute refuses it in one line.
"""

from __future__ import annotations

from typing import Optional

from .errors import UserError
from .facts import CPT_MIN_TOKENS
from .knowledge_base import ModelEntry, models
from .models import Profile

#: The only task an encoder trains here.
ENCODER_TASK = "classification"
#: A decoder to suggest instead: the one a plan gets when no --model is given.
SUGGESTED_DECODER = Profile.model_fields["model"].default
VISION_TASK = "vision-language"


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


def vision_refusal(task: str, model: ModelEntry) -> Optional[str]:
    """Why `model` cannot train `task` for want of a vision tower, or None."""
    if task != VISION_TASK or model.architecture.vision_params:
        return None
    return f"task '{VISION_TASK}' trains on images with their text, and it has no vision tower to see them"


def vision_models() -> str:
    """The models a vision-language task can use, as a person reads them."""
    seeing = ", ".join(entry.id for entry in models().values() if entry.architecture.vision_params)
    return f"{seeing} in the catalog, or a local directory whose config.json has a vision_config"


def refuse_untrainable_task(profile: Profile, model: ModelEntry) -> None:
    """UserError, naming the flags to change, when `profile` asks the model for a task it cannot train here."""
    if model.architecture.kind != "encoder":
        reason = vision_refusal(profile.task, model)
        if reason:
            raise UserError(f"{profile.model} is a text-only model: {reason}. Choose a vision-language --model "
                            f"({vision_models()}), or another --task")
        return
    corpus = (profile.corpus_tokens or 0) >= CPT_MIN_TOKENS
    reason = encoder_refusal(profile.task, corpus, default_task="task" not in profile.model_fields_set)
    if reason is None:
        return
    keep = ("Drop --corpus-tokens to plan the classifier alone" if profile.task == ENCODER_TASK
            else f"An encoder trains a sequence classifier here (--task {ENCODER_TASK})")
    raise UserError(f"{profile.model} is an encoder: {reason}. {keep}, or choose a decoder "
                    f"for --task {profile.task}, e.g. --model {SUGGESTED_DECODER} (`advisor models` lists them)")


#: What advisor execute cannot do for a vision-language plan, as the plan warns and execute refuses.
TEXT_ONLY_EXECUTE = ("advisor execute reads text records only (alpaca, chat, text, classification and preference "
                     "files), no images yet")


def execute_warnings(task: str) -> list[str]:
    """What the plan tells a person whose task `advisor execute` cannot run."""
    if task != VISION_TASK:
        return []
    return [f"{TEXT_ONLY_EXECUTE}, so it will not run this plan: its method and settings are advice for your own "
            "image-and-text training code, and its memory estimate counts the vision tower's weights but not its "
            "activations (the language model's, image tokens within seq_len included, are counted)."]


def refuse_untrainable_plan(task: str, model_name: str, model: ModelEntry) -> None:
    """UserError, naming the plan.json keys, when a (hand-edited) plan trains a model for a task it cannot."""
    if model.architecture.kind != "encoder":
        reason = vision_refusal(task, model)
        if reason:
            raise UserError(f"plan.json profile.model '{model_name}' is a text-only model and profile.task is "
                            f"'{task}': {reason}. Plan again with a vision-language model ({vision_models()}), "
                            "or another task")
        if task == VISION_TASK:
            raise UserError(f"plan.json profile.task is '{task}' and {TEXT_ONLY_EXECUTE}: train {model_name} with "
                            "your own image-and-text code from the plan's method and settings, or plan a text task")
        return
    reason = encoder_refusal(task)
    if reason is not None:
        raise UserError(
            f"plan.json profile.model '{model_name}' is an encoder and profile.task is '{task}': {reason}. An encoder "
            f"trains a sequence classifier here (profile.task '{ENCODER_TASK}', with text,label data); plan again "
            f"(`advisor plan --task {ENCODER_TASK}`, or a decoder such as --model {SUGGESTED_DECODER})"
        )
