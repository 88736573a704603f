"""Training pairs from JSONL: ``{"query": ..., "positive": ..., "negative": ...}`` one per line.

Each side is text (a string) or an object ``{"text": ..., "image": "path.png"}`` with either or both keys;
image paths are relative to the JSONL file and are loaded lazily, when their batch is built. ``negative`` is
optional. Malformed lines are reported with their line number and either stop reading (default) or are skipped.

Example:
    >>> import json, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "train.jsonl"
    >>> _ = path.write_text(json.dumps({"query": "how do I list a directory?", "positive": "os.listdir()"}))
    >>> pairs = read_pairs(path, on_error="skip")
    >>> pairs[0].query
    Side(text='how do I list a directory?', image=None)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ImageLoadError, InvalidInputError
from ..inputs import ModelInput, load_image

logger = logging.getLogger(__name__)

OnError = Literal["stop", "skip"]
_FIELDS = ("query", "positive", "negative")


@dataclass(frozen=True)
class Side:
    """One side of a pair: text, an image path, or both (the image is not loaded yet)."""

    text: str | None = None
    image: str | None = None

    def load(self) -> ModelInput:
        """The :class:`ModelInput`, loading the image now; a missing file raises :class:`ImageLoadError`."""
        if self.image is None:
            return ModelInput(text=self.text)
        if not Path(self.image).is_file():
            raise ImageLoadError(f"image file not found: {self.image}")
        return ModelInput(text=self.text, image=load_image(self.image))


@dataclass(frozen=True)
class TrainingPair:
    """A query, its positive candidate and optionally one hard negative; ``line`` is the JSONL line number."""

    query: Side
    positive: Side
    negative: Side | None = None
    line: int = 0


def _side(value: object, name: str, base: Path) -> Side:
    if isinstance(value, str):
        if not value.strip():
            raise InvalidInputError(f"'{name}' is empty")
        return Side(text=value)
    if isinstance(value, dict):
        unknown = set(value) - {"text", "image"}
        if unknown:
            raise InvalidInputError(f"'{name}' has unknown keys {sorted(unknown)} (use 'text' and/or 'image')")
        text, image = value.get("text"), value.get("image")
        if text is not None and not isinstance(text, str):
            raise InvalidInputError(f"'{name}.text' must be a string")
        if image is not None and (not isinstance(image, str) or not image):
            raise InvalidInputError(f"'{name}.image' must be a non-empty path string")
        if not (text and text.strip()) and image is None:
            raise InvalidInputError(f"'{name}' has neither text nor image")
        path = None if image is None else str(image if os.path.isabs(image) else base / image)
        return Side(text=text if text and text.strip() else None, image=path)
    raise InvalidInputError(f"'{name}' must be a string or an object with 'text'/'image', got {type(value).__name__}")


def parse_pair(line: str, number: int, base: Path) -> TrainingPair:
    """Parse one JSONL line; raise :class:`InvalidInputError` naming the line when malformed."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"line {number}: not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise InvalidInputError(f"line {number}: expected a JSON object, got {type(record).__name__}")
    missing = [f for f in ("query", "positive") if record.get(f) is None]
    if missing:
        raise InvalidInputError(f"line {number}: missing {missing}")
    try:
        sides = {f: _side(record[f], f, base) for f in _FIELDS if record.get(f) is not None}
    except InvalidInputError as exc:
        raise InvalidInputError(f"line {number}: {exc}") from None
    return TrainingPair(sides["query"], sides["positive"], sides.get("negative"), line=number)


def read_pairs(path: str | os.PathLike, *, on_error: OnError = "stop") -> list[TrainingPair]:
    """All pairs of a JSONL file. ``on_error="skip"`` logs and skips malformed lines (their numbers are logged)."""
    if on_error not in ("stop", "skip"):
        raise InvalidInputError(f"on_error must be 'stop' or 'skip', got {on_error!r}")
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"training data file not found: {path}")
    pairs: list[TrainingPair] = []
    skipped: list[int] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                pairs.append(parse_pair(line, number, path.parent))
            except InvalidInputError as exc:
                if on_error == "stop":
                    raise InvalidInputError(f"{path}: {exc}") from None
                skipped.append(number)
                logger.warning("%s: skipping %s", path, exc)
    if skipped:
        logger.warning("%s: skipped %d malformed line(s): %s", path, len(skipped), skipped[:20])
    if not pairs:
        raise InvalidInputError(f"{path} holds no usable training pairs")
    return pairs


def load_batch(pairs: Sequence[TrainingPair]) -> tuple[list[ModelInput], list[ModelInput]]:
    """Queries and candidates (all positives, then the hard negatives present) with images loaded."""
    if not pairs:
        raise InvalidInputError("empty batch")
    try:
        queries = [p.query.load() for p in pairs]
        candidates = [p.positive.load() for p in pairs]
        candidates += [p.negative.load() for p in pairs if p.negative is not None]
    except ImageLoadError as exc:
        lines = [p.line for p in pairs]
        raise ImageLoadError(f"{exc} (in the batch of lines {lines})") from None
    return queries, candidates


def batches(order: Sequence[int], pairs: Sequence[TrainingPair], size: int) -> Iterator[list[TrainingPair]]:
    """Consecutive batches of ``size`` pairs in ``order`` (the last, smaller one included)."""
    for start in range(0, len(order), size):
        yield [pairs[i] for i in order[start : start + size]]
