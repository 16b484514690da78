"""Reading an image's text back (its A1111 `parameters` and our JSON recipe), as from a stranger's file.

Any PNG, WebP or JPEG may be handed to `show`, `regenerate` or the gallery: a 30000x30000 "decompression bomb", a
truncated file, a 20 MB text chunk, a recipe with `"seed": "abc"`, terminal escape sequences in the prompt. Here:
- the text is read from the file's chunks (PNG tEXt/iTXt/zTXt, EXIF for WebP and JPEG) without decoding a pixel, so
  an image's size costs nothing, and each text is bounded (Pillow's MAX_TEXT_CHUNK, 1 MiB, for all of them);
- the recipe is validated whole, every problem listed, before anything loads a model;
- text meant for a terminal has its control characters shown as escapes.
"""

from __future__ import annotations

import json
import os
import struct
import unicodedata
import zlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from .errors import Music2ImageError
from .untrusted_json import loads as parse_json

RECIPE_KEY = "music2image"
PARAMETERS_KEY = "parameters"


def max_text_chars() -> int:
    """The most characters we accept in one text of an image: Pillow's own bound on one decompressed text chunk."""
    from PIL import PngImagePlugin

    return PngImagePlugin.MAX_TEXT_CHUNK


class ImageTextError(Music2ImageError):
    """An image whose text cannot be read, or whose recipe is not one we can use (exit 2, one message)."""


# Errors Pillow raises on hostile or broken files (SyntaxError: "not a PNG file", "broken PNG file").
PILLOW_READ_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, MemoryError)


def read_image_text(path: str | os.PathLike) -> dict[str, str]:
    """The text metadata of an image: {"parameters": ..., "music2image": ...} for ours (PNG, WebP or JPEG).
    Pixels are never decoded. Raises ImageTextError for a file that is not such an image or whose text is too big."""
    from PIL import Image, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

    path = Path(path)
    try:
        with open(path, "rb") as handle:
            # The plugin classes themselves, not Image.open: Image.open refuses a large image as a decompression bomb
            # before it returns, and we want only its text chunks.
            for plugin in (PngImagePlugin.PngImageFile, WebPImagePlugin.WebPImageFile, JpegImagePlugin.JpegImageFile):
                handle.seek(0)
                try:
                    image = plugin(handle)
                except SyntaxError:
                    continue
                with image:
                    text = _png_text(image) if plugin is PngImagePlugin.PngImageFile else _exif_text(image)
                break
            else:
                raise ImageTextError(f"{path}: cannot read the image (not a PNG, WebP or JPEG file)")
    except ImageTextError:
        raise
    except (*PILLOW_READ_ERRORS, Image.DecompressionBombError) as exc:
        raise ImageTextError(f"{path}: cannot read the image ({exc})") from None
    limit = max_text_chars()
    for key, value in text.items():
        if len(value) > limit:
            raise ImageTextError(f"{path}: its {key!r} text is {len(value):,} characters, more than the {limit:,} "
                                 "a music2image recipe can be; not read")
    return text


def _png_text(image) -> dict[str, str]:
    # `image.text` would decode the pixels to reach text chunks after the image data; ours come before it, and
    # `info` holds every text chunk read on opening (with the other chunks' values, which are not strings).
    return {key: str(value) for key, value in image.info.items() if isinstance(value, str)}


def _exif_text(image) -> dict[str, str]:
    exif = image.getexif()
    text = {}
    description = exif.get(0x010E)  # ImageDescription: our JSON recipe
    if isinstance(description, str) and description:
        text[RECIPE_KEY] = description
    comment = exif.get_ifd(0x8769).get(0x9286)  # UserComment, in the Exif sub-IFD, as A1111 writes it
    if isinstance(comment, bytes) and comment.startswith(b"UNICODE\0"):
        text[PARAMETERS_KEY] = comment[8:].decode("utf-16-be", errors="replace")
    return text


# The recipe ------------------------------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, protected_namespaces=())


class RecipeSettings(_Strict):
    """The generation settings inside a recipe, with the types `regenerate` needs (values are checked later by
    GenerationSettings.validate(), also before any model loads). Keys it does not know are kept."""

    model: StrictStr
    width: StrictInt
    height: StrictInt
    steps: StrictInt
    scheduler: StrictStr
    guidance_scale: StrictFloat
    seed: StrictInt
    dtype: StrictStr
    # `model_config` is pydantic's own name for a model's configuration: the recipe's key is read through an alias.
    model_config_: StrictStr | None = Field(None, alias="model_config")
    vae: StrictStr | None = None
    refiner_model: StrictStr | None = None
    refiner_model_config: StrictStr | None = None
    refiner_switch: StrictFloat | None = None
    timestep_spacing: StrictStr | None = None
    negative_prompt: StrictStr | None = None
    truncate_prompts: StrictBool = False
    image_format: Literal["png", "webp", "jpeg"] = "png"
    compile: StrictBool = False
    lora: StrictStr | None = None
    lora_scale: StrictFloat = 1.0
    model_sha256: StrictStr | None = None
    vae_sha256: StrictStr | None = None
    refiner_model_sha256: StrictStr | None = None
    lora_sha256: StrictStr | None = None


class ImageRecipe(_Strict):
    """The `music2image` text of an image: which prompt of which sample, its seed, and the settings."""

    sample_idx: StrictInt
    prompt_id: StrictInt
    mode: StrictStr
    temperature: StrictFloat | None = None
    prompt: StrictStr
    seed: StrictInt
    device: StrictStr | None = None
    recipe: RecipeSettings


def parse_recipe(text: dict[str, str], source: str | os.PathLike) -> dict:
    """The recipe document in an image's text, checked whole: every missing key and wrong type is listed in one
    ImageTextError. Returns the document as written (plus its `parameters` text), for `show` to print as it is."""
    if RECIPE_KEY not in text:
        raise ImageTextError(f"{source}: has no music2image recipe (was it made by music2image?)")
    try:
        document = parse_json(text[RECIPE_KEY])
    except ValueError as exc:
        raise ImageTextError(f"{source}: its music2image recipe is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ImageTextError(f"{source}: its music2image recipe is not a JSON object")
    try:
        ImageRecipe.model_validate(document)
    except ValidationError as exc:
        problems = validation_problems(exc)
        count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
        raise ImageTextError("\n".join([f"{source}: its music2image recipe cannot be used ({count}):",
                                         *(f"  {problem}" for problem in problems)]))
    document[PARAMETERS_KEY] = text.get(PARAMETERS_KEY)
    return document


def validation_problems(exc: ValidationError, where: str = "") -> list[str]:
    """One line per problem pydantic found: "where.path: what is wrong, got VALUE" (the value shortened and made
    safe for a terminal: it comes from a file)."""
    lines = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"])
        got = "" if error["type"] == "missing" else f", got {shown_value(error['input'])}"
        lines.append(f"{where}{'.' if where and path else ''}{path}: {error['msg'][:1].lower()}{error['msg'][1:]}{got}")
    return lines


def shown_value(value, width: int = 60) -> str:
    """VALUE as JSON, at most WIDTH characters, control characters escaped: for messages about a file's contents."""
    try:
        shown = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        shown = repr(value)
    shown = terminal_safe(shown)
    return shown if len(shown) <= width else shown[:width - 3] + "..."


# Text for a terminal ---------------------------------------------------------------------------------------------
def terminal_safe(text: str, keep: str = "\n\t") -> str:
    """TEXT with every control character (C0, DEL, C1: ESC sequences, OSC title changes, colours) and every
    bidirectional override (they reorder what a terminal shows) written as a \\uXXXX escape; characters in KEEP
    stay. \\uXXXX is also a valid JSON escape, so JSON text stays JSON."""
    return "".join(f"\\u{ord(char):04x}" if char not in keep and _hidden(char) else char for char in text)


def _hidden(char: str) -> bool:
    category = unicodedata.category(char)
    return category == "Cc" or (category == "Cf" and unicodedata.bidirectional(char) in
                                ("LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"))
