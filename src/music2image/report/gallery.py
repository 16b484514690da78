"""`music2image gallery`: static HTML pages that work offline from file:// (no CDN, nothing fetched).

OUTPUT/index.html is the entry point and the first page; the others are OUTPUT/gallery/page_002.html, … with
SAMPLES_PER_PAGE samples each and links between them, so that no page grows with the run (one page held ~1.2 KB per
image: ~120 MB of HTML at 100,000 images). Thumbnails are cached in OUTPUT/thumbs/SIZE/.

Every value shown comes from files anyone may have edited (the log, the prompts file, the images' text): the page is
a Jinja2 template with autoescape on, values are bounded in length, and a Content-Security-Policy allows only our own
script and style (by hash), so a `<script>` in a prompt, a seed or a sample_idx is text, never code.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import os
import re
import stat
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from ..errors import DiskError
from ..image_text import ImageTextError, read_image_text
from ..safe_paths import open_folder, refuse_links, remove_inside, resolves_inside, write_bytes_inside
from ..evaluation.documents import evaluated_at, image_measures, measured_image_is_current
from .entries import (Entry, RunLog, by_sample, prompt_blocks, read_log, refuse_without_files,
                      several_per_prompt)
from .images import UnreadableImage, open_contained, warn_unreadable
from .music import music_of_samples

THUMBS_DIR = "thumbs"
PAGES_DIR = "gallery"
INDEX_NAME = "index.html"
GALLERY_SAMPLES_PER_PAGE = 50
NAV_NEIGHBOURS = 3  # page links either side of the current one: the navigation stays the same size at any run size
PROMPT_CHARS = 2000  # longest text shown per value; a prompt of 75 CLIP tokens is ~400 characters
RECIPE_CHARS = 6000
_PAGE_NAME = re.compile(r"page_(\d{3,})\.html")
EVALUATION_REPORT = "evaluation/report.html"  # written by `music2image evaluate`


@dataclass(frozen=True)
class Card:
    """One image on a page."""

    entry: Entry
    index: int  # into the page's recipes, for the lightbox
    state: str  # "ok", "failed", "missing" or "unreadable"
    thumb_url: str | None = None
    image_url: str | None = None
    note: str = ""
    measures: str = ""  # from `music2image evaluate`, when it ran


@dataclass(frozen=True)
class PromptBlock:
    """One prompt's images in k order. With several images per prompt the page shows its text, mode and
    temperature once, then its images in a row, each with its k and seed; with one, its card as it always was."""

    entry: Entry  # the first image's: prompt_id, mode, temperature and text are those of every card here
    cards: tuple[Card, ...]


@dataclass(frozen=True)
class SampleRow:
    """One sample on a page: its prompts' images grouped by mode, or why it was skipped."""

    sample_idx: int
    music: str = ""
    groups: tuple[tuple[str, tuple[PromptBlock, ...]], ...] = ()
    skipped_reason: str | None = None

    @property
    def cards(self):
        return [card for _, blocks in self.groups for block in blocks for card in block.cards]


@dataclass(frozen=True)
class Navigation:
    page: int
    pages: int
    links: tuple[tuple[int, str | None], ...]  # (page number, url); None for the page itself
    previous: str | None
    next: str | None
    first_sample: int
    last_sample: int


def make_gallery(output_dir: str | os.PathLike, thumb_size: int = 256,
                 samples_per_page: int = GALLERY_SAMPLES_PER_PAGE) -> Path:
    """OUTPUT/index.html and its following pages: one row per sample with convergent and divergent side by side
    (with several images per prompt, one block per prompt: its text once, its images in k order with their seeds),
    a filter by mode, click for the full image and its recipe. An image that cannot be read is shown as such and
    listed in one warning. Returns the entry point, index.html."""
    output_dir = Path(output_dir)
    run_log = read_log(output_dir)
    refuse_without_files(run_log, "a gallery")
    # Before any work: nothing is written through a planted link (the writes refuse links again, without a race).
    refuse_links(output_dir, INDEX_NAME, PAGES_DIR, f"{THUMBS_DIR}/{thumb_size}")
    rows = _rows(run_log)
    grouped = several_per_prompt(run_log.entries)
    chunks = [rows[first:first + samples_per_page] for first in range(0, len(rows), samples_per_page)] or [[]]
    music = music_of_samples(output_dir, run_log)
    measures = image_measures(output_dir)
    measured_at = evaluated_at(output_dir) if measures else None
    unreadable: list[tuple[str, str]] = []
    for number, chunk in enumerate(chunks, 1):
        prefix = "" if number == 1 else "../"
        samples, recipes = [], []
        for idx, entries, skipped_reason in chunk:
            if entries is None:
                samples.append(SampleRow(idx, skipped_reason=skipped_reason[:PROMPT_CHARS]))
                continue
            groups = []
            for mode in sorted({e.mode for e in entries}, key=_mode_order):
                blocks = []
                for block in prompt_blocks([e for e in entries if e.mode == mode]):
                    cards = []
                    for entry in block:
                        card, recipe = _card(output_dir, entry, thumb_size, prefix, len(recipes), unreadable,
                                             grouped)
                        values = _current_measures(output_dir, entry, measures, measured_at)
                        cards.append(replace(card, measures=_measures_text(values)))
                        recipes.append(recipe)
                    blocks.append(PromptBlock(block[0], tuple(cards)))
                groups.append((mode, tuple(blocks)))
            samples.append(SampleRow(idx, music.get(idx, "")[:PROMPT_CHARS], tuple(groups)))
        evaluation = (prefix + EVALUATION_REPORT) if (output_dir / EVALUATION_REPORT).is_file() else None
        page = _render(run_log, samples, recipes, _navigation(number, len(chunks), chunk, prefix), unreadable,
                       evaluation, grouped)
        _write(output_dir, INDEX_NAME if number == 1 else f"{PAGES_DIR}/page_{number:03d}.html", page.encode("utf-8"))
    _remove_stale_pages(output_dir, len(chunks))
    warn_unreadable("gallery", unreadable)
    return output_dir / INDEX_NAME


def _current_measures(output_dir: Path, entry: Entry, measures: dict, measured_at: float | None) -> dict:
    """The image's measures from `evaluate`, unless the image was made again since (`generate --overwrite` or
    `--replace-changed` keep its name): then they were the old image's, and it has none until `evaluate` runs again."""
    values = measures.get(entry.image_path or "")
    if not values or measured_at is None:
        return {}
    return values if measured_image_is_current(output_dir, entry.image_path, measured_at) else {}


def _measures_text(values: dict) -> str:
    """One line of an image's measures from `evaluate` (CLIP score, CIELAB lightness and chroma, warmth)."""
    names = (("clip_score", "CLIP", "{:.1f}"), ("lightness", "L*", "{:.0f}"), ("chroma", "C*", "{:.0f}"),
             ("warmth", "warmth", "{:+.2f}"))
    return " · ".join(f"{label} {pattern.format(values[key])}" for key, label, pattern in names if key in values)


def _mode_order(mode: str) -> tuple:
    return ({"convergent": 0, "divergent": 1}.get(mode, 2), mode)


def _rows(run_log: RunLog) -> list[tuple[int, list[Entry] | None, str]]:
    """Every sample in sample order: (sample_idx, its entries, "") or (sample_idx, None, why it was skipped)."""
    samples = by_sample(run_log.entries)
    rows = [(idx, entries, "") for idx, entries in samples.items()]
    rows += [(s.sample_idx, None, s.reason) for s in run_log.skipped_samples if s.sample_idx not in samples]
    return sorted(rows, key=lambda row: row[0])


def _url(prefix: str, relative: str) -> str:
    # Percent-encoded, so a file named "javascript:alert(1)" is a relative path, not a URL scheme.
    return prefix + quote(relative, safe="/")


def _card(output_dir: Path, entry: Entry, size: int, prefix: str, index: int, unreadable: list,
          grouped: bool = False) -> tuple[Card, dict]:
    label = f"sample {entry.sample_idx} {entry.label}" + (f" k={entry.image_index}" if grouped else "")
    recipe = {"image": None, "label": label[:PROMPT_CHARS],
              "prompt": entry.visual_prompt[:PROMPT_CHARS], "seed": entry.seed, "status": entry.status,
              "error": (entry.error or "")[:PROMPT_CHARS] or None, "parameters": ""}
    if not entry.ok:
        state = "failed" if entry.status == "failed" else "missing"
        return Card(entry, index, state, note=recipe["error"] or ""), recipe
    try:
        source = resolves_inside(output_dir, entry.image_path)
        if source is None:
            raise UnreadableImage("missing (no such file inside the output folder)")
        try:
            recipe["parameters"] = read_image_text(source).get("parameters", "")[:RECIPE_CHARS]
        except ImageTextError as exc:
            raise UnreadableImage(str(exc).removeprefix(f"{source}: ")) from None
        thumb = _thumbnail(output_dir, entry, source, size)
    except UnreadableImage as exc:
        unreadable.append((entry.image_path, str(exc)))
        return Card(entry, index, "unreadable", note=str(exc)[:PROMPT_CHARS]), recipe
    recipe["image"] = _url(prefix, entry.image_path)
    return Card(entry, index, "ok", _url(prefix, thumb), recipe["image"]), recipe


def _thumbnail(output_dir: Path, entry: Entry, source: Path, size: int) -> str:
    """A small JPEG in thumbs/SIZE/, made once and remade only when the image is newer."""
    relative = f"{THUMBS_DIR}/{size}/{PurePosixPath(entry.image_path).stem}.jpg"
    try:
        cached = os.lstat(output_dir / relative)
        if stat.S_ISREG(cached.st_mode) and cached.st_mtime >= source.stat().st_mtime:
            return relative
    except OSError:
        pass
    small = open_contained(output_dir, entry.image_path, size)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=85)
    _write(output_dir, relative, buffer.getvalue())
    return relative


def _navigation(number: int, pages: int, chunk: list, prefix: str) -> Navigation:
    def url(page: int) -> str:
        return prefix + (INDEX_NAME if page == 1 else f"{PAGES_DIR}/page_{page:03d}.html")

    shown = sorted({1, pages, *range(max(1, number - NAV_NEIGHBOURS), min(pages, number + NAV_NEIGHBOURS) + 1)})
    return Navigation(number, pages, tuple((page, None if page == number else url(page)) for page in shown),
                      url(number - 1) if number > 1 else None, url(number + 1) if number < pages else None,
                      chunk[0][0] if chunk else 0, chunk[-1][0] if chunk else 0)


@lru_cache(maxsize=1)
def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    # html.escape, not markupsafe's escape, as the seed's gallery did: the same characters are escaped (& < > " '),
    # spelled &quot; and &#x27;. Autoescape stays on: every {{ value }} goes through it unless it is Markup.
    def escape(value):
        from markupsafe import Markup

        return value if isinstance(value, Markup) else Markup(html.escape(str(value), quote=True))

    return Environment(loader=PackageLoader("music2image.report", "templates"), autoescape=True, finalize=escape,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


@lru_cache(maxsize=1)
def _own_code() -> tuple:
    """Our script and style (Markup: trusted, from the package) and the Content-Security-Policy allowing only them."""
    from markupsafe import Markup

    loader = _environment().loader
    script = Markup(loader.get_source(_environment(), "gallery.js")[0])
    style = Markup(loader.get_source(_environment(), "gallery.css")[0])

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"

    csp = (f"default-src 'none'; script-src {digest(script)}; style-src {digest(style)}; img-src 'self'; "
           "base-uri 'none'; form-action 'none'")
    return script, style, csp


def _render(run_log: RunLog, samples: list[SampleRow], recipes: list[dict], nav: Navigation, unreadable: list,
            evaluation: str | None = None, grouped: bool = False) -> str:
    meta = run_log.metadata
    stats = (f'{meta.get("successful", 0)} images, {meta.get("failed", 0)} failed · '
             f'{meta.get("image_width")}×{meta.get("image_height")} · {meta.get("num_inference_steps")} steps · '
             f'{meta.get("model", "")} · {meta.get("device", "")}')
    notes = []
    if run_log.invalid_entries:
        notes.append(f"{run_log.invalid_entries} entries of the log are not valid and are not shown "
                     "(the command's warning says which).")
    unreadable_here = sum(card.state == "unreadable" for row in samples for card in row.cards)
    if unreadable_here:
        notes.append(f"{unreadable_here} image{'s' if unreadable_here > 1 else ''} on this page could not be read and "
                     "are shown as unreadable, with the reason.")
    script, style, csp = _own_code()
    modes = sorted({e.mode for e in run_log.entries}, key=_mode_order)
    return _environment().get_template("gallery.html.j2").render(
        title=f"music2image gallery: {Path(os.path.abspath(run_log.output_dir)).name}", stats=stats[:PROMPT_CHARS],
        modes=modes, nav=nav, notes=notes, samples=samples, recipes=recipes, prompt_chars=PROMPT_CHARS,
        script=script, style=style, csp=csp, evaluation=evaluation, grouped=grouped)


def _write(output_dir: Path, relative: str, data: bytes) -> None:
    try:
        write_bytes_inside(output_dir, relative, data)
    except OSError as exc:
        raise DiskError(f"{output_dir / relative}: cannot write it ({exc.strerror or exc})") from exc


def _remove_stale_pages(output_dir: Path, pages: int) -> None:
    """Pages of an earlier, longer log would still link to samples no longer in it: remove them."""
    try:
        with open_folder(output_dir, PAGES_DIR, create=False) as folder:
            names = os.listdir(folder)
    except FileNotFoundError:
        return
    for name in names:
        match = _PAGE_NAME.fullmatch(name)
        if match and int(match.group(1)) > pages:
            remove_inside(output_dir, f"{PAGES_DIR}/{name}")
