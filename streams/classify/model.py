"""A learned second opinion on topics: per-topic logistic-regression weights over the words of
an article, trained offline (``newsalert train``, streams/classify/training.py) and applied
here in pure Python, without scikit-learn (pure: no I/O apart from ``load_model``).

How it combines with the rules (the one place is ``add_model_topics``): the rules decide; the
model may only *add* a topic the rules did not give, and only when its probability is at or
above the topic's threshold (high: 0.8 by default). An added topic says ``"reason": "model"``
and carries the words that weighed most for it as terms named ``model:<word>``, so that topic
hits and alerts show where it came from.

Cost: one regex pass over the title and the first ``MAX_TEXT_CHARS`` of the text, a set of its
distinct words, and per topic one set intersection with the topic's vocabulary and a sum.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "newsalert-topic-model"
FORMAT_VERSION = 1
DEFAULT_THRESHOLD = 0.8
MAX_TEXT_CHARS = 1000  # words of long texts past this are not read (cost bound; the lead)
TOP_WORDS = 5
_WORD = re.compile(r"[^\W_]+")


class ModelError(ValueError):
    """A model file that cannot be used: says the file and why."""


def words(title: str, text: str) -> frozenset[str]:
    """The model's features: the distinct lower-cased words of the title and the start of the
    text. Training (streams/classify/training.py) uses this very function."""
    return frozenset(_WORD.findall(f"{title}\n{text[:MAX_TEXT_CHARS]}".lower()))


@dataclass(frozen=True)
class TopicWeights:
    bias: float
    threshold: float  # probability at or above which the model adds the topic
    weights: dict[str, float]  # word -> weight; words absent weigh 0
    # Derived: the sum is compared with the threshold's logit (no exp() per article), and the
    # article's words are intersected with the vocabulary in C.
    logit_threshold: float = field(init=False, repr=False)
    vocabulary: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        p = min(max(self.threshold, 1e-9), 1 - 1e-9)
        object.__setattr__(self, "logit_threshold", math.log(p / (1 - p)))
        object.__setattr__(self, "vocabulary", frozenset(self.weights))


@dataclass(frozen=True)
class TopicModel:
    topics: dict[str, TopicWeights]
    version: int = FORMAT_VERSION
    trained_on: str = ""  # sha256 of the training rows (what `newsalert train` read)
    source: str = ""  # where it was loaded from, for messages

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "trained_on": self.trained_on,
            "features": "distinct lower-cased words ([^\\W_]+) of title + first "
            f"{MAX_TEXT_CHARS} characters of text, present = 1",
            "topics": {
                name: {
                    "bias": round(t.bias, 6),
                    "threshold": t.threshold,
                    "weights": {w: round(v, 6) for w, v in sorted(t.weights.items())},
                }
                for name, t in self.topics.items()
            },
        }


@dataclass(frozen=True)
class ModelOpinion:
    topic: str
    probability: float
    top_words: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """Shaped like a rule match (``TopicMatch.as_dict``), plus the reason."""
        return {
            "score": round(self.probability, 3),
            "reason": "model",
            "terms": [
                {"term": f"model:{word}", "field": "model", "start": 0, "end": 0}
                for word in self.top_words
            ],
        }


def predict(model: TopicModel, title: str, text: str, skip: Any = ()) -> dict[str, ModelOpinion]:
    """Topics (other than those in ``skip``) whose probability reaches their threshold."""
    found = words(title, text)
    opinions: dict[str, ModelOpinion] = {}
    for name, topic in model.topics.items():
        if name in skip:
            continue
        present = found & topic.vocabulary
        weights = topic.weights
        logit = topic.bias + sum(weights[word] for word in present)
        if logit < topic.logit_threshold:
            continue
        top = sorted((w for w in present if weights[w] > 0), key=weights.__getitem__)
        opinions[name] = ModelOpinion(
            name, 1.0 / (1.0 + math.exp(-logit)), tuple(reversed(top[-TOP_WORDS:]))
        )
    return opinions


def add_model_topics(
    topics: dict[str, Any], model: TopicModel | None, title: str, text: str
) -> dict[str, Any]:
    """The rules' topics (JSON-ready dicts by name) plus those the model adds: rules decide,
    the model only adds a topic they did not give."""
    if model is None:
        return topics
    for name, opinion in predict(model, title, text, skip=topics).items():
        topics[name] = opinion.as_dict()
    return topics


def model_from_dict(data: Any, source: str = "") -> TopicModel:
    where = source or "model"
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{where}: not a newsalert topic model (format {FORMAT!r} expected)")
    if data.get("version") != FORMAT_VERSION:
        raise ModelError(
            f"{where}: model format version {data.get('version')!r}, this newsalert reads "
            f"version {FORMAT_VERSION}: retrain with `newsalert train`"
        )
    topics = data.get("topics")
    if not isinstance(topics, dict) or not topics:
        raise ModelError(f"{where}: 'topics' must be a non-empty mapping")
    parsed = {}
    for name, spec in topics.items():
        try:
            threshold = float(spec["threshold"])
            weights = {str(w): float(v) for w, v in spec["weights"].items()}
            parsed[name] = TopicWeights(float(spec["bias"]), threshold, weights)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(
                f"{where}: topic {name!r}: bad bias, threshold or weights ({exc})"
            ) from None
        if not 0.0 < threshold < 1.0:
            raise ModelError(f"{where}: topic {name!r}: threshold must be between 0 and 1")
    return TopicModel(parsed, FORMAT_VERSION, str(data.get("trained_on", "")), source)


# The model trained by `newsalert train tests/data/devset.jsonl` (tuning part), shipped with
# the package; the setting `model: default` names it.
SHIPPED_MODEL = Path(__file__).with_name("topic_model.json")


def load_model(path: Path | str) -> TopicModel:
    """The model file at ``path``; ``default`` is the shipped one (``SHIPPED_MODEL``)."""
    path = SHIPPED_MODEL if str(path) == "default" else Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: no such model file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: cannot read the model: {exc}") from None
    return model_from_dict(data, str(path))


def save_model(model: TopicModel, path: Path | str) -> None:
    Path(path).write_text(json.dumps(model.as_dict(), indent=1) + "\n", encoding="utf-8")


def rows_digest(lines: list[str]) -> str:
    """sha256 of the training rows as read, to tell which data a model came from."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()
