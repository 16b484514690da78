"""Image files: pixels → PNG/WebP/JPEG bytes with the recipe inside (A1111 `parameters` + our JSON), and reading
that text back."""

from __future__ import annotations

import io
import json

import numpy as np


def a1111_quote(value) -> str:
    """Quote a value the way AUTOMATIC1111's infotext does: JSON-quoted when it holds `,` `:` or a newline."""
    text = str(value)
    if "," not in text and ":" not in text and "\n" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def a1111_parameters(prompt: str, negative_prompt: str | None, fields: dict) -> str:
    """The `parameters` text that A1111's PNG Info, Civitai and most metadata readers parse."""
    lines = [prompt]
    if negative_prompt:
        lines.append(f"Negative prompt: {negative_prompt}")
    lines.append(", ".join(f"{key}: {a1111_quote(value)}" for key, value in fields.items() if value is not None))
    return "\n".join(lines)


def encode_image(pixels: np.ndarray, image_format: str, text: dict[str, str]) -> bytes:
    """Pixels → file bytes with text metadata. Deterministic: the same pixels and text give the same bytes."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    if image_format == "png":
        info = PngInfo()
        for key, value in text.items():
            info.add_itxt(key, value)  # iTXt: UTF-8, so prompts in any language survive
        image.save(buffer, format="PNG", pnginfo=info)
    else:
        # WebP and JPEG have no text chunks: A1111 puts `parameters` into EXIF UserComment; we do the same
        # and keep the JSON recipe in the ImageDescription tag.
        exif = Image.Exif()
        exif[0x010E] = text.get("music2image", "")  # ImageDescription
        # UserComment lives in the Exif sub-IFD, where A1111 (via piexif) reads it.
        exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.get("parameters", "").encode("utf-16-be")
        options = {"quality": 95} if image_format == "jpeg" else {"quality": 95, "method": 4}
        image.save(buffer, format="JPEG" if image_format == "jpeg" else "WEBP", exif=exif, **options)
    return buffer.getvalue()
