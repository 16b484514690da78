"""The journal as resume reads it: write order (not clocks), hostile lines, --no-save runs, and trusting a file's
recorded size and mtime instead of re-hashing it."""

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import SMALL, model_flags, prompts_doc, read_json, run_cli

from music2image.journal import JOURNAL_NAME, ImageRecord, Journal, read_state

SHARD_1 = JOURNAL_NAME.replace(".jsonl", ".1.jsonl")
DAY = 86_400


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_model):
    """A finished folder: 1 sample × 5 prompts, made by one ordinary run (copied per test, mtimes kept)."""
    root = tmp_path_factory.mktemp("finished")
    (root / "p.json").write_text(json.dumps(prompts_doc(samples=1)))
    args = ["generate", "--prompts-file", str(root / "p.json"), *model_flags(tiny_model), *SMALL, "--quiet"]
    assert run_cli(*args, "--output-dir", str(root / "images")) == 0
    return root / "images", args


@pytest.fixture
def folder(finished, tmp_path):
    images, args = finished
    copy = tmp_path / "images"
    shutil.copytree(images, copy)  # copy2: sizes and mtimes (to the ns) stay as recorded
    return copy, [*args, "--output-dir", str(copy)]


def _records(folder: Path, shard: str = JOURNAL_NAME) -> list[dict]:
    return Journal.read(folder / shard)


def _image_keys(folder: Path) -> list[tuple[int, int]]:
    return [(r["sample_idx"], r["prompt_id"]) for r in _records(folder) if r.get("type") == "image"]


def _rewrite(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _png(folder: Path, prompt_id: int) -> Path:
    return folder / "sample_000" / f"sample_000_prompt_{prompt_id:02d}.png"


def test_no_save_into_a_finished_folder_keeps_what_is_finished(folder):
    images, args = folder
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in images.rglob("*.png")}
    assert run_cli(*args, "--no-save") == 0
    assert run_cli(*args) == 0
    assert len(_image_keys(images)) == 10  # the first run's 5, the --no-save run's 5, nothing after
    assert read_json(images / "image_generation_log.json")["metadata"]["generated_this_run"] == 0
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in images.rglob("*.png")} == before


@pytest.mark.parametrize("shard", [JOURNAL_NAME, SHARD_1])
def test_a_record_stamped_in_the_future_does_not_hide_newer_ones(shard, folder):
    """A node whose clock ran a day ahead wrote run 1 (one image failed there, here planted in `shard`); run 2 made
    that image again. Its success, written later, is the image's state, whatever the clocks said."""
    images, args = folder
    records = _records(images)
    for record in records:
        record["t"] += DAY
    (failed,) = [r for r in records if r.get("prompt_id") == 1]
    records.remove(failed)
    failed.update(status="failed", image_path=None, sha256=None, size=None, mtime_ns=None, error="planted")
    if shard == JOURNAL_NAME:
        records.append(failed)
    else:
        _rewrite(images / shard, [failed])
    _rewrite(images / JOURNAL_NAME, records)
    _png(images, 1).unlink()

    assert run_cli(*args) == 0  # exit 1 if the old failure still counted
    meta = read_json(images / "image_generation_log.json")["metadata"]
    assert (meta["successful"], meta["failed"], meta["generated_this_run"]) == (5, 0, 1)
    assert run_cli(*args) == 0
    meta = read_json(images / "image_generation_log.json")["metadata"]
    assert (meta["successful"], meta["failed"], meta["generated_this_run"]) == (5, 0, 0)
    assert sorted(_image_keys(images)) == sorted([(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)]
                                                 + [(0, 1)] * (shard == JOURNAL_NAME))


def _record(prompt_id: int, run: int, t: float, ok: bool = True) -> dict:
    path = f"sample_000/sample_000_prompt_{prompt_id:02d}.png"
    record = ImageRecord(0, prompt_id, "convergent", 0.4, "a prompt", 7, "key", "success" if ok else "failed",
                         image_path=path if ok else None, sha256="ab" * 32 if ok else None, run=run)
    return record.to_journal(t=t)


def test_records_are_ordered_by_run_then_by_place_in_their_shard(tmp_path):
    """Two processes per run, clocks that disagree: the latest record of each image is the one written last."""
    now = time.time()
    run = {"type": "run", "recipe": {"model": "m"}}
    _rewrite(tmp_path / JOURNAL_NAME, [
        {**run, "run": 1, "t": now + DAY}, _record(0, 1, now + DAY, ok=False), _record(0, 1, now + DAY + 1),
        {**run, "run": 2, "t": now - DAY, "recipe": {"model": "m2"}}, _record(2, 2, now - DAY)])
    _rewrite(tmp_path / SHARD_1, [
        _record(1, 1, now + DAY), _record(2, 1, now + 2 * DAY),  # process 1's clock ran further ahead
        _record(1, 2, now - DAY, ok=False)])
    state = read_state(tmp_path, current_run=2)
    assert {key: (r.run, r.ok) for key, r in state.images.items()} == {
        (0, 0, 0): (1, True), (0, 1, 0): (2, False), (0, 2, 0): (2, True)}
    assert state.recipe == {"model": "m2"} and state.last_run == 2 and not state.skipped
    assert sorted(state.current) == [(0, 1, 0), (0, 2, 0)]  # "generated this run" counts these


_HOSTILE_FIELDS = {
    "sample_idx list": ("sample_idx", [0]),
    "sample_idx string": ("sample_idx", "0"),
    "sample_idx bool": ("sample_idx", True),
    "sample_idx negative": ("sample_idx", -1),
    "sample_idx huge": ("sample_idx", 10**7),
    "prompt_id null": ("prompt_id", None),
    "status unknown": ("status", "done"),
    "seed too big": ("seed", 2**40),
    "seed string": ("seed", "1"),
    "visual_prompt object": ("visual_prompt", {"a": 1}),
    "recipe_key null": ("recipe_key", None),
    "temperature string": ("temperature", "hot"),
    "temperature infinite": ("temperature", 1e400),
    "image_path outside": ("image_path", "../../etc/passwd"),
    "image_path other image": ("image_path", "sample_000/sample_000_prompt_03.png"),
    "image_path number": ("image_path", 5),
    "sha256 number": ("sha256", 5),
    "sha256 null with a file": ("sha256", None),
    "notes string": ("notes", "x"),
    "notes numbers": ("notes", [1]),
    "run string": ("run", "9"),
    "run list": ("run", [9]),
    "run negative": ("run", -1),
    "saved string": ("saved", "no"),
    "size string": ("size", "12"),
    "mtime_ns float": ("mtime_ns", 1.5),
    "seconds string": ("seconds", "fast"),
}
_HOSTILE_LINES = {
    "image without fields": {"type": "image"},
    "empty object": {},
    "unknown type": {"type": "imagez"},
    "type a number": {"type": 5},
    "run without recipe": {"type": "run", "run": 9},
    "run recipe not a dict": {"type": "run", "run": 9, "recipe": "notadict"},
    "run number a string": {"type": "run", "run": "9", "recipe": {"model": "other"}},
    "run number a list": {"type": "run", "run": [9], "recipe": {"model": "other"}},
    "run t a string": {"type": "run", "run": 9, "t": "noon", "recipe": {"model": "other"}},
    "a list": [1, 2],
    "a string": "image",
    "a number": 42,
    "null": None,
}


def _hostile(name: str, template: dict) -> dict:
    """Image (0,0)'s record made hostile, and stamped as the newest so that, if it were believed, it would decide."""
    if name in _HOSTILE_LINES:
        return _HOSTILE_LINES[name]
    field, value = _HOSTILE_FIELDS[name]
    return {**template, "run": 9, "t": time.time() + DAY, field: value}


@pytest.mark.parametrize("name", [*_HOSTILE_FIELDS, *_HOSTILE_LINES])
def test_an_ill_typed_record_is_passed_over_with_one_warning(name, folder, capsys):
    images, args = folder
    template = _records(images)[1]
    with open(images / JOURNAL_NAME, "a") as journal:
        journal.write(json.dumps(_hostile(name, template)) + "\n")
    lines = len((images / JOURNAL_NAME).read_bytes().splitlines())
    assert run_cli(*args) == 0
    assert len((images / JOURNAL_NAME).read_bytes().splitlines()) == lines + 1  # this run's record; nothing made
    err = capsys.readouterr().err
    assert f"passed over 1 invalid journal record(s) (1 in {JOURNAL_NAME})" in err and "Traceback" not in err
    assert read_json(images / "image_generation_log.json")["metadata"]["successful"] == 5
    assert run_cli("summary", str(images)) == 0


def test_a_null_time_stamp_is_no_problem(folder, capsys):
    images, args = folder
    records = _records(images)
    for record in records:
        record["t"] = None
    _rewrite(images / JOURNAL_NAME, records)
    assert run_cli(*args) == 0
    assert "invalid journal record" not in capsys.readouterr().err
    assert read_json(images / "image_generation_log.json")["metadata"]["generated_this_run"] == 0


def test_every_reader_survives_a_journal_full_of_hostile_lines(folder, capsys):
    images, args = folder
    template = _records(images)[1]
    names = [*_HOSTILE_FIELDS, *_HOSTILE_LINES]
    lines = [json.dumps(_hostile(name, template)) for name in names]
    for shard in (JOURNAL_NAME, SHARD_1):
        with open(images / shard, "a") as journal:
            journal.write("\n".join(lines) + "\n{torn\n")
    assert run_cli(*args) == 0
    err = capsys.readouterr().err
    assert f"passed over {2 * len(names)} invalid journal record(s) ({len(names)} in {SHARD_1}, " \
           f"{len(names)} in {JOURNAL_NAME})" in err
    state = read_state(images, warn=False)
    assert sorted(state.images) == [(0, p, 0) for p in range(5)] and all(r.run == 1 for r in state.images.values())
    # What the progress counter of a launch reads: whole lines, never a crash.
    records, _offset = Journal.read_from(images / SHARD_1, 0)
    assert len(records) == len(names) - 4  # a list, a string, a number and null are not records
    for command in ("summary", "gallery", "grid"):
        assert run_cli(command, str(images)) == 0, command


def _corrupt_keeping_size(path: Path, keep_mtime: bool) -> None:
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF  # inside the last chunk: a damaged image of the same size
    path.write_bytes(bytes(data))
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    else:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))


def _made_by_last_run(images: Path) -> list[int]:
    records = [r for r in _records(images) if r.get("type") == "image"]
    last = max(r["run"] for r in records)
    return sorted(r["prompt_id"] for r in records if r["run"] == last)


def test_resume_trusts_size_and_mtime_and_verify_rehashes(folder):
    images, args = folder
    original = {p: _png(images, p).read_bytes() for p in range(5)}
    _png(images, 1).write_bytes(original[1][:100])  # truncated: another size
    _corrupt_keeping_size(_png(images, 2), keep_mtime=False)  # replaced: same size, another mtime
    _corrupt_keeping_size(_png(images, 3), keep_mtime=True)  # altered in place: only a hash can tell
    assert run_cli(*args) == 0
    assert _made_by_last_run(images) == [1, 2]
    assert _png(images, 3).read_bytes() != original[3]  # trusted: not read
    assert run_cli(*args, "--verify") == 0
    assert _made_by_last_run(images) == [3]
    assert {p: _png(images, p).read_bytes() for p in range(5)} == original
    assert run_cli(*args, "--verify") == 0
    assert read_json(images / "image_generation_log.json")["metadata"]["generated_this_run"] == 0


def test_records_from_before_sizes_were_recorded_are_hashed(folder):
    images, args = folder
    records = _records(images)
    for record in records:
        record.pop("size", None)
        record.pop("mtime_ns", None)
    _rewrite(images / JOURNAL_NAME, records)
    _corrupt_keeping_size(_png(images, 4), keep_mtime=True)
    assert run_cli(*args) == 0
    assert _made_by_last_run(images) == [4]


def test_the_report_reads_only_what_the_run_appended_and_gets_what_a_whole_read_gets(folder):
    """The run reads the journal once under its lock to decide; its report goes on from there (a finished 100k
    folder read twice cost seconds). Going on must give what a whole read gives."""
    images, _args = folder
    journal = images / JOURNAL_NAME
    before = read_state(images)
    assert before.read_to == {JOURNAL_NAME: journal.stat().st_size}
    first = _records(images)[1]
    assert first["type"] == "image" and first["prompt_id"] == 0
    appended = [
        {"type": "run", "run": 2, "t": 1.0, "recipe": {**before.recipe, "note": "run 2"}},
        {**first, "run": 2, "seed": 7, "size": None, "mtime_ns": None},  # prompt 0 made again
        {**first, "run": 2, "prompt_id": 1, "saved": False, "image_path": None},  # a --no-save record
        {**first, "run": 2, "prompt_id": "one"},  # ill-typed: passed over
    ]
    with open(journal, "a") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in appended)
    (images / SHARD_1).write_text(json.dumps({**first, "run": 2, "prompt_id": 3, "seed": 9,
                                                   "image_path": first["image_path"].replace("_00.", "_03.")}) + "\n")

    went_on = read_state(images, current_run=2, since=before)
    whole = read_state(images, current_run=2)
    for name in ("images", "recipe", "last_run", "has_images", "current", "skipped", "read_to"):
        assert getattr(went_on, name) == getattr(whole, name), name
    assert went_on.images[(0, 0, 0)].seed == 7 and went_on.images[(0, 3, 0)].seed == 9
    assert set(went_on.current) == {(0, 0, 0), (0, 1, 0), (0, 3, 0)}

    # Only the appended lines were read: a change to an earlier line (same length) is not seen going on ...
    text = journal.read_bytes()
    line = next(l for l in text.splitlines(keepends=True) if b'"prompt_id": 2' in l and b'"type": "image"' in l)
    prompt = json.loads(line)["visual_prompt"]
    assert prompt.isascii()
    journal.write_bytes(text.replace(line, line.replace(prompt.encode(), b"X" * len(prompt)), 1))
    assert journal.stat().st_size == len(text)
    assert read_state(images, since=before).images[(0, 2, 0)].visual_prompt == prompt
    assert read_state(images).images[(0, 2, 0)].visual_prompt == "X" * len(prompt)
    # ... and a journal shorter than what was read (rewritten since) is read whole again.
    journal.write_bytes(text[: before.read_to[JOURNAL_NAME] // 2])
    assert read_state(images, since=before).images == read_state(images).images


@pytest.mark.parametrize("last_line", ["torn", "whole but not ended"])
def test_going_on_after_a_last_line_without_a_newline_reads_it_once(last_line, tmp_path):
    """A torn append (a kill), or a whole record whose newline is missing (a hand edit), is the last line of a
    shard when step 3 reads it; the next append ends it with a newline. Going on from step 3's state must not read
    that line again as if this run had written it: a stale record of an older run would hide a newer one."""
    recipe = {"model": "tiny"}
    stale = json.dumps(_record(0, run=3, t=3.0, ok=False))
    # Run 3 (two processes) left prompt 0 failed as shard 1's last line; run 4 (one process) made it.
    (tmp_path / SHARD_1).write_text(json.dumps({"type": "run", "run": 3, "recipe": recipe}) + "\n"
                                    + (stale[: len(stale) // 2] if last_line == "torn" else stale))
    (tmp_path / JOURNAL_NAME).write_text(json.dumps({"type": "run", "run": 4, "recipe": recipe}) + "\n"
                                         + json.dumps(_record(0, run=4, t=4.0)) + "\n")
    before = read_state(tmp_path, warn=False)
    for shard, run in ((JOURNAL_NAME, 5), (SHARD_1, 5)):  # run 5 appends to both shards
        journal = Journal(tmp_path / shard)
        journal.append(_record(1 if shard == JOURNAL_NAME else 2, run=run, t=5.0))
        journal.close()

    went_on = read_state(tmp_path, current_run=5, warn=False, since=before)
    whole = read_state(tmp_path, current_run=5, warn=False)
    for name in ("images", "recipe", "last_run", "has_images", "current", "skipped", "read_to"):
        assert getattr(went_on, name) == getattr(whole, name), name
    assert went_on.images[(0, 0, 0)].run == 4 and went_on.images[(0, 0, 0)].ok
