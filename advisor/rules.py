"""The rule engine: rules are data (knowledge/rules/*.toml), evaluation is pure.

A rule has an id, a stage, a condition (`when`: facts that must hold), an
effect (an approach, method traits to select or exclude, settings, a
warning) and a `source`: a seed document and section ("FILE § Heading"), or,
for a rule grounded in practice rather than in the seeds, its own reference
("ref:ID", a paper or documentation page listed in knowledge/sources.toml). The planner
asks `matching(stage, facts)` for the rules that fire, in file order, and
applies their effects; every rule that fires goes into the plan's rationale.
The loader refuses unknown keys, unknown facts, duplicate ids and citations
of sections that do not exist, naming the file and the rule.
"""

import functools
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import describe_validation_error
from .facts import FACT_NAMES, Facts
from .knowledge_base import knowledge_file, read_toml
from .methods import Method

Stage = Literal["approach", "method", "memory", "training", "data", "risk"]
Scalar = Union[bool, int, float, str]


class StrictData(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Comparison(StrictData):
    """A fact compared with values; every given operator must hold."""

    lt: Optional[float] = None
    le: Optional[float] = None
    gt: Optional[float] = None
    ge: Optional[float] = None
    ne: Optional[Scalar] = None
    in_: Optional[list[Scalar]] = Field(None, alias="in")
    not_in: Optional[list[Scalar]] = None
    has: Optional[Scalar] = Field(None, description="the fact is a list that contains this value")

    def holds(self, value: Any) -> bool:
        if value is None:
            return False
        checks = [
            (self.lt, lambda v: value < v), (self.le, lambda v: value <= v),
            (self.gt, lambda v: value > v), (self.ge, lambda v: value >= v),
            (self.ne, lambda v: value != v), (self.in_, lambda v: value in v),
            (self.not_in, lambda v: value not in v), (self.has, lambda v: v in value),
        ]
        return all(check(limit) for limit, check in checks if limit is not None)


Matcher = Union[Scalar, list[Scalar], Comparison]


def matcher_holds(matcher: Matcher, value: Any) -> bool:
    """A scalar means equality, a list means membership, a table means comparisons."""
    if isinstance(matcher, Comparison):
        return matcher.holds(value)
    if isinstance(matcher, list):
        return value in matcher
    return value == matcher


class MethodTraits(StrictData):
    """Method metadata a rule selects or excludes by (never a hard-coded method name check)."""

    name: Optional[list[str]] = None
    family: Optional[list[str]] = None
    mergeable: Optional[bool] = None
    requires_cuda: Optional[bool] = None
    quantized: Optional[bool] = None
    capacity_min: Optional[int] = None
    capacity_max: Optional[int] = None
    objective: Optional[str] = None

    def matches(self, method: Method) -> bool:
        wanted = [
            (self.name, lambda v: method.name in v),
            (self.family, lambda v: method.family in v),
            (self.mergeable, lambda v: method.mergeable == v),
            (self.requires_cuda, lambda v: method.requires_cuda == v),
            (self.quantized, lambda v: method.quantized == v),
            (self.capacity_min, lambda v: method.capacity >= v),
            (self.capacity_max, lambda v: method.capacity <= v),
            (self.objective, lambda v: method.objective == v),
        ]
        return all(check(value) for value, check in wanted if value is not None)


#: A learning rate given as a point of the method's own range (method.low/2: half its low end, below the range).
MethodRatePoint = Literal["method.low/2", "method.low", "method.mid", "method.high"]


class Settings(StrictData):
    """What training and data rules may set. Later rules override earlier ones, key by key."""

    learning_rate: Optional[Union[float, MethodRatePoint]] = None
    new_layer_learning_rate: Optional[float] = None
    epochs: Optional[float] = None
    effective_batch: Optional[int] = None
    effective_batch_tokens: Optional[int] = Field(
        None, ge=1, description="the global batch in tokens (a pre-training batch): effective_batch = it / seq_len")
    warmup_ratio: Optional[float] = None
    scheduler: Optional[str] = None
    weight_decay: Optional[float] = None
    early_stopping_patience: Optional[int] = None
    eval_metric: Optional[str] = None
    precision: Optional[Literal["bf16", "mixed", "fp16", "fp32"]] = None
    lora_rank: Optional[int] = None
    lora_alpha: Optional[int] = None
    lora_dropout: Optional[float] = None
    use_rslora: Optional[bool] = None
    num_virtual_tokens: Optional[int] = None
    trainable_layers: Optional[int] = None
    validation_ratio: Optional[float] = None
    kfold: Optional[int] = Field(None, ge=0, description="0 = no k-fold (a later rule turning it off)")
    stratify: Optional[bool] = None
    compute_dtype: Optional[Literal["bfloat16", "float16", "float32"]] = None


class Rule(StrictData):
    id: str = Field(pattern=r"^[a-z]+\.[a-z0-9\-]+$")
    stage: Stage
    when: dict[str, Matcher] = {}
    message: str
    source: str
    approach: Optional[Literal["prompting", "rag", "fine_tune"]] = None
    complements: list[str] = []
    select: Optional[MethodTraits] = None
    exclude: Optional[MethodTraits] = None
    set: Optional[Settings] = None
    warn: bool = Field(False, description="the message is also a warning of the plan")

    @field_validator("when")
    @classmethod
    def _known_facts(cls, when: dict) -> dict:
        unknown = [name for name in when if name not in FACT_NAMES]
        if unknown:
            raise ValueError(f"unknown fact(s) {unknown}; facts are: {', '.join(FACT_NAMES)}")
        return when

    def applies(self, facts: Facts) -> bool:
        return all(matcher_holds(matcher, getattr(facts, name)) for name, matcher in self.when.items())

    def citation(self) -> str:
        """The source as a person reads it: the seed section, or the reference's title and address."""
        if self.source.startswith(REFERENCE_PREFIX):
            reference = references()[self.source[len(REFERENCE_PREFIX):]]
            return f"{reference.title} <{reference.address}>"
        return self.source

    def explain(self, facts: Facts) -> str:
        """The message with {fact} placeholders filled in (a sentence-long fact may be empty: no trailing space)."""
        try:
            return self.message.format(**facts._asdict()).rstrip()
        except (KeyError, IndexError, ValueError):
            return self.message


REFERENCE_PREFIX = "ref:"


class Reference(StrictData):
    """A paper or documentation page a rule cites when the seeds do not say what it does, or a measurement
    of this project's own (its results file) where neither the seeds nor the literature give the number."""

    id: str = Field(pattern=r"^[a-z0-9\-]+$")
    title: str = Field(min_length=5)
    url: Optional[str] = Field(None, pattern=r"^https://\S+$")
    file: Optional[str] = Field(None, pattern=r"^benchmarks/results/[a-z0-9_\-]+\.md$",
                                description="a measurement's results file in this repository")
    supports: str = Field(min_length=10, description="what the reference says that the citing rules rely on")

    @model_validator(mode="after")
    def _one_address(self) -> "Reference":
        if (self.url is None) == (self.file is None):
            raise ValueError("a reference has a url or a file (a measurement's results), one of them")
        return self

    @property
    def address(self) -> str:
        return self.url or self.file


@functools.cache
def references() -> dict[str, Reference]:
    """Reference id -> Reference (knowledge/sources.toml [[reference]]), validated."""
    rows = read_toml("sources.toml").get("reference", [])
    found: dict[str, Reference] = {}
    for index, row in enumerate(rows):
        try:
            reference = Reference.model_validate(row)
        except ValidationError as error:
            label = row.get("id", f"#{index + 1}")
            raise RuntimeError(f"knowledge/sources.toml reference {label}: "
                               f"{describe_validation_error(error, Reference)}")
        if reference.id in found:
            raise RuntimeError(f"knowledge/sources.toml: duplicate reference id {reference.id!r}")
        found[reference.id] = reference
    return found


def parse_source(source: str) -> tuple[str, list[str]]:
    """'FILE § Heading > Sub-heading' -> (FILE, [headings])."""
    file, _, path = source.partition("§")
    return file.strip(), [part.strip() for part in path.split(" > ") if part.strip()]


@functools.cache
def documents() -> dict[str, set[str]]:
    """Seed document file -> its headings (knowledge/sources.toml)."""
    return {doc["file"]: set(doc["headings"]) for doc in read_toml("sources.toml")["document"]}


def check_source(rule: Rule, file_name: str) -> None:
    if rule.source.startswith(REFERENCE_PREFIX):
        if rule.source[len(REFERENCE_PREFIX):] not in references():
            raise RuntimeError(f"knowledge/{file_name} rule {rule.id}: no [[reference]] "
                               f"{rule.source[len(REFERENCE_PREFIX):]!r} in knowledge/sources.toml")
        return
    file, headings = parse_source(rule.source)
    known = documents()
    if file not in known or not headings:
        raise RuntimeError(f"knowledge/{file_name} rule {rule.id}: source must be '<seed file> § <heading>' "
                           f"or 'ref:<reference id>'; "
                           f"got {rule.source!r}")
    missing = [heading for heading in headings if heading not in known[file]]
    if missing:
        raise RuntimeError(f"knowledge/{file_name} rule {rule.id}: {file} has no section {missing[0]!r}")


@functools.cache
def all_rules() -> tuple[Rule, ...]:
    """Every rule, in file order (knowledge/rules/*.toml sorted by name), validated."""
    rules: list[Rule] = []
    directory = knowledge_file("rules")
    for path in sorted(directory.glob("*.toml")):
        name = f"rules/{path.name}"
        for index, row in enumerate(read_toml(name).get("rule", [])):
            try:
                rule = Rule.model_validate(row)
            except ValidationError as error:
                label = row.get("id", f"#{index + 1}")
                raise RuntimeError(f"knowledge/{name} rule {label}: {describe_validation_error(error, Rule)}")
            check_source(rule, name)
            rules.append(rule)
    ids = [rule.id for rule in rules]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise RuntimeError(f"knowledge/rules: duplicate rule id(s) {duplicates}")
    return tuple(rules)


def stage_rules(stage: Stage) -> list[Rule]:
    """The rules of `stage`, in order."""
    return [rule for rule in all_rules() if rule.stage == stage]


def matching(stage: Stage, facts: Facts) -> list[Rule]:
    """The rules of `stage` whose conditions hold for `facts`, in order."""
    return [rule for rule in stage_rules(stage) if rule.applies(facts)]


def rule(rule_id: str) -> Rule:
    for candidate in all_rules():
        if candidate.id == rule_id:
            return candidate
    raise KeyError(rule_id)
