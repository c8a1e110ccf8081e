"""The dataset toolkit: load, validate (with statistics and leakage checks), split, and hint the planner.

Public API (the planner, the backends and preflight call these):
- `load_records(path, format="auto", text_column=None, label_column=None) -> LoadedData`
- `validate_file(path, ..., seq_len=None, tokenizer=None, against=None, max_listed=50) -> ValidationReport`
- `split_records(records, *, validation_ratio=0.2, test_ratio=0.0, stratify_by=None, group_by=None,
  kfold=None, seed=42) -> SplitPlan`
- `write_split(loaded, plan, out_dir, overwrite=False, arguments=None) -> Manifest`
- `profile_hints(report) -> {"examples", "task", "quality"}`
- `model_token_counter(model) -> TokenCounter | None`: the model's own tokenizer.json, if on this machine

Nothing here imports `datasets` or scikit-learn at module level: they load
inside the functions that use them, so `advisor plan` stays fast.
"""

from .hints import profile_hints
from .load import LoadedData, load_records
from .manifest import Manifest, write_split
from .report import DataStats, RecordError, ValidationReport
from .split import Fold, SplitPlan, split_records
from .tokenizer import model_token_counter
from .validate import validate_file

__all__ = [
    "DataStats", "Fold", "LoadedData", "Manifest", "RecordError", "SplitPlan", "ValidationReport",
    "load_records", "model_token_counter", "profile_hints", "split_records", "validate_file", "write_split",
]
