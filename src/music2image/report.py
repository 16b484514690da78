"""Looking at results: the summary as a table, contact-sheet grids, and a static HTML gallery.

All three read the output folder's log (image_generation_log.json), never guess paths.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import Music2ImageError
from .outputs import LOG_NAME, SUMMARY_NAME, atomic_write_bytes, read_image_text

THUMBS_DIR = "thumbs"
GRIDS_DIR = "grids"


@dataclass(frozen=True)
class Entry:
    """One image of the log, as the viewers need it."""

    sample_idx: int
    prompt_id: int
    mode: str
    temperature: float | None
    prompt: str
    seed: int | None
    status: str
    image_path: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status == "success" and self.image_path is not None

    @property
    def label(self) -> str:
        temperature = "" if self.temperature is None else f" T={self.temperature:g}"
        return f"#{self.prompt_id} {self.mode}{temperature}"


def read_json_file(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Music2ImageError(
            f"{path.parent}: no {path.name} here; is this a music2image output folder? "
            "(run `music2image generate` first)"
        ) from None
    except (OSError, ValueError) as exc:
        raise Music2ImageError(f"{path}: cannot read it ({exc})") from None


def load_entries(output_dir: Path) -> tuple[dict, list[Entry]]:
    log = read_json_file(Path(output_dir) / LOG_NAME)
    entries = []
    for item in log.get("generated_images", []):
        path = item.get("image_path")
        # Paths come from our own log, but the folder may have been edited: never follow one outside it.
        if path is not None and (os.path.isabs(path) or ".." in Path(path).parts):
            path = None
        entries.append(Entry(item["sample_idx"], item["prompt_id"], item["mode"], item.get("temperature"),
                             item["visual_prompt"], item.get("seed"), item["status"], path, item.get("error")))
    return log, entries


def by_sample(entries: list[Entry]) -> dict[int, list[Entry]]:
    samples: dict[int, list[Entry]] = {}
    for entry in entries:
        samples.setdefault(entry.sample_idx, []).append(entry)
    return {idx: sorted(items, key=lambda e: e.prompt_id) for idx, items in samples.items()}


# Summary ----------------------------------------------------------------------------------------------------
def summary_text(output_dir: Path) -> str:
    summary = read_json_file(Path(output_dir) / SUMMARY_NAME)
    total = summary["total_images_generated"] + summary["total_images_failed"]
    modes = sorted({m for counts in summary["by_sample"].values() for m in counts if m != "failed"} | set(summary["by_mode"]))
    lines = [
        f"{output_dir}: {summary['image_dimensions']}, {summary['inference_steps']} steps, "
        f"refiner {'on' if summary['used_refiner'] else 'off'}, device {summary['device']}"
        + (" (interrupted)" if summary.get("interrupted") else ""),
        f"success rate {summary['success_rate']:.1f}%: {summary['total_images_generated']} of {total} images, "
        f"{summary['total_images_failed']} failed, {len(summary.get('skipped_samples', []))} samples skipped",
        "",
        "by mode:",
    ]
    lines += [f"  {mode:<16} {summary['by_mode'].get(mode, 0):>6}" for mode in modes]
    lines += ["", "by sample:", "  " + "sample".ljust(8) + "".join(m[:14].rjust(15) for m in modes) + "failed".rjust(8)]
    for idx, counts in sorted(summary["by_sample"].items(), key=lambda item: int(item[0])):
        lines.append("  " + idx.ljust(8) + "".join(str(counts.get(m, 0)).rjust(15) for m in modes)
                     + str(counts.get("failed", 0)).rjust(8))
    failures = summary.get("failures", [])
    if failures:
        lines += ["", "failures:"]
        lines += [f"  sample {f['sample_idx']} prompt {f['prompt_id']}: {f['error']}" for f in failures]
    if summary.get("skipped_samples"):
        lines += ["", "skipped samples: " + ", ".join(str(i) for i in summary["skipped_samples"])]
    return "\n".join(lines)


# Grids ------------------------------------------------------------------------------------------------------
def _tile(output_dir: Path, entry: Entry, size: int):
    from PIL import Image, ImageDraw, ImageOps

    if entry.ok and (output_dir / entry.image_path).is_file():
        with Image.open(output_dir / entry.image_path) as image:
            return ImageOps.contain(image.convert("RGB"), (size, size))
    tile = Image.new("RGB", (size, size), (60, 20, 20))
    ImageDraw.Draw(tile).text((8, 8), "failed" if entry.status == "failed" else "missing", fill=(255, 180, 180),
                              font=_font(max(10, size // 12)))
    return tile


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _sheet(output_dir: Path, entries: list[Entry], thumb: int, title: str):
    from PIL import Image, ImageDraw

    label_font = max(9, thumb // 16)  # "#4 divergent T=0.8" fits under its tile
    label_height = label_font + 8
    title_height = max(14, thumb // 9) + 8
    pad = 6
    sheet = Image.new("RGB", (pad + len(entries) * (thumb + pad), title_height + thumb + label_height + pad), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 4), title, fill="black", font=_font(title_height - 8))
    for column, entry in enumerate(entries):
        x = pad + column * (thumb + pad)
        tile = _tile(output_dir, entry, thumb)
        sheet.paste(tile, (x + (thumb - tile.width) // 2, title_height + (thumb - tile.height) // 2))
        colour = (20, 90, 170) if entry.mode == "convergent" else (170, 60, 20) if entry.mode == "divergent" else (60, 60, 60)
        draw.text((x, title_height + thumb + 2), entry.label, fill=colour, font=_font(label_font))
    return sheet


def make_grids(output_dir: str | os.PathLike, thumb_size: int = 256, overview_thumb_size: int = 128) -> list[Path]:
    """One contact sheet per sample (its images in prompt order, labelled with mode, temperature and prompt id)
    in OUTPUT/grids/, plus overview.png with every sample as one row."""
    import io

    from PIL import Image

    output_dir = Path(output_dir)
    _log, entries = load_entries(output_dir)
    samples = by_sample(entries)
    folder = output_dir / GRIDS_DIR
    folder.mkdir(exist_ok=True)
    written = []
    rows = []
    for idx, items in samples.items():
        sheet = _sheet(output_dir, items, thumb_size, f"sample {idx}")
        written.append(_save_png(folder / f"sample_{idx:03d}.png", sheet, io))
        rows.append(_sheet(output_dir, items, overview_thumb_size, f"sample {idx}"))
    if rows:
        overview = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
        y = 0
        for row in rows:
            overview.paste(row, (0, y))
            y += row.height
        written.append(_save_png(folder / "overview.png", overview, io))
    return written


def _save_png(path: Path, image, io) -> Path:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    atomic_write_bytes(path, buffer.getvalue())
    return path


# Gallery ----------------------------------------------------------------------------------------------------
def _thumbnail(output_dir: Path, entry: Entry, size: int) -> str | None:
    """A small JPEG next to the gallery, made once and remade only when the image is newer."""
    import io

    from PIL import Image, ImageOps

    if not entry.ok or not (output_dir / entry.image_path).is_file():
        return None
    source = output_dir / entry.image_path
    relative = f"{THUMBS_DIR}/{size}/{Path(entry.image_path).stem}.jpg"
    target = output_dir / relative
    if not target.is_file() or target.stat().st_mtime < source.stat().st_mtime:
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(source) as image:
            small = ImageOps.contain(image.convert("RGB"), (size, size))
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=85)
        atomic_write_bytes(target, buffer.getvalue())
    return relative


def _mode_order(mode: str) -> tuple:
    return ({"convergent": 0, "divergent": 1}.get(mode, 2), mode)


def make_gallery(output_dir: str | os.PathLike, thumb_size: int = 256) -> Path:
    """OUTPUT/index.html: works offline from file:// (no CDN, everything inline), one row per sample with
    convergent and divergent side by side, a filter by mode, click for the full image and its recipe."""
    output_dir = Path(output_dir)
    log, entries = load_entries(output_dir)
    samples = by_sample(entries)
    modes = sorted({e.mode for e in entries}, key=_mode_order)
    music = _music_of_samples(output_dir, log)
    recipes = []
    rows = []
    for idx, items in samples.items():
        groups = []
        for mode in sorted({e.mode for e in items}, key=_mode_order):
            cards = []
            for entry in (e for e in items if e.mode == mode):
                thumb = _thumbnail(output_dir, entry, thumb_size)
                parameters = ""
                if thumb:
                    try:
                        parameters = read_image_text(output_dir / entry.image_path).get("parameters", "")
                    except OSError:
                        pass
                recipes.append({"image": entry.image_path if thumb else None, "label": f"sample {idx} {entry.label}",
                                "prompt": entry.prompt, "seed": entry.seed, "status": entry.status,
                                "error": entry.error, "parameters": parameters})
                cards.append(_card(entry, thumb, len(recipes) - 1))
            groups.append(f'<div class="group" data-mode="{html.escape(mode, quote=True)}">'
                          f'<h3>{html.escape(mode)}</h3><div class="cards">{"".join(cards)}</div></div>')
        about = music.get(idx)
        about_html = f' <span class="music">{html.escape(about)}</span>' if about else ""
        rows.append(f'<section class="sample" id="sample-{idx}" data-sample="{idx}"><h2>Sample {idx}{about_html}</h2>'
                    f'<div class="groups">{"".join(groups)}</div></section>')
    for skipped in log.get("skipped_samples", []):
        rows.append(f'<section class="sample skipped" data-sample="{int(skipped["sample_idx"])}"><h2>Sample '
                    f'{int(skipped["sample_idx"])}: skipped</h2><p>{html.escape(str(skipped.get("reason", "")))}</p></section>')
    meta = log.get("metadata", {})
    stats = (f'{meta.get("successful", 0)} images, {meta.get("failed", 0)} failed · '
             f'{meta.get("image_width")}×{meta.get("image_height")} · {meta.get("num_inference_steps")} steps · '
             f'{meta.get("model", "")} · {meta.get("device", "")}')
    options = "".join(f'<option value="{html.escape(m, quote=True)}">{html.escape(m)}</option>' for m in modes)
    # JSON inside <script>: escape "<" so no prompt text can close the script element.
    recipes_json = json.dumps(recipes, ensure_ascii=False).replace("<", "\\u003c")
    page = _PAGE.format(
        title=html.escape(f"music2image gallery: {output_dir.name}"),
        stats=html.escape(stats),
        options=options,
        rows="\n".join(rows) or "<p>No images in the log.</p>",
        recipes=recipes_json,
    )
    target = output_dir / "index.html"
    atomic_write_bytes(target, page.encode("utf-8"))
    return target


def _music_of_samples(output_dir: Path, log: dict) -> dict[int, str]:
    """One line per sample about its music (source file, key and mode, tempo, mood), from the prompts file the run
    read, when it is still there and has musical_features (as `music2image prompts` writes). Best effort: the
    gallery never fails for want of it."""
    name = log.get("metadata", {}).get("prompts_file")
    if not isinstance(name, str):
        return {}
    for candidate in (Path(name), output_dir.parent / name):
        try:
            document = json.loads(candidate.read_text(encoding="utf-8"))
            break
        except (OSError, ValueError):
            continue
    else:
        return {}
    lines = {}
    for sample in document.get("samples", []) if isinstance(document, dict) else []:
        if not isinstance(sample, dict) or not isinstance(sample.get("sample_idx"), int):
            continue
        features = sample.get("musical_features") if isinstance(sample.get("musical_features"), dict) else {}
        parts = [str(sample["source"])] if sample.get("source") else []
        if features.get("key") and features.get("tonality"):
            clear = features.get("tonality_is_clear", True)
            parts.append(f'{features["key"]} {features["tonality"]}' + ("" if clear else " (mode unclear)"))
        if isinstance(features.get("tempo"), (int, float)):
            parts.append(f'{features["tempo"]:.0f} BPM')
        if features.get("mood"):
            parts.append(str(features["mood"]))
        if parts:
            lines[sample["sample_idx"]] = " · ".join(parts)
    return lines


def _card(entry: Entry, thumb: str | None, index: int) -> str:
    e = html.escape
    temperature = "" if entry.temperature is None else f'<span class="temp">T={entry.temperature:g}</span>'
    seed = "" if entry.seed is None else f'<span class="seed">seed {entry.seed}</span>'
    if thumb:
        picture = (f'<a class="open" href="{e(entry.image_path, quote=True)}" data-index="{index}">'
                   f'<img loading="lazy" src="{e(thumb, quote=True)}" alt="{e(entry.prompt[:120], quote=True)}"></a>')
    else:
        picture = (f'<a class="open failed-tile" href="#" data-index="{index}">'
                   f'{e(entry.status)}<small>{e(entry.error or "")}</small></a>')
    return (f'<figure class="card {"ok" if thumb else "failed"}" data-mode="{e(entry.mode, quote=True)}" '
            f'data-status="{e(entry.status, quote=True)}">{picture}<figcaption>'
            f'<span class="badge mode-{e(entry.mode.replace(" ", "-"), quote=True)}">{e(entry.mode)}</span>'
            f'{temperature}{seed}<span class="pid">#{entry.prompt_id}</span>'
            f'<p class="prompt">{e(entry.prompt)}</p></figcaption></figure>')


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f4f4f6; color: #222; }}
header {{ position: sticky; top: 0; background: #1d1f2b; color: #fff; padding: 10px 20px; z-index: 2;
         display: flex; gap: 24px; align-items: center; flex-wrap: wrap; }}
header h1 {{ font-size: 18px; margin: 0; }}
header .stats {{ opacity: .8; }}
main {{ padding: 12px 20px; }}
.sample {{ background: #fff; border-radius: 8px; margin: 0 0 14px; padding: 8px 14px 12px; box-shadow: 0 1px 3px #0002; }}
.sample h2 {{ font-size: 15px; margin: 4px 0 8px; }}
.sample h2 .music {{ font-weight: normal; color: #666; margin-left: 8px; font-size: 13px; }}
.sample.skipped {{ color: #777; }}
.groups {{ display: flex; gap: 18px; flex-wrap: wrap; }}
.group h3 {{ font-size: 12px; text-transform: uppercase; letter-spacing: .05em; color: #666; margin: 0 0 6px; }}
.cards {{ display: flex; gap: 10px; }}
.card {{ margin: 0; width: 180px; }}
.card img, .failed-tile {{ width: 180px; height: 180px; object-fit: cover; border-radius: 4px; display: block; background: #ddd; }}
.failed-tile {{ background: #5a1e1e; color: #ffb4b4; display: flex; flex-direction: column; justify-content: center;
               align-items: center; text-decoration: none; font-weight: bold; }}
.failed-tile small {{ font-weight: normal; padding: 6px; text-align: center; }}
figcaption {{ font-size: 12px; }}
.badge {{ display: inline-block; border-radius: 3px; padding: 0 5px; margin-right: 4px; color: #fff; background: #555; }}
.mode-convergent {{ background: #1f5aa6; }} .mode-divergent {{ background: #b2441b; }}
.temp, .seed, .pid {{ margin-right: 6px; color: #555; }}
.prompt {{ margin: 3px 0 0; color: #333; max-height: 5.6em; overflow: hidden; }}
[hidden] {{ display: none !important; }}
#lightbox {{ position: fixed; inset: 0; background: #000d; display: flex; gap: 20px; padding: 30px; z-index: 5; color: #eee; }}
#lightbox img {{ max-width: 60vw; max-height: calc(100vh - 60px); object-fit: contain; }}
#lightbox pre {{ white-space: pre-wrap; overflow: auto; flex: 1; font-size: 13px; }}
#lightbox button {{ position: absolute; top: 10px; right: 16px; font-size: 20px; }}
</style></head>
<body>
<header><h1>{title}</h1><span class="stats">{stats}</span>
<label>Mode <select id="mode-filter"><option value="all">all modes</option>{options}</select></label></header>
<main>
{rows}
</main>
<div id="lightbox" hidden><button id="close" aria-label="close">✕</button><img id="full" alt=""><pre id="recipe"></pre></div>
<script type="application/json" id="recipes">{recipes}</script>
<script>
(function () {{
  var recipes = JSON.parse(document.getElementById("recipes").textContent);
  var select = document.getElementById("mode-filter");
  function apply(mode) {{
    select.value = mode;
    document.querySelectorAll(".card").forEach(function (card) {{
      card.hidden = mode !== "all" && card.dataset.mode !== mode;
    }});
    document.querySelectorAll(".group, .sample:not(.skipped)").forEach(function (box) {{
      box.hidden = !box.querySelector(".card:not([hidden])");
    }});
    document.querySelectorAll(".sample.skipped").forEach(function (box) {{ box.hidden = mode !== "all"; }});
    document.body.dataset.mode = mode;
  }}
  function fromHash() {{
    var match = /mode=([^&]*)/.exec(location.hash);
    var mode = match ? decodeURIComponent(match[1]) : "all";
    apply(Array.prototype.some.call(select.options, function (o) {{ return o.value === mode; }}) ? mode : "all");
  }}
  select.addEventListener("change", function () {{ location.hash = "mode=" + encodeURIComponent(select.value); }});
  window.addEventListener("hashchange", fromHash);
  fromHash();
  var box = document.getElementById("lightbox");
  document.querySelectorAll("a.open").forEach(function (link) {{
    link.addEventListener("click", function (event) {{
      event.preventDefault();
      var r = recipes[Number(link.dataset.index)];
      var full = document.getElementById("full");
      full.hidden = !r.image;
      if (r.image) {{ full.src = r.image; }}
      document.getElementById("recipe").textContent = r.label + "\\n\\n" +
        (r.parameters || r.prompt + "\\nSeed: " + r.seed) + (r.error ? "\\n\\nfailed: " + r.error : "");
      box.hidden = false;
    }});
  }});
  document.getElementById("close").addEventListener("click", function () {{ box.hidden = true; }});
  document.addEventListener("keydown", function (event) {{ if (event.key === "Escape") box.hidden = true; }});
}})();
</script>
</body></html>
"""
