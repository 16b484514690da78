"""From music: audio → features → emotion → prompts (the core schema), on audio synthesised here."""

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SMALL, model_flags, read_json, run_cli

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from synth import noise_bursts, progression, silence, write_wav  # noqa: E402

from music2image.music import PromptPlan, build_document, sample_prompts  # noqa: E402
from music2image.music.features import analyse  # noqa: E402
from music2image.music.mapping import SLOT_ORDER, EMOTION_SLOTS, palette_values  # noqa: E402
from music2image.music.writer import MAX_PROMPT_TOKENS, VocabularyWriter, clip_token_count, fit_to_clip  # noqa: E402
from music2image.prompts import load_prompts  # noqa: E402

C_MAJOR_140 = (60, "major", 140, 15)
A_MINOR_80 = (57, "minor", 80, 15)


@pytest.fixture(scope="module")
def clips():
    return {"c_major_140": analyse(progression(*C_MAJOR_140)), "a_minor_80": analyse(progression(*A_MINOR_80))}


@pytest.fixture
def audio_dir(workdir):
    folder = workdir / "music"
    folder.mkdir()
    write_wav(folder / "01_c_major.wav", progression(*C_MAJOR_140))
    write_wav(folder / "02_a_minor.flac", progression(*A_MINOR_80))
    write_wav(folder / "03_silence.wav", silence(3))
    write_wav(folder / "04_half_second.ogg", progression(60, "major", 120, 0.5))
    write_wav(folder / "05_noise.wav", noise_bursts(6))
    (folder / "06_corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    (folder / "notes.txt").write_text("not audio")
    return folder


# Features ------------------------------------------------------------------------------------------------------
def test_c_major_at_140_bpm(clips):
    f = clips["c_major_140"]
    assert abs(f.tempo - 140) / 140 <= 0.04
    assert (f.key, f.tonality) == ("C", "major") and f.mode_is_clear


def test_a_minor_at_80_bpm(clips):
    f = clips["a_minor_80"]
    assert abs(f.tempo - 80) / 80 <= 0.04
    assert (f.key, f.tonality) == ("A", "minor") and f.mode_is_clear


def test_noise_has_no_clear_mode_and_gets_neutral_mood_words():
    features = analyse(noise_bursts(6))
    assert features.mode_confidence == 0 and not features.mode_is_clear
    _, prompts = sample_prompts(features, 0, PromptPlan(convergent=10, divergent=10), VocabularyWriter())
    for prompt in prompts:
        assert abs(EMOTION_SLOTS["mood"][prompt.descriptors["mood"]][0]) <= 0.3


def test_a_half_second_clip_has_no_tempo_but_still_gets_prompts():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features = analyse(progression(60, "major", 120, 0.5))
    assert [str(w.message) for w in caught] == []  # librosa's n_fft warnings on the CQT's short low octaves
    assert features.tempo is None and features.duration_seconds == pytest.approx(0.5, abs=0.01)
    _, prompts = sample_prompts(features, 0, PromptPlan(), VocabularyWriter())
    assert len(prompts) == 5


# Mapping -------------------------------------------------------------------------------------------------------
def _palettes(features, seeds, temperature):
    values = []
    for seed in seeds:
        plan = PromptPlan(convergent=0, divergent=1, divergent_temperature=temperature, seed=seed)
        _, (prompt,) = sample_prompts(features, 0, plan, VocabularyWriter())
        values.append(palette_values(prompt.descriptors["palette"]))
    return {k: np.mean([v[k] for v in values]) for k in values[0]}


def test_fast_major_music_gets_lighter_warmer_more_saturated_palettes_than_slow_minor(clips):
    """Palmer et al. 2013: over many seeds, at the divergent temperature, not one lucky string."""
    seeds = range(60)
    major = _palettes(clips["c_major_140"], seeds, 0.8)
    minor = _palettes(clips["a_minor_80"], seeds, 0.8)
    assert major["lightness"] > minor["lightness"] + 0.2
    assert major["warmth"] > minor["warmth"] + 0.2
    assert major["saturation"] > minor["saturation"] + 0.1


def test_valence_and_arousal_follow_mode_and_tempo(clips):
    from music2image.music.mapping import emotion_of

    major, minor = emotion_of(clips["c_major_140"]), emotion_of(clips["a_minor_80"])
    assert major.valence > 0 > minor.valence
    assert major.arousal > minor.arousal


def _distinct_ratio(features, temperature, seeds=range(20), n=10):
    ratios = []
    for seed in seeds:
        plan = PromptPlan(convergent=n, divergent=0, convergent_temperature=temperature, seed=seed)
        _, prompts = sample_prompts(features, 3, plan, VocabularyWriter())
        distinct = [len({p.descriptors[slot] for p in prompts}) for slot in SLOT_ORDER]
        ratios.append(sum(distinct) / (len(SLOT_ORDER) * n))
    return float(np.mean(ratios))


def test_diversity_within_a_sample_grows_with_temperature(clips):
    for features in clips.values():
        cold, convergent, divergent = (_distinct_ratio(features, t) for t in (0.05, 0.4, 0.8))
        assert divergent > convergent > cold, (cold, convergent, divergent)


def test_temperature_zero_always_picks_the_best_match(clips):
    plans = [PromptPlan(convergent=5, divergent=0, convergent_temperature=0.0, seed=s) for s in range(5)]
    texts = {p.visual_prompt for plan in plans
             for p in sample_prompts(clips["a_minor_80"], 0, plan, VocabularyWriter())[1]}
    assert len(texts) == 1


def test_prompts_are_seeded_by_seed_sample_and_prompt_id(clips):
    plan = PromptPlan(seed=7)
    first = sample_prompts(clips["c_major_140"], 4, plan, VocabularyWriter())[1]
    assert first == sample_prompts(clips["c_major_140"], 4, plan, VocabularyWriter())[1]
    other = sample_prompts(clips["c_major_140"], 5, plan, VocabularyWriter())[1]
    assert [p.visual_prompt for p in first] != [p.visual_prompt for p in other]


def test_every_prompt_fits_clip_77_tokens_even_with_the_longest_phrases():
    from music2image.music.mapping import PALETTES

    longest = {slot: max(EMOTION_SLOTS[slot], key=len) for slot in EMOTION_SLOTS}
    longest["palette"] = max(PALETTES, key=len)
    text, kept = fit_to_clip(longest)
    assert clip_token_count(text) + 2 <= 77  # with the start and end tokens
    padded = {slot: phrase + ", in extraordinary luminous intricate detail" * 2 for slot, phrase in longest.items()}
    text, kept = fit_to_clip(padded)
    assert clip_token_count(text) <= MAX_PROMPT_TOKENS and "subject" in kept and "composition" not in kept


def test_clip_token_counts_use_the_real_clip_vocabulary():
    assert clip_token_count("a photo of a cat") == 5  # one token per common word, as CLIP's BPE has them


# The command ---------------------------------------------------------------------------------------------------
def test_prompts_command_writes_a_file_the_image_stage_loads(audio_dir, workdir, capsys):
    assert run_cli("prompts", str(audio_dir)) == 0
    out = workdir / "generated_prompts" / "visual_prompts_complete.json"
    document = read_json(out)
    loaded = load_prompts(out)  # the core loader accepts it
    samples = document["samples"]
    assert [s["source"] for s in samples] == ["01_c_major.wav", "02_a_minor.flac", "03_silence.wav",
                                              "04_half_second.ogg", "05_noise.wav", "06_corrupt.wav"]
    assert [s["sample_idx"] for s in samples] == list(range(6))
    assert "silent" in samples[2]["error"] and samples[2]["prompts"] == []
    assert "cannot read audio" in samples[5]["error"] and samples[5]["prompts"] == []
    assert len(loaded.samples) == 6
    err = capsys.readouterr().err
    assert "03_silence.wav" in err and "06_corrupt.wav" in err
    for sample in (samples[0], samples[1], samples[3], samples[4]):
        features = sample["musical_features"]
        assert {"key", "tonality", "tempo", "mood", "dynamic_intensity", "tonality_confidence", "loudness_dbfs",
                "dynamic_range_db", "brightness_hz", "onset_rate", "duration_seconds"} <= set(features)
        assert [(p["prompt_id"], p["mode"], p["temperature"]) for p in sample["prompts"]] == [
            (0, "convergent", 0.4), (1, "convergent", 0.4), (2, "convergent", 0.4),
            (3, "divergent", 0.8), (4, "divergent", 0.8)]
        for prompt in sample["prompts"]:
            assert clip_token_count(prompt["visual_prompt"]) == prompt["token_count"] <= MAX_PROMPT_TOKENS
    assert samples[0]["musical_features"]["key"] == "C" and samples[1]["musical_features"]["tonality"] == "minor"
    assert samples[3]["musical_features"]["tempo"] is None


def test_same_inputs_give_the_same_bytes_and_another_file_is_not_overwritten(audio_dir, workdir, capsys):
    out = workdir / "p.json"
    assert run_cli("prompts", str(audio_dir / "01_c_major.wav"), "--output", str(out), "--seed", "3") == 0
    before = out.read_bytes()
    assert run_cli("prompts", str(audio_dir / "01_c_major.wav"), "--output", str(out), "--seed", "3") == 0
    assert out.read_bytes() == before
    capsys.readouterr()
    assert run_cli("prompts", str(audio_dir / "01_c_major.wav"), "--output", str(out), "--seed", "4") == 2
    assert out.read_bytes() == before
    # the refusal comes after the analysis (only then are the prompts known): it says the rerun will not repeat it
    assert ("already exists with other prompts; add --overwrite to replace it (the analyses are kept in "
            "p.analysis-cache.jsonl: with --overwrite the audio is not analysed again)") in capsys.readouterr().err
    assert run_cli("prompts", str(audio_dir / "01_c_major.wav"), "--output", str(out), "--seed", "4",
                   "--overwrite") == 0
    assert out.read_bytes() != before


@pytest.mark.parametrize("case", ["missing", "unsupported", "npy-without-flag", "negative-count", "bad-temperature",
                                  "empty-folder", "text-model-missing", "no-prompts", "count-overflow",
                                  "hours-of-prompts", "negative-seed"])
def test_bad_audio_input_is_one_message_and_nothing_written(case, workdir, capsys):
    (workdir / "empty").mkdir()
    (workdir / "song.m4a").write_bytes(b"x")
    np.save(workdir / "data.npy", np.array([{"audio": np.zeros(10)}], dtype=object), allow_pickle=True)
    write_wav(workdir / "ok.wav", progression(60, "major", 120, 2))
    args = {
        "missing": ["nope.wav"],
        "unsupported": ["song.m4a"],
        "npy-without-flag": ["data.npy"],
        "negative-count": ["ok.wav", "--convergent", "-1"],
        "bad-temperature": ["ok.wav", "--divergent-temperature", "nan"],
        "empty-folder": ["empty"],
        "text-model-missing": ["ok.wav", "--text-model", "no-such-model"],
        "no-prompts": ["ok.wav", "--convergent", "0", "--divergent", "0"],
        "count-overflow": ["ok.wav", "--convergent", str(10**20)],  # OverflowError in numpy, a traceback
        "hours-of-prompts": ["ok.wav", "--divergent", "1000000"],  # ran for hours per sample
        "negative-seed": ["ok.wav", "--seed", "-1"],  # ValueError in numpy's default_rng, a traceback
    }[case]
    assert run_cli("prompts", *args, "--output", "out/prompts.json") == 2
    err = capsys.readouterr().err
    assert err.startswith("music2image: error:") and "Traceback" not in err
    if case == "npy-without-flag":
        assert "--allow-pickle" in err
    if case == "unsupported":
        assert ".m4a is not supported" in err
    if case == "negative-count":
        assert "--convergent must be 0 or more, got -1" in err and "both 0" not in err
    if case == "no-prompts":
        assert "--convergent and --divergent are both 0" in err
    if case in ("count-overflow", "hours-of-prompts"):
        assert "prompts per sample; at most 1000" in err
    if case == "negative-seed":
        assert "--seed must be a whole number from 0 to 4294967295" in err
    assert not (workdir / "out").exists()


def test_upstream_npy_dataset_behind_allow_pickle(workdir, capsys):
    records = [
        {"audio": progression(57, "minor", 80, 12, rate=16000), "audio_meta": {"genre": "folk", "id": np.int64(7)}},
        {"audio": np.zeros(16000, dtype=np.float32), "audio_meta": {"genre": "silence"}},
    ]
    np.save(workdir / "dataset.npy", np.array(records, dtype=object), allow_pickle=True)
    assert run_cli("prompts", "dataset.npy", "--allow-pickle", "--output", "p.json") == 0
    assert "allow_pickle=True" in capsys.readouterr().err  # the warning
    samples = read_json(workdir / "p.json")["samples"]
    assert [s["source"] for s in samples] == ["dataset.npy[0]", "dataset.npy[1]"]
    assert samples[0]["audio_meta"] == {"genre": "folk", "id": 7}
    assert samples[0]["musical_features"]["key"] == "A" and samples[0]["musical_features"]["tonality"] == "minor"
    assert "silent" in samples[1]["error"]


def test_run_goes_from_music_to_images_and_resumes(audio_dir, workdir, tiny_model, capsys):
    args = ["run", str(audio_dir / "01_c_major.wav"), str(audio_dir / "03_silence.wav"),
            str(audio_dir / "02_a_minor.flac"), *model_flags(tiny_model), *SMALL, "--quiet"]
    assert run_cli(*args) == 0
    images = workdir / "images"
    assert sorted(p.relative_to(images).as_posix() for p in images.rglob("*.png")) == [
        f"sample_{s:03d}/sample_{s:03d}_prompt_{p:02d}.png" for s in (0, 2) for p in range(5)]
    log = read_json(images / "image_generation_log.json")
    assert log["metadata"]["successful"] == 10 and log["metadata"]["generated_this_run"] == 10
    assert [s["sample_idx"] for s in log["skipped_samples"]] == [1]  # the silent file, reported
    assert (images / "visual_prompts.json").is_file()  # `run` keeps its prompts in its folder
    before = {p: p.read_bytes() for p in images.rglob("*.png")}
    assert run_cli(*args) == 0  # the same prompts again, every image already there: nothing made twice
    assert read_json(images / "image_generation_log.json")["metadata"]["generated_this_run"] == 0
    assert {p: p.read_bytes() for p in images.rglob("*.png")} == before
    # The gallery says what music each row came from.
    assert run_cli("gallery", "images") == 0
    page = (images / "index.html").read_text()
    assert "01_c_major.wav · C major · 14" in page and "02_a_minor.flac · A minor · 8" in page


@pytest.mark.parametrize("flags", [["--width", "770"], ["--offload", "model", "--device", "cpu"],
                                   ["--dtype", "float16", "--device", "cpu"], ["--device", "cuda:7"]])
def test_run_checks_image_settings_before_analysing_audio(flags, audio_dir, workdir, capsys):
    assert run_cli("run", str(audio_dir / "01_c_major.wav"), *flags, "--model", "tiny") == 2
    assert capsys.readouterr().err.startswith("music2image: error: --")
    assert not (workdir / "generated_prompts").exists() and not (workdir / "images").exists()


def test_run_names_its_own_flag_when_the_prompts_file_cannot_be_written(audio_dir, workdir, capsys):
    """`run` has no --output; its messages said "--output song.wav: is one of the audio inputs"."""
    song = str(audio_dir / "01_c_major.wav")
    assert run_cli("run", song, "--prompts-file", song, "--overwrite", "--model", "tiny", "--output-dir", "out") == 2
    err = capsys.readouterr().err
    assert f"error: --prompts-file {song}: is one of the audio inputs" in err and "--output " not in err
    assert not (workdir / "out").exists()


def test_build_document_is_the_python_api(audio_dir):
    document = build_document([audio_dir / "02_a_minor.flac"], PromptPlan(convergent=1, divergent=1))
    assert [p["mode"] for p in document["samples"][0]["prompts"]] == ["convergent", "divergent"]


# The optional text-generation writer, through a real (tiny, random) transformers model built here ---------------
@pytest.fixture(scope="module")
def tiny_text_model(tmp_path_factory):
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-lm")
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    vocab["<|endoftext|>"] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(vocab), n_positions=1024, n_embd=32, n_layer=1, n_head=2,
                        eos_token_id=vocab["<|endoftext|>"], bos_token_id=vocab["<|endoftext|>"])
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def test_text_model_writer_gets_each_prompts_temperature_and_stays_within_77_tokens(tiny_text_model, workdir,
                                                                                   monkeypatch):
    from transformers import GenerationMixin

    temperatures = []
    real = GenerationMixin.generate

    def spy(self, *args, **kwargs):
        temperatures.append(kwargs.get("temperature"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(GenerationMixin, "generate", spy)
    write_wav(workdir / "song.wav", progression(*C_MAJOR_140))
    args = ["prompts", "song.wav", "--text-model", str(tiny_text_model), "--output", "p.json"]
    assert run_cli(*args) == 0
    assert temperatures == [0.4, 0.4, 0.4, 0.8, 0.8]  # the upstream stage's bug: its temperature never arrived
    document = read_json(workdir / "p.json")
    assert document["metadata"]["writer"] == f"transformers:{tiny_text_model}"
    load_prompts(workdir / "p.json")
    for prompt in document["samples"][0]["prompts"]:
        assert 0 < clip_token_count(prompt["visual_prompt"]) <= MAX_PROMPT_TOKENS
    first = (workdir / "p.json").read_bytes()
    assert run_cli(*args) == 0 and (workdir / "p.json").read_bytes() == first  # seeded: the same text again


def test_upstream_metadata_is_written_the_same_every_time_and_as_strict_json(workdir):
    """An object in audio_meta was written with its memory address (other bytes on every run), and NaN as a bare NaN
    token, which is not JSON."""
    import json

    meta = {"who": object(), "gain": float("nan"), "peaks": np.array([0.5, np.inf]), "level": np.float32("-inf")}
    record = {"audio": progression(57, "minor", 80, 4, rate=16000), "audio_meta": meta}
    np.save(workdir / "dataset.npy", np.array([record], dtype=object), allow_pickle=True)
    for name in ("a.json", "b.json"):
        assert run_cli("prompts", "dataset.npy", "--allow-pickle", "--output", name, "--quiet") == 0

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    assert (workdir / "a.json").read_bytes() == (workdir / "b.json").read_bytes()
    sample = json.loads((workdir / "a.json").read_text(), parse_constant=refuse)["samples"][0]
    assert sample["audio_meta"] == {"who": "<object>", "gain": "nan", "peaks": [0.5, "inf"], "level": "-inf"}


def test_upstream_metadata_that_holds_itself_or_text_without_utf8_is_written(workdir, capsys):
    """A pickled list that holds itself recursed for ever (RecursionError), and a lone surrogate in a title or a key
    had no UTF-8 when the analysis cache and the prompts file were written (UnicodeEncodeError): both tracebacks."""
    import json

    loop = []
    loop.append(loop)
    meta = {"title": "a \ud800 b", "k\udc00": 1, "loop": loop}
    record = {"audio": progression(57, "minor", 80, 4, rate=16000), "audio_meta": meta}
    np.save(workdir / "dataset.npy", np.array([record], dtype=object), allow_pickle=True)
    assert run_cli("prompts", "dataset.npy", "--allow-pickle", "--output", "p.json", "--quiet") == 0
    assert run_cli("prompts", "dataset.npy", "--allow-pickle", "--output", "p.json", "--quiet") == 0  # from the cache
    assert "Traceback" not in capsys.readouterr().err
    written = json.loads((workdir / "p.json").read_text(encoding="utf-8"))["samples"][0]["audio_meta"]
    assert written["title"] == "a \ufffd b" and written["k\ufffd"] == 1
    depth, inner = 0, written["loop"]
    while isinstance(inner, list):
        depth, inner = depth + 1, inner[0]
    assert inner == "<nested deeper than 32>" and depth == 32
