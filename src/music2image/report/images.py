"""Opening the images a log names, for tiles and thumbnails: one bad file is a note, never the end of a report.

A file named by the log may be missing, outside the output folder (a planted link), truncated, not an image, a
decompression bomb (30000x30000), or carry a text chunk too big for Pillow: each becomes an UnreadableImage with a
reason, which the grid draws on its tile and the gallery writes on its card, and both list in their output.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..image_text import PILLOW_READ_ERRORS, terminal_safe
from ..safe_paths import resolves_inside

log = logging.getLogger("music2image")

# Only the formats we write: Image.open would otherwise try every plugin Pillow has (EPS runs Ghostscript).
IMAGE_FORMATS = ("PNG", "WEBP", "JPEG")
EXAMPLES_IN_WARNINGS = 3


class UnreadableImage(Exception):
    """An image named by the log that cannot be shown; str() is the reason, for a person."""


def open_contained(output_dir: Path, image_path: str, size: int):
    """The image OUTPUT_DIR/IMAGE_PATH as RGB, scaled to fit SIZE x SIZE; UnreadableImage if it cannot be."""
    from PIL import Image, ImageOps

    path = resolves_inside(output_dir, image_path)
    if path is None:
        raise UnreadableImage("missing (no such file inside the output folder)")
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as image:
            # Pillow warns past MAX_IMAGE_PIXELS and refuses only past twice that: refuse at once, before decoding.
            if image.width * image.height > Image.MAX_IMAGE_PIXELS:
                raise UnreadableImage(f"{image.width}x{image.height} pixels, more than Pillow's limit of "
                                      f"{Image.MAX_IMAGE_PIXELS:,} (a decompression bomb?)")
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale
            return ImageOps.contain(image.convert("RGB"), (size, size))
    except UnreadableImage:
        raise
    except Image.DecompressionBombError as exc:
        raise UnreadableImage(f"too many pixels ({exc})") from None
    except Image.UnidentifiedImageError:
        raise UnreadableImage("not a PNG, WebP or JPEG image") from None
    except PILLOW_READ_ERRORS as exc:
        raise UnreadableImage(f"cannot be decoded ({type(exc).__name__}: {exc})") from None


def warn_unreadable(command: str, unreadable: list[tuple[str, str]]) -> None:
    """One warning for all the images a report could not show: how many, and the first few with their reason."""
    if not unreadable:
        return
    examples = "; ".join(f"{path}: {reason}" for path, reason in unreadable[:EXAMPLES_IN_WARNINGS])
    more = f" (and {len(unreadable) - EXAMPLES_IN_WARNINGS} more)" if len(unreadable) > EXAMPLES_IN_WARNINGS else ""
    log.warning("%s: %d image%s skipped, shown as unreadable: %s%s", command, len(unreadable),
                "" if len(unreadable) == 1 else "s", terminal_safe(examples), more)
