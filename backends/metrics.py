"""Evaluation metrics computed batch by batch, so evaluation never holds batch x seq x vocab logits.

`local.py` gives the Trainer `batch_eval_metrics=True`, `argmax_logits` as
`preprocess_logits_for_metrics` (each batch's logits become predicted ids
before anything is kept) and one of the scorers below as `compute_metrics`.
The Trainer then keeps no predictions at all; a scorer keeps only what its
metric needs: one predicted id and one label per example for classification
(macro-F1 needs them all), two counters for a language model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .tasks import IGNORE_INDEX


def argmax_logits(logits: Any, labels: Any) -> Any:
    """preprocess_logits_for_metrics: the predicted id per position, computed on the batch's device.

    Prompt tuning's logits are longer than the labels: peft puts the virtual
    tokens in front of the input, so the positions that match the labels are
    the last ones.
    """
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    if logits.dim() == 3 and labels is not None:
        logits = logits[:, logits.shape[1] - labels.shape[1]:]
    return logits.argmax(dim=-1)


def _numpy(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def score_classification(labels: Any, predictions: Any) -> dict[str, float]:
    """Accuracy and macro-F1 (scikit-learn) of predicted class ids."""
    from sklearn.metrics import accuracy_score, f1_score

    labels, predictions = _numpy(labels).reshape(-1), _numpy(predictions).reshape(-1)
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0)),
    }


class ClassificationScorer:
    """compute_metrics for sequence classification under batch_eval_metrics."""

    def __init__(self) -> None:
        self._predictions: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    def __call__(self, prediction: Any, compute_result: bool) -> dict[str, float]:
        self._predictions.append(_numpy(prediction.predictions).reshape(-1))
        self._labels.append(_numpy(prediction.label_ids).reshape(-1))
        if not compute_result:
            return {}
        result = score_classification(np.concatenate(self._labels), np.concatenate(self._predictions))
        self._predictions, self._labels = [], []
        return result


class TokenAccuracyScorer:
    """compute_metrics for a causal LM under batch_eval_metrics: next-token accuracy on loss-carrying tokens."""

    def __init__(self) -> None:
        self._correct = 0
        self._total = 0

    def __call__(self, prediction: Any, compute_result: bool) -> dict[str, float]:
        predicted = _numpy(prediction.predictions)[:, :-1]
        labels = _numpy(prediction.label_ids)[:, 1:]
        scored = labels != IGNORE_INDEX
        self._correct += int((predicted[scored] == labels[scored]).sum())
        self._total += int(scored.sum())
        if not compute_result:
            return {}
        result = {"token_accuracy": self._correct / self._total if self._total else 0.0}
        self._correct = self._total = 0
        return result


def make_scorer(kind: str) -> Any:
    return ClassificationScorer() if kind == "classification" else TokenAccuracyScorer()
