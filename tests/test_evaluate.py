"""`music2image evaluate`: planted effects give the known answers, the numbers agree with SciPy and transformers
called directly, the files are written (and only the new images embedded on a re-run), bad input is refused."""

import csv
import io
import itertools
import json
import re
import shlex
import shutil

import numpy as np
import pytest
from conftest import chromium_path, dump_dom, REPO, read_json, run_cli
from PIL import Image

from music2image.evaluation.colour import colour_measures, warmth_index
from music2image.evaluation.diversity import mean_pairwise_distance, vendi_score

BOOTSTRAP = 500


def _rows(path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


# Known answers of the measures ---------------------------------------------------------------------------------
def test_identical_embeddings_have_diversity_0_and_vendi_1():
    same = np.tile(np.random.default_rng(0).normal(size=16), (5, 1))
    assert mean_pairwise_distance(same) == pytest.approx(0.0, abs=1e-12)
    assert vendi_score(same) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_n_orthogonal_embeddings_have_vendi_n(n):
    rotation, _ = np.linalg.qr(np.random.default_rng(n).normal(size=(16, 16)))
    orthogonal = 3.0 * np.eye(16)[:n] @ rotation  # any length, any orientation: still orthogonal
    assert vendi_score(orthogonal) == pytest.approx(n, rel=1e-9)
    if n > 1:
        assert mean_pairwise_distance(orthogonal) == pytest.approx(1.0, abs=1e-12)


def test_solid_srgb_colours_have_their_known_cielab_values():
    # sRGB red in CIELAB (D65): L* 53.24, a* 80.09, b* 67.20 → C* 104.55, h 40.0° (Lindbloom's calculator).
    red = colour_measures(np.full((8, 8, 3), (255, 0, 0), np.uint8))
    assert (red.lightness, red.chroma, red.hue) == pytest.approx((53.24, 104.55, 40.00), abs=0.01)
    assert red.warmth == pytest.approx(-0.5 + 0.02 * 104.55 ** 1.07 * np.cos(np.deg2rad(40.0 - 50.0)), abs=0.01)
    assert red.colourfulness == pytest.approx(0.3 * np.hypot(255, 127.5))  # no spread: 0.3 · |mean (rg, yb)|
    blue = colour_measures(np.full((8, 8, 3), (0, 0, 255), np.uint8))
    assert (blue.lightness, blue.chroma, blue.hue) == pytest.approx((32.30, 133.81, 306.29), abs=0.01)
    assert blue.warmth < -0.5 < red.warmth  # blue cooler than grey, red warmer
    grey = colour_measures(np.full((8, 8, 3), 119, np.uint8))  # sRGB 119 is L* 50
    assert (grey.lightness, grey.chroma, grey.colourfulness) == pytest.approx((50.0, 0.0, 0.0), abs=0.05)
    assert grey.warmth == pytest.approx(-0.5, abs=0.01)
    assert warmth_index(np.array([0.0]), np.array([123.0]))[0] == -0.5


def test_colourfulness_grows_with_spread():
    rng = np.random.default_rng(0)
    muted = np.clip(128 + rng.normal(0, 4, (32, 32, 3)), 0, 255).astype(np.uint8)
    vivid = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert colour_measures(muted).colourfulness < 15  # "slightly colourful" in Hasler & Süsstrunk's scale
    assert colour_measures(vivid).colourfulness > 90


# A folder with planted effects -----------------------------------------------------------------------------------
def _pattern(level: float, variant: int, size: int = 64) -> np.ndarray:
    """An image of mean grey `level`; variant 0 is flat, others a coloured pattern around the same level."""
    if variant == 0:
        return np.full((size, size, 3), round(level), np.uint8)
    rng = np.random.default_rng(variant)
    blocks = rng.uniform(-60, 60, (8, 8, 3))
    pixels = level + np.kron(blocks - blocks.mean(), np.ones((size // 8, size // 8, 1)))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def write_planted_folder(root, samples=20, images_per_prompt=1, hostile_mood=None):
    """Convergent images of a sample are one flat grey; divergent ones are different patterns. Every image's
    lightness follows the sample's planted valence; major samples have positive valence. With several images per
    prompt, the images of one prompt are the same (seeds change nothing), so all diversity is between prompts."""
    folder = root / "out"
    entries, prompt_samples = [], []
    for sample_idx in range(samples):
        valence = -0.9 + 1.8 * sample_idx / (samples - 1)
        level = 128 + 90 * valence
        mood = hostile_mood if hostile_mood and sample_idx == 0 else "joyful" if valence > 0 else "sad"
        prompt_samples.append({"sample_idx": sample_idx, "prompts": [],
                               "musical_features": {"key": "C", "tonality": "major" if valence > 0 else "minor",
                                                    "tempo": 60.0 + 7 * ((sample_idx * 7) % 20), "mood": mood},
                               "emotion": {"valence": valence, "arousal": 0.1}})
        for prompt_id in range(5):
            mode = "convergent" if prompt_id < 3 else "divergent"
            prompt = f"sea painting {sample_idx}" if mode == "convergent" else f"storm city {sample_idx} {prompt_id}"
            for image_index in range(images_per_prompt):
                variant = 0 if mode == "convergent" else 1000 * sample_idx + prompt_id
                name = f"sample_{sample_idx:03d}/p{prompt_id}_{image_index}.png"
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(_pattern(level, variant)).save(folder / name)
                entry = {"sample_idx": sample_idx, "prompt_id": prompt_id, "mode": mode,
                         "temperature": 0.4 if mode == "convergent" else 0.8, "seed": 1000 + image_index,
                         "visual_prompt": prompt, "image_path": name, "status": "success"}
                if images_per_prompt > 1:
                    entry["image_index"] = image_index
                entries.append(entry)
    (root / "prompts.json").write_text(json.dumps({"samples": prompt_samples}))
    log = {"metadata": {"prompts_file": "prompts.json"}, "generated_images": entries}
    (folder / "image_generation_log.json").write_text(json.dumps(log))
    return folder


@pytest.fixture(scope="module")
def planted(tmp_path_factory, _hermetic_cache):
    from music2image import evaluate

    root = tmp_path_factory.mktemp("planted")
    folder = write_planted_folder(root, hostile_mood='=1+2 <script>alert("x")</script> & <b>bold</b>')
    # The prompts file is found relative to the output folder, as a folder moved with its prompts would be.
    result = evaluate(folder, "tiny", bootstrap=BOOTSTRAP, seed=3, progress=False)
    return folder, result


def test_divergent_images_are_more_diverse_when_planted(planted):
    folder, result = planted
    test = result.divergent_vs_convergent["image_diversity"]
    assert test.n == 20 and test.mean_second == pytest.approx(0.0, abs=1e-6)  # convergent images are identical
    assert test.mean_difference > 0 and test.p_value < 0.05 and test.rank_biserial == 1.0
    assert test.ci95[0] > 0
    vendi = result.divergent_vs_convergent["vendi_score"]
    assert vendi.mean_second == pytest.approx(1.0, abs=1e-4) and vendi.mean_first > 1 and vendi.p_value < 0.05
    document = read_json(folder / "evaluation" / "evaluation.json")
    assert document["headline"].startswith("Divergent prompts gave more diverse images than convergent ones")
    assert "C(3,2) = 3" in document["method"]["equal_size_subsets"]
    rows = _rows(folder / "evaluation" / "samples.csv")
    assert len(rows) == 40 and {row["matched_prompts"] for row in rows} == {"2"}
    assert {row["prompts"] for row in rows if row["mode"] == "convergent"} == {"3"}


def test_lightness_follows_planted_valence(planted):
    _, result = planted
    by_valence = result.correlations["lightness"]["valence"]
    assert by_valence.n == 20 and by_valence.rho > 0.9 and by_valence.p_value < 0.05
    assert result.correlations["lightness"]["arousal"].rho is None  # arousal does not vary: no correlation
    major_minor = result.major_minor["lightness"]
    assert (major_minor.n_first, major_minor.n_second) == (10, 10) and major_minor.mean_difference > 20
    assert major_minor.p_value < 0.05


def test_statistics_agree_with_scipy_called_directly(planted):
    from scipy import stats

    folder, _ = planted
    document = read_json(folder / "evaluation" / "evaluation.json")
    rows = _rows(folder / "evaluation" / "samples.csv")
    value = {(int(r["sample_idx"]), r["mode"]): float(r["mean_chroma"]) for r in rows}
    differences = np.array([value[(i, "divergent")] - value[(i, "convergent")] for i in range(20)])
    expected = stats.wilcoxon(differences)
    chroma = document["divergent_vs_convergent"]["mean_chroma"]
    assert chroma["p_value"] == pytest.approx(expected.pvalue, rel=1e-12)
    assert chroma["wilcoxon_statistic"] == pytest.approx(expected.statistic)
    assert chroma["mean_difference"] == pytest.approx(differences.mean(), rel=1e-12)
    interval = stats.bootstrap((differences,), np.mean, n_resamples=BOOTSTRAP, method="percentile",
                               rng=np.random.default_rng(3)).confidence_interval
    assert chroma["ci95"] == pytest.approx([interval.low, interval.high], rel=1e-12)
    assert chroma["cohens_dz"] == pytest.approx(differences.mean() / differences.std(ddof=1))

    images = _rows(folder / "evaluation" / "images.csv")
    per_sample = {}
    for row in images:
        per_sample.setdefault(int(row["sample_idx"]), []).append(float(row["lightness"]))
    lightness = [np.mean(per_sample[i]) for i in range(20)]
    valence = [float(images[5 * i]["music_valence"]) for i in range(20)]
    spearman = stats.spearmanr(lightness, valence)
    reported = document["music_vs_image"]["spearman"]["lightness"]["valence"]
    assert (reported["rho"], reported["p_value"]) == pytest.approx((spearman.statistic, spearman.pvalue), rel=1e-12)
    major = [lightness[i] for i in range(20) if valence[i] > 0]
    minor = [lightness[i] for i in range(20) if valence[i] <= 0]
    u_test = stats.mannwhitneyu(major, minor, alternative="two-sided")
    reported = document["music_vs_image"]["major_minus_minor"]["lightness"]
    assert (reported["mann_whitney_u"], reported["p_value"]) == pytest.approx((u_test.statistic, u_test.pvalue))


def test_few_samples_get_an_exact_spearman_p_value_not_the_t_approximation():
    from scipy import stats

    from music2image.evaluation.statistics import spearman

    # Three samples in the same order: spearmanr's t approximation says p = 0; of the 3! = 6 orderings, 2 have
    # |rho| = 1, so the exact two-sided p is 1/3 — nothing to call significant.
    three = spearman([1.0, 2.0, 3.0], [0.2, 0.5, 0.9], n_resamples=200, seed=0)
    assert three.rho == pytest.approx(1.0)
    assert three.p_value == pytest.approx(1 / 3)
    assert "exact" in three.note
    rng = np.random.default_rng(5)
    x = rng.normal(size=7)
    y = x + rng.normal(size=7)
    orderings = list(itertools.permutations(range(7)))
    observed = abs(stats.spearmanr(x, y).statistic)
    as_extreme = sum(abs(stats.spearmanr(x, np.asarray(y)[list(order)]).statistic) >= observed - 1e-12
                     for order in orderings)
    assert spearman(list(x), list(y), n_resamples=200, seed=0).p_value == pytest.approx(as_extreme / len(orderings))
    many = spearman(list(range(12)), [v * v for v in range(12)], n_resamples=200, seed=0)
    assert many.p_value == pytest.approx(stats.spearmanr(range(12), [v * v for v in range(12)]).pvalue)
    assert many.note is None


def test_clip_scores_agree_with_clipmodel_called_directly(planted):
    import torch
    from transformers import CLIPModel, CLIPProcessor

    from music2image.tiny import tiny_model_path

    folder, _ = planted
    model = CLIPModel.from_pretrained(tiny_model_path("clip")).eval()
    processor = CLIPProcessor.from_pretrained(tiny_model_path("clip"))
    log = {e["image_path"]: e["visual_prompt"] for e in read_json(folder / "image_generation_log.json")["generated_images"]}
    rows = _rows(folder / "evaluation" / "images.csv")
    scores = []
    for row in rows[::9]:
        inputs = processor(text=[log[row["image_path"]]], images=[Image.open(folder / row["image_path"]).convert("RGB")],
                           return_tensors="pt", padding=True)
        with torch.no_grad():
            output = model(**inputs)
        cosine = (output.logits_per_image / model.logit_scale.exp()).item()
        assert float(row["clip_score"]) == pytest.approx(100 * max(cosine, 0.0), abs=1e-3)
        scores.append(float(row["clip_score"]))
    assert max(scores) > 0  # some pairs have a positive cosine, so the comparison is not all zeros


def test_several_images_per_prompt_split_diversity(tmp_path, _hermetic_cache):
    from music2image import evaluate

    folder = write_planted_folder(tmp_path, samples=4, images_per_prompt=2)
    result = evaluate(folder, "tiny", bootstrap=BOOTSTRAP, progress=False)
    divergent = [row for row in result.samples if row.mode == "divergent"]
    assert all(row.images == 4 and row.prompts == 2 for row in divergent)
    assert all(row.between_seeds == pytest.approx(0.0, abs=1e-6) for row in divergent)  # seeds changed nothing
    assert all(row.between_prompts > 0 and row.between_prompts_same_index > 0 for row in divergent)
    assert result.document["counts"]["images_per_prompt"] == [2]
    assert {"between_seeds", "between_prompts"} <= set(result.divergent_vs_convergent)
    split = result.prompts_vs_seeds["divergent"]  # the images of one prompt are identical: all prompt, no seed
    assert split.n == 4 and split.mean_second == pytest.approx(0.0, abs=1e-6) and split.mean_difference > 0
    assert set(result.document["between_prompts_minus_between_seeds"]) == {"convergent", "divergent"}
    images = _rows(folder / "evaluation" / "images.csv")
    assert [row["image_index"] for row in images[:2]] == ["0", "1"]
    assert 'id="prompts-vs-seeds-table"' in (folder / "evaluation" / "report.html").read_text()


def test_report_shows_the_answers_and_escapes_text(planted):
    folder, _ = planted
    page = (folder / "evaluation" / "report.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "http://" not in page and "https://" not in page  # everything inline: works offline
    # In the CSV, text from the prompts file that a spreadsheet would run as a formula is quoted.
    assert _rows(folder / "evaluation" / "images.csv")[0]["music_mood"].startswith("'=1+2 <script>")
    assert len(re.findall(r'<img class="plot" alt="[^"]+" src="data:image/png;base64,', page)) == 3
    assert page.count('<tr class="comparison') == len(read_json(folder / "evaluation" / "evaluation.json")
                                                      ["divergent_vs_convergent"])


def test_the_report_says_why_valence_and_arousal_are_empty_only_when_they_are(planted, tmp_path, _hermetic_cache):
    from music2image import evaluate

    folder, result = planted  # every sample has its emotion: no note
    assert result.document["music_vs_image"]["note"] is None
    assert result.document["music_vs_image"]["samples_without"] == {"valence": 0, "arousal": 0, "tempo": 0}
    assert 'id="missing-emotion"' not in (folder / "evaluation" / "report.html").read_text()
    assert "music2image prompts" in result.document["method"]["emotion"]
    # The upstream shape (examples/visual_prompts.json): musical_features only, no emotion.
    folder = write_planted_folder(tmp_path, samples=4)
    prompts = read_json(tmp_path / "prompts.json")
    for sample in prompts["samples"][:3]:
        del sample["emotion"]
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    some = evaluate(folder, "tiny", bootstrap=BOOTSTRAP, progress=False).document["music_vs_image"]
    assert some["samples_without"] == {"valence": 3, "arousal": 3, "tempo": 0}
    assert some["note"].startswith("No valence or arousal for 3 of 4 samples: the prompts file gives them no "
                                   "`emotion`") and "use only the 1 sample that has them" in some["note"]
    del prompts["samples"][3]["emotion"]
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    document = evaluate(folder, "tiny", bootstrap=BOOTSTRAP, progress=False).document
    assert document["music_vs_image"]["note"].startswith("No valence or arousal for any sample")
    assert "`music2image prompts` carry each sample's emotion" in document["music_vs_image"]["note"]
    assert read_json(folder / "evaluation" / "evaluation.json")["music_vs_image"]["note"] == \
        document["music_vs_image"]["note"]
    # Not "fewer than 3 samples": there are 4, none with a valence.
    assert document["music_vs_image"]["spearman"]["lightness"]["valence"]["note"] == \
        "no sample has a valence in the prompts file"
    page = (folder / "evaluation" / "report.html").read_text()
    assert page.count('id="missing-emotion"') == 1 and "No valence or arousal for any sample" in page
    # Once, right under the table whose cells it explains.
    assert page.index('<table id="spearman">') < page.index('id="missing-emotion"') < \
        page.index('<table id="major-minor">')


@pytest.mark.browser
def test_report_in_a_real_browser(planted, tmp_path):

    folder, _ = planted
    dom = dump_dom(chromium_path(), (folder / "evaluation" / "report.html").as_uri(), tmp_path)
    assert "Divergent prompts gave more diverse images" in dom
    assert len(re.findall(r'<tr class="sample-row" data-mode="(convergent|divergent)"', dom)) == 40
    assert "<b>bold</b>" not in dom and "&lt;b&gt;bold&lt;/b&gt;" in dom
    assert len(re.findall(r'src="data:image/png;base64,', dom)) == 3
    # Each plot's title and key above it: below it, a caption read as the heading of the next plot, and the slope
    # chart's two colours were not explained (from the newcomer run).
    figures = re.findall(r"<figure>(.*?)</figure>", dom, re.S)
    assert len(figures) == 3 and all(f.index("<figcaption>") < f.index("<img") for f in figures)
    assert "red-brown where the divergent value is higher, blue where it is lower" in figures[1]


def test_headline_and_image_measures_for_summary_and_gallery(planted, tmp_path):
    from music2image.evaluation import headline, image_measures

    folder, result = planted
    assert headline(folder) == result.headline and headline(folder).startswith("Divergent prompts gave more")
    measures = image_measures(folder)
    assert len(measures) == 100
    first = result.images[0]
    assert measures[first.entry.image_path] == pytest.approx(
        {"clip_score": first.clip_score, "lightness": first.lightness, "chroma": first.chroma, "hue": first.hue,
         "warmth": first.warmth, "colourfulness": first.colourfulness})
    # No evaluation, or a damaged one: nothing to show, no crash.
    assert headline(tmp_path) is None and image_measures(tmp_path) == {}
    (tmp_path / "evaluation").mkdir()
    (tmp_path / "evaluation" / "evaluation.json").write_text("{not json")
    (tmp_path / "evaluation" / "images.csv").write_text("image_path,clip_score\na.png,oops\n,12\n")
    assert headline(tmp_path) is None and image_measures(tmp_path) == {"a.png": {}}


# Bad input and hostile folders -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_too_few_samples_to_reach_significance_are_said_so_not_no_clear_difference():
    """The README's offline run (--limit 10: 2 samples) said "No clear difference" with a 95 % CI that excluded 0.
    With n samples the exact two-sided Wilcoxon signed-rank p is at least 2 / 2**n: 0.0625 at n = 5, so below 6
    samples no difference could ever be "clear" and the sentence would say nothing about the images."""
    from music2image.evaluation.documents import comparison_sentence, headline_sentence

    test = {"n": 2, "mean_difference": -0.008, "ci95": [-0.015, -0.001], "p_value": 0.5, "rank_biserial": -1.0}
    assert headline_sentence({"image_diversity": test}).startswith(
        "Too few samples to tell whether divergent prompts give more or less diverse images than convergent ones "
        "(n = 2; a two-sided Wilcoxon signed-rank test needs 6 or more to reach p < 0.05): image diversity: ")
    assert comparison_sentence("vendi_score", test).startswith("too few samples to tell (6 needed): vendi score: ")
    test.update(n=6, p_value=0.4)
    assert headline_sentence({"image_diversity": test}).startswith(
        "No clear difference in image diversity between divergent and convergent prompts (image diversity: ")
    assert comparison_sentence("vendi_score", test).startswith("no clear difference: vendi score: ")


def test_bad_input_is_one_message_exit_2_and_nothing_written(workdir, capsys, _hermetic_cache):
    assert run_cli("evaluate", "nowhere", "--clip-model", "tiny") == 2
    assert "not a folder" in capsys.readouterr().err
    (workdir / "empty").mkdir()
    assert run_cli("evaluate", "empty", "--clip-model", "tiny") == 2
    assert "no image_generation_log.json here" in capsys.readouterr().err
    folder = write_planted_folder(workdir, samples=3)
    assert run_cli("evaluate", str(folder), "--clip-model", "./no/such/clip") == 2
    err = capsys.readouterr().err
    assert "--clip-model ./no/such/clip: no such folder" in err and "Traceback" not in err
    assert run_cli("evaluate", str(folder), "--clip-model", str(folder)) == 2  # a folder, but not a model
    assert "not a transformers model folder" in capsys.readouterr().err
    assert run_cli("evaluate", str(folder), "--clip-model", "tiny", "--bootstrap", "5") == 2
    assert "--bootstrap 5: must be a whole number, 100 or more" in capsys.readouterr().err
    assert run_cli("evaluate", str(folder), "--clip-model", "someone/not-cached-clip") == 2  # offline: not in cache
    assert "could not load a CLIP model" in capsys.readouterr().err
    (folder / "image_generation_log.json").write_text('{"generated_images": [{"status": "failed"}]}')
    assert run_cli("evaluate", str(folder), "--clip-model", "tiny") == 2
    assert "no successful image to evaluate" in capsys.readouterr().err
    assert not (folder / "evaluation").exists()
    (folder / "evaluation").symlink_to(workdir)  # writing through it would write outside the output folder
    write_planted_folder(workdir, samples=3)
    assert run_cli("evaluate", str(folder), "--clip-model", "tiny") == 2
    assert "is not a plain folder" in capsys.readouterr().err
    assert not list(workdir.glob("*.csv"))


def test_an_output_folder_it_cannot_write_to_is_one_message_before_clip_loads(workdir, _hermetic_cache):
    """Before, a read-only output folder was a traceback (exit 1) after CLIP had loaded and every image had been
    embedded. As root (CI) permissions do not bind: there the command runs without the capability that overrides
    them, as tests/test_bad_input.py does for `generate`."""
    import os
    import subprocess
    import sys

    folder = write_planted_folder(workdir, samples=3)
    for case in ("the output folder", "its evaluation folder"):
        target = folder if case == "the output folder" else folder / "evaluation"
        target.mkdir(exist_ok=True)
        target.chmod(0o555)
        command = [sys.executable, "-m", "music2image", "evaluate", "out", "--clip-model", "tiny"]
        if os.geteuid() == 0:
            drop = "-dac_override,-dac_read_search"
            command = [shutil.which("setpriv"), "--bounding-set", drop, "--inh-caps", drop, *command]
        try:
            out = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=120)
        finally:
            target.chmod(0o755)
        assert out.returncode == 2, out.stderr
        assert out.stderr == ("music2image: error: out/evaluation: cannot write the evaluation there: no permission "
                              f"to create anything in {target.relative_to(workdir)}; nothing was written\n"), case
        assert not (folder / "evaluation").exists() or not list((folder / "evaluation").iterdir())


def test_ctrl_c_while_the_report_is_drawn_leaves_no_evaluation_that_summary_would_show(workdir, capsys,
                                                                                        monkeypatch, _hermetic_cache):
    """Drawing the report's plots is most of the write phase. Before, the CSVs and evaluation.json were written
    first, so a Ctrl-C there left an evaluation without its report: `summary` printed its headline and the folder
    looked evaluated. Now the report is made before any file is written, and evaluation.json is written last."""
    import music2image.evaluation.report as report
    from music2image.evaluation.documents import headline

    def interrupted(result):
        raise KeyboardInterrupt

    folder = write_planted_folder(workdir, samples=3)
    monkeypatch.setattr(report, "report_html", interrupted)
    assert run_cli("evaluate", str(folder), "--clip-model", "tiny", "--quiet") == 130
    assert sorted(p.suffix for p in (folder / "evaluation").glob("*")) in ([], [".npz"])  # the cache may stay
    assert headline(folder) is None  # what `summary` and the gallery read
    monkeypatch.undo()
    assert run_cli("evaluate", str(folder), "--clip-model", "tiny", "--quiet") == 0
    assert {p.name for p in (folder / "evaluation").glob("*.*")} >= {"evaluation.json", "report.html", "images.csv"}


def test_hostile_entries_are_skipped_with_a_warning(workdir, capsys, _hermetic_cache):
    folder = write_planted_folder(workdir, samples=3)
    (workdir / "secret.png").write_bytes((folder / "sample_000" / "p0_0.png").read_bytes())
    log = read_json(folder / "image_generation_log.json")
    images = log["generated_images"]
    images[0]["image_path"] = "../secret.png"
    images[1]["image_path"] = str(workdir / "secret.png")
    images[2]["sample_idx"] = "zero"
    images[3]["temperature"] = float("nan")
    images.append(dict(images[4]))  # a duplicate
    (folder / "sample_001" / "p0_0.png").write_bytes(b"not a png")
    (folder / "sample_002" / "p1_0.png").unlink()
    log["metadata"]["prompts_file"] = "missing.json"
    (folder / "image_generation_log.json").write_text(json.dumps(log))
    assert run_cli("evaluate", str(folder), "--clip-model", "tiny", "--bootstrap", "100") == 0
    err = capsys.readouterr().err
    document = read_json(folder / "evaluation" / "evaluation.json")
    assert document["counts"]["images_evaluated"] == 15 - 6
    warnings = "\n".join(document["warnings"])
    for expected in ("image_path must be a path inside the output folder", "sample_idx must be a whole number",
                     "temperature must be a number", "a second entry for sample 0 prompt 4",
                     "sample_001/p0_0.png: cannot read the image", "sample_002/p1_0.png: missing",
                     "no prompts file found"):
        assert expected in warnings and expected in err
    assert document["music_vs_image"]["spearman"]["lightness"]["valence"]["rho"] is None


# End to end on the tiny models, with the README's commands ---------------------------------------------------------
def _readme_lines(prefix: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith(prefix)]


@pytest.mark.slow
def test_readme_evaluate_commands_end_to_end_and_only_new_images_are_embedded(workdir, capsys, _hermetic_cache):
    (generate,) = [c for c in _readme_lines("music2image generate") if " --model tiny " in f"{c} "]
    (evaluate,) = [c for c in _readme_lines("music2image evaluate") if "--clip-model tiny" in c]
    shutil.copytree(REPO / "examples", workdir / "examples")
    assert run_cli(*shlex.split(generate)[1:]) == 0
    assert run_cli(*shlex.split(evaluate)[1:]) == 0
    folder = workdir / "images_tiny"
    assert sorted(p.name for p in (folder / "evaluation").iterdir() if not p.name.startswith("embeddings")) == \
        ["evaluation.json", "images.csv", "report.html", "samples.csv"]
    document = read_json(folder / "evaluation" / "evaluation.json")
    assert document["counts"]["images_evaluated"] == 10 and document["counts"]["embedded_now"] == 10
    assert "evaluated 10 images (10 embedded now, 0 from the cache)" in capsys.readouterr().out
    # Five more images: only they are embedded; the cache serves the first ten.
    assert run_cli(*shlex.split(generate.replace("--limit 10", "--limit 15"))[1:]) == 0
    assert run_cli(*shlex.split(evaluate)[1:]) == 0
    assert "evaluated 15 images (5 embedded now, 10 from the cache)" in capsys.readouterr().out
    rows = _rows(folder / "evaluation" / "images.csv")
    assert len(rows) == 15 and {"music_key", "music_tonality", "music_tempo", "music_mood"} <= set(rows[0])
    # A changed image is another image: embedded again.
    Image.new("RGB", (64, 64), "red").save(folder / rows[0]["image_path"])
    assert run_cli("evaluate", str(folder), "--clip-model", "tiny", "--quiet") == 0
    assert "(1 embedded now, 14 from the cache)" in capsys.readouterr().out
    # `--model tiny` built the tiny models with make_tiny_model, CLIP included: a local CLIP folder is another
    # model, with a cache of its own.
    from music2image.tiny import TINY_MODEL_VERSION

    clip_folder = _hermetic_cache / "music2image" / f"tiny-sdxl-v{TINY_MODEL_VERSION}" / "clip"
    assert run_cli("evaluate", str(folder), "--clip-model", str(clip_folder), "--quiet") == 0
    assert "(15 embedded now, 0 from the cache)" in capsys.readouterr().out
    assert len(list((folder / "evaluation").glob("embeddings-*.npz"))) == 2


@pytest.mark.slow
def test_the_evaluate_benchmark_runs_on_the_tiny_clip(workdir):
    from conftest import run_subprocess

    out = run_subprocess([str(REPO / "benchmarks" / "evaluate_speed.py"), "--model", "tiny", "--images", "10"],
                         cwd=workdir, timeout=600)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["model"] == "tiny" and record["images"] == 10 and record["device"] == "cpu"
    assert record["evaluate_cold_img_s"] > 0 and record["clip_embedding_img_s"] > 0 and record["colour_img_s"] > 0
    assert set(record["cold_steps_s"]) == {"load", "images", "texts", "analysis", "write"}
    assert record["clip_embedding_cpu_s_per_img"] > 0 and len(record["load_average"]) == 3


def test_the_gallery_shows_no_measures_of_an_image_made_again_after_evaluate(workdir, _hermetic_cache):
    """`generate --overwrite` or `--replace-changed` after `evaluate` makes new images under the same names. Before,
    the gallery showed the old images' CLIP score, L*, C* and warmth under the new ones. An image newer than the
    evaluation's images.csv now shows none until `evaluate` runs again (the rule of the gallery's thumbnails)."""
    import os

    from music2image import evaluate
    from music2image.report import make_gallery

    folder = write_planted_folder(workdir, samples=3)
    result = evaluate(folder, "tiny", bootstrap=BOOTSTRAP, seed=3, progress=False)
    made_again = folder / result.images[0].entry.image_path
    Image.new("RGB", (64, 64), (250, 20, 20)).save(made_again)
    later = (folder / "evaluation" / "images.csv").stat().st_mtime + 5
    os.utime(made_again, (later, later))
    page = make_gallery(folder).read_text()
    assert page.count('class="measures"') == len(result.images) - 1
    # and summary says its headline is of the images as they were (it printed it as if of the new ones)
    from music2image.evaluation.documents import remade_since_evaluation

    assert remade_since_evaluation(folder) == 1
    from music2image.report import summary_text

    (folder / "image_generation_summary.json").write_text(json.dumps({
        "total_images_generated": 30, "total_images_failed": 0, "success_rate": 100.0, "by_mode": {},
        "by_sample": {}, "image_dimensions": "64x64", "inference_steps": 2, "used_refiner": False, "device": "cpu"}))
    assert summary_text(folder).splitlines()[-1] == ("evaluation (of the images before 1 of them were made again: "
                                                     f"run `music2image evaluate` again): {result.headline}")
    again = evaluate(folder, "tiny", bootstrap=BOOTSTRAP, seed=3, progress=False)
    os.utime(folder / "evaluation" / "images.csv", (later + 1, later + 1))
    page = make_gallery(folder).read_text()
    assert page.count('class="measures"') == len(again.images) and remade_since_evaluation(folder) == 0


def test_summary_prints_the_headline_and_the_gallery_shows_measures_and_links_the_report(planted):
    from music2image.report import make_gallery, summary_text

    folder, result = planted
    (folder / "image_generation_summary.json").write_text(json.dumps({
        "total_images_generated": 100, "total_images_failed": 0, "success_rate": 100.0, "by_mode": {},
        "by_sample": {}, "image_dimensions": "64x64", "inference_steps": 2, "used_refiner": False, "device": "cpu"}))
    assert summary_text(folder).splitlines()[-1] == f"evaluation: {result.headline}"
    page = make_gallery(folder).read_text()
    assert '<a class="evaluation" href="evaluation/report.html">' in page
    first = result.images[0]
    assert f"CLIP {first.clip_score:.1f} · L* {first.lightness:.0f}" in page
