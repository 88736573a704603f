import io

import pytest
from PIL import Image

from metaembed_rag.errors import ImageLoadError, InvalidInputError, MetaEmbedError, UnsupportedInputError
from metaembed_rag.inputs import ModelInput, load_image, to_model_inputs


def png_bytes(size=(20, 10), color=(255, 0, 0)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_accepted_forms(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(png_bytes())
    items = to_model_inputs(["hello", str(path), path, png_bytes(), Image.new("L", (5, 5)), (path, "caption")])
    assert [i.modality for i in items] == ["text", "image", "image", "image", "image", "image+text"]
    assert all(i.image is None or i.image.mode == "RGB" for i in items)
    assert to_model_inputs("single")[0] == ModelInput(text="single")
    assert to_model_inputs((str(path), "cap"))[0].text == "cap"
    assert [i.text for i in to_model_inputs(("a", "b"))] == ["a", "b"]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ([], InvalidInputError),
        ([""], InvalidInputError),
        (["   "], InvalidInputError),
        ([b""], ImageLoadError),
        ([b"not an image"], ImageLoadError),
        ([Image.new("RGB", (0, 0))], ImageLoadError),
        ([123], UnsupportedInputError),
        ([None], UnsupportedInputError),
        ([{"text": "x"}], UnsupportedInputError),
        ([(png_bytes(), 5)], UnsupportedInputError),
        (None, InvalidInputError),
    ],
)
def test_bad_inputs_raise_typed_errors(value, error):
    with pytest.raises(error) as info:
        to_model_inputs(value)
    assert isinstance(info.value, MetaEmbedError)


def test_unreadable_image_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageLoadError, match=r"broken\.png"):
        load_image(bad)
    with pytest.raises(ImageLoadError, match="not found"):
        load_image(tmp_path / "missing.png")
