"""`music2image grid`: contact sheets in OUTPUT/grids/ — one per sample, and overview pages of a fixed number of
samples each (overview_001.png, overview_002.png, …), so that no image grows with the run.

A single overview of every sample grew 173 px a sample: 676x173,000 px for 1,000 samples, which Pillow refuses to
open as a decompression bomb past ~1,550 samples. Tiles wrap after SHEET_COLUMNS, and a sheet shows at most
MAX_TILES_PER_SHEET images (its title says how many more), so a sheet is bounded too.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

from ..errors import DiskError
from ..safe_paths import open_folder, refuse_links, remove_inside, write_bytes_inside
from .entries import Entry, by_sample, prompt_blocks, read_log, refuse_without_files, several_per_prompt
from .music import music_of_samples
from .images import UnreadableImage, open_contained, warn_unreadable

GRIDS_DIR = "grids"
OVERVIEW_SAMPLES_PER_PAGE = 25
SHEET_COLUMNS = 10
MAX_TILES_PER_SHEET = 50
_OVERVIEW_PAGE = re.compile(r"overview_(\d{3,})\.png")
_PAD = 6


def make_grids(output_dir: str | os.PathLike, thumb_size: int = 256, overview_thumb_size: int = 128,
               samples_per_page: int = OVERVIEW_SAMPLES_PER_PAGE) -> list[Path]:
    """One contact sheet per sample (its images in prompt order, labelled with mode, temperature and prompt id;
    with several images per prompt, one row per prompt with its K images side by side) in OUTPUT/grids/, then
    overview pages of SAMPLES_PER_PAGE samples each, one row per sample. Returns the files
    written: the samples' sheets, then the overview pages. An image that cannot be read is drawn as unreadable."""
    from PIL import Image

    output_dir = Path(output_dir)
    run_log = read_log(output_dir)
    refuse_without_files(run_log, "a grid")
    refuse_links(output_dir, GRIDS_DIR)  # before any work: nothing is written through a planted link
    samples = list(by_sample(run_log.entries).items())
    music = music_of_samples(output_dir, run_log)  # as the gallery shows it, when the prompts file is found
    sheet = _grouped_sheet if several_per_prompt(run_log.entries) else _sheet
    unreadable: list[tuple[str, str]] = []
    sheets, pages = [], []
    for first in range(0, len(samples), samples_per_page):
        rows = []
        for idx, entries in samples[first:first + samples_per_page]:
            tiles = [_tile(output_dir, entry, max(thumb_size, overview_thumb_size), unreadable)
                     for entry in entries[:MAX_TILES_PER_SHEET]]
            title = f"sample {idx}" + (f" · {music[idx]}" if idx in music else "")  # file, key, tempo, mood
            if len(entries) > MAX_TILES_PER_SHEET:
                title += f" (first {MAX_TILES_PER_SHEET} of {len(entries)} images)"
            shown = entries[:MAX_TILES_PER_SHEET]
            sheets.append(_save_png(output_dir, f"sample_{idx:03d}.png", sheet(shown, tiles, thumb_size, title)))
            rows.append(sheet(shown, tiles, overview_thumb_size, title))
        overview = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
        y = 0
        for row in rows:
            overview.paste(row, (0, y))
            y += row.height
        pages.append(_save_png(output_dir, f"overview_{len(pages) + 1:03d}.png", overview))
    _remove_stale_overviews(output_dir, len(pages))
    warn_unreadable("grid", unreadable)
    return sheets + pages


def _tile(output_dir: Path, entry: Entry, size: int, unreadable: list):
    """The entry's image scaled to fit SIZE, or the reason there is none (failed, missing, unreadable)."""
    if not entry.ok:
        return "failed" if entry.status == "failed" else "missing"
    try:
        return open_contained(output_dir, entry.image_path, size)
    except UnreadableImage as exc:
        unreadable.append((entry.image_path, str(exc)))
        return "unreadable"


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _text_sizes(thumb: int) -> tuple[int, int, int]:
    """(label font size, label line height, title line height) for tiles of `thumb` pixels: "#4 divergent T=0.8"
    fits under its tile."""
    label_font = max(9, thumb // 16)
    return label_font, label_font + 8, max(14, thumb // 9) + 8


def _titled_sheet(width: int, height: int, title: str, title_height: int):
    """A white sheet with its title on top, and a drawing context on it."""
    from PIL import Image, ImageDraw

    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    font = _font(title_height - 8)
    draw.text((_PAD, 4), _fit(title, font, width - 2 * _PAD), fill="black", font=font)  # a long title ran off
    return sheet, draw


def _sheet(entries: list[Entry], tiles: list, thumb: int, title: str):
    label_font, label_height, title_height = _text_sizes(thumb)
    columns = min(len(tiles), SHEET_COLUMNS)
    lines = -(-len(tiles) // columns)
    sheet, draw = _titled_sheet(_PAD + columns * (thumb + _PAD), title_height + lines * (thumb + label_height) + _PAD,
                                title, title_height)
    for number, (entry, tile) in enumerate(zip(entries, tiles)):
        x = _PAD + (number % columns) * (thumb + _PAD)
        y = title_height + (number // columns) * (thumb + label_height)
        _draw_tile(sheet, draw, tile, x, y, thumb)
        draw.text((x, y + thumb + 2), entry.label[:40], fill=_mode_colour(entry.mode), font=_font(label_font))
    return sheet


def _grouped_sheet(entries: list[Entry], tiles: list, thumb: int, title: str):
    """With several images per prompt: one row per prompt, its label (id, mode, temperature, text) on a band
    above its K tiles, which stand side by side in k order (wrapping after SHEET_COLUMNS), each with its k and seed
    under it. So a row's differences are the seed's, and row against row the prompt's."""
    label_font, label_height, title_height = _text_sizes(thumb)
    tile_of = dict(zip(map(id, entries), tiles))
    blocks = prompt_blocks(entries)
    columns = min(max(len(block) for block in blocks), SHEET_COLUMNS)
    lines = [-(-len(block) // columns) for block in blocks]
    width = _PAD + columns * (thumb + _PAD)
    height = title_height + sum(label_height + n * (thumb + label_height) for n in lines) + _PAD
    sheet, draw = _titled_sheet(width, height, title, title_height)
    font = _font(label_font)
    y = title_height
    for block, block_lines in zip(blocks, lines):
        first = block[0]
        draw.rectangle((0, y, width - 1, y + label_height - 3), fill=_ROW_BAND)
        row_label = f"{first.label}: {first.visual_prompt}"
        draw.text((_PAD, y + 2), _fit(row_label, font, width - 2 * _PAD), fill=_mode_colour(first.mode), font=font)
        y += label_height
        for number, entry in enumerate(block):
            x = _PAD + (number % columns) * (thumb + _PAD)
            top = y + (number // columns) * (thumb + label_height)
            _draw_tile(sheet, draw, tile_of[id(entry)], x, top, thumb)
            caption = f"k={entry.image_index}" + ("" if entry.seed is None else f" seed {entry.seed}")
            if font.getlength(caption) > thumb:  # a small tile (overview pages) keeps its k, not half a seed
                caption = f"k={entry.image_index}"
            draw.text((x, top + thumb + 2), caption, fill=(60, 60, 60), font=font)
        y += block_lines * (thumb + label_height)
    return sheet


_ROW_BAND = (236, 238, 243)  # the light band that carries a prompt's label above its row


def _mode_colour(mode: str) -> tuple:
    return {"convergent": (20, 90, 170), "divergent": (170, 60, 20)}.get(mode, (60, 60, 60))


def _fit(text: str, font, width: int) -> str:
    """TEXT cut (with …) to fit WIDTH pixels in FONT."""
    text = " ".join(text.split())[:400]
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _draw_tile(sheet, draw, tile, x: int, y: int, thumb: int) -> None:
    """The image centred in its THUMB square at (x, y), or the reason there is none on a dark red square."""
    from PIL import ImageOps

    if isinstance(tile, str):
        draw.rectangle((x, y, x + thumb - 1, y + thumb - 1), fill=(60, 20, 20))
        draw.text((x + 8, y + 8), tile, fill=(255, 180, 180), font=_font(max(10, thumb // 12)))
    else:
        small = ImageOps.contain(tile, (thumb, thumb))
        sheet.paste(small, (x + (thumb - small.width) // 2, y + (thumb - small.height) // 2))


def _save_png(output_dir: Path, name: str, image) -> Path:
    buffer = io.BytesIO()
    # Pillow's default zlib level: optimize=True took 1.6x as long for 0.07 % smaller sheets (measured on sheets of
    # noise images, as benchmarks/report_scale.py makes; docs/PERFORMANCE.md).
    image.save(buffer, format="PNG")
    try:
        return write_bytes_inside(output_dir, f"{GRIDS_DIR}/{name}", buffer.getvalue())
    except OSError as exc:
        raise DiskError(f"{output_dir / GRIDS_DIR / name}: cannot write it ({exc.strerror or exc})") from exc


def _remove_stale_overviews(output_dir: Path, pages: int) -> None:
    """Overview pages of an earlier, longer run (and the single overview.png of earlier versions) would be shown as
    if current: remove them."""
    with open_folder(output_dir, GRIDS_DIR) as folder:
        names = os.listdir(folder)
    for name in names:
        match = _OVERVIEW_PAGE.fullmatch(name)
        if name == "overview.png" or (match and int(match.group(1)) > pages):
            remove_inside(output_dir, f"{GRIDS_DIR}/{name}")
