"""What can be encoded: text, an image (PIL image, path or bytes), or an ``(image, text)`` pair.

:func:`to_model_input` turns any accepted form into a :class:`ModelInput`, loading images and rejecting bad
input with a typed error.

Example:
    >>> to_model_input("a cat").text
    'a cat'
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from PIL import Image

from .errors import ImageLoadError, InvalidInputError, UnsupportedInputError

ImageLike = Union[Image.Image, str, os.PathLike, bytes, bytearray]
EncodeInput = Union[str, ImageLike, tuple[ImageLike, str]]

MAX_IMAGE_PIXELS = 100_000_000
"""Images larger than this are refused (decompression-bomb guard)."""

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}


@dataclass(frozen=True)
class ModelInput:
    """One normalised input: text, an RGB image, or both."""

    text: str | None = None
    image: Image.Image | None = None

    @property
    def modality(self) -> str:
        if self.image is not None and self.text:
            return "image+text"
        return "image" if self.image is not None else "text"


def load_image(value: ImageLike) -> Image.Image:
    """Load and validate an image as RGB; raise :class:`ImageLoadError` when unreadable or empty."""
    if isinstance(value, Image.Image):
        image = value
    elif isinstance(value, (bytes, bytearray)):
        if not value:
            raise ImageLoadError("image bytes are empty")
        image = _open(io.BytesIO(bytes(value)), "image bytes")
    elif isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if not path.is_file():
            raise ImageLoadError(f"image file not found: {path}")
        image = _open(path, str(path))
    else:
        raise UnsupportedInputError(f"unsupported image type {type(value).__name__}")
    width, height = image.size
    if width == 0 or height == 0:
        raise ImageLoadError(f"image has size zero ({width}x{height})")
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageLoadError(f"image of {width}x{height} pixels exceeds the {MAX_IMAGE_PIXELS} pixel limit")
    return image if image.mode == "RGB" else image.convert("RGB")


def _open(source, label: str) -> Image.Image:
    try:
        image = Image.open(source)
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        raise ImageLoadError(f"cannot read image from {label}: {exc}") from exc
    return image


def _looks_like_image_path(value: str | os.PathLike) -> bool:
    if isinstance(value, os.PathLike):
        return True
    return (
        Path(value).suffix.lower() in _IMAGE_SUFFIXES
        and "\n" not in value
        and len(value) < 4096
        and (Path(value).is_file())
    )


def to_model_input(value: EncodeInput | ModelInput) -> ModelInput:
    """Normalise one input; a string is text unless it is the path of an existing image file."""
    if isinstance(value, ModelInput):
        return value
    if isinstance(value, str):
        if _looks_like_image_path(value):
            return ModelInput(image=load_image(value))
        if not value.strip():
            raise InvalidInputError("empty text input")
        return ModelInput(text=value)
    if isinstance(value, tuple):
        if len(value) != 2:
            raise InvalidInputError(f"a pair input must be (image, text), got a tuple of {len(value)}")
        image, text = value
        if not isinstance(text, str):
            raise UnsupportedInputError(f"the text of an (image, text) pair must be str, got {type(text).__name__}")
        return ModelInput(text=text if text.strip() else None, image=load_image(image))
    if isinstance(value, (Image.Image, bytes, bytearray, os.PathLike)):
        return ModelInput(image=load_image(value))
    raise UnsupportedInputError(
        f"cannot encode an input of type {type(value).__name__}; "
        "use text (str), an image (PIL.Image, path, bytes) or an (image, text) pair"
    )


def _is_pair(value) -> bool:
    if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str)):
        return False
    first = value[0]
    if isinstance(first, str):
        return _looks_like_image_path(first)
    return isinstance(first, (Image.Image, bytes, bytearray, os.PathLike))


def to_model_inputs(values: EncodeInput | Sequence[EncodeInput]) -> list[ModelInput]:
    """Normalise a single input or a sequence of inputs; an empty sequence is an error."""
    if isinstance(values, (str, bytes, bytearray, Image.Image, os.PathLike, ModelInput)) or _is_pair(values):
        values = [values]
    if values is None:
        raise InvalidInputError("inputs must not be None")
    try:
        values = list(values)
    except TypeError as exc:
        raise UnsupportedInputError(f"inputs must be a sequence, got {type(values).__name__}") from exc
    if not values:
        raise InvalidInputError("no inputs to encode (empty list)")
    return [to_model_input(v) for v in values]
