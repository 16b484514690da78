"""Long prompts: encoded whole in 75-token chunks by default, cut at 75 tokens with --truncate-prompts."""

import json

import torch
from PIL import Image
from conftest import SMALL, model_flags, read_json, run_cli
from diffusers import StableDiffusionXLPipeline

from music2image.text_encoding import encode_long, prompt_embeddings, token_info

WORDS = ("crimson violin echoes across a frozen harbour while golden lanterns sway above dancers in slow spirals "
         "of mist and amber light ").split()
LONG = " ".join(WORDS[i % len(WORDS)] for i in range(200))  # a 200-word prompt, as the upstream writer makes
SHORT = "a calm blue lake at dusk"


def test_short_prompt_embeddings_equal_the_stock_encoder(tiny_model):
    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_model / "base"), use_safetensors=True)
    with torch.no_grad():
        stock = pipe.encode_prompt([SHORT, "golden light"], device="cpu", num_images_per_prompt=1,
                                   do_classifier_free_guidance=True, negative_prompt=["blurry"] * 2)
        ours = prompt_embeddings(pipe, [SHORT, "golden light"], "blurry", 1, "cpu", torch.float32)
    assert torch.equal(stock[0], ours["prompt_embeds"]) and torch.equal(stock[1], ours["negative_prompt_embeds"])
    assert torch.equal(stock[2], ours["pooled_prompt_embeds"])
    assert torch.equal(stock[3], ours["negative_pooled_prompt_embeds"])


def test_chunked_and_truncated_embeddings_differ_beyond_75_tokens(tiny_model):
    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_model / "base"), use_safetensors=True)
    info = token_info(pipe.tokenizer_2, LONG)
    assert info.tokens > 150 and info.chunks == -(-info.tokens // 75)
    with torch.no_grad():
        chunked, pooled = encode_long(pipe, [LONG], info.chunks)
        stock = pipe.encode_prompt(LONG, device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=False)[0]
    assert chunked.shape[1] == 77 * info.chunks and stock.shape[1] == 77
    assert torch.equal(chunked[:, :77], stock)  # the first chunk is what the stock encoder keeps...
    assert not torch.equal(chunked[:, 77:154], chunked[:, :77])  # ...and the rest carries the words it dropped


def _run(workdir, tiny_model, out, *extra):
    doc = {"samples": [{"sample_idx": 0, "prompts": [
        {"prompt_id": 0, "mode": "convergent", "temperature": 0.4, "visual_prompt": LONG},
        {"prompt_id": 1, "mode": "convergent", "temperature": 0.4, "visual_prompt": SHORT},
        {"prompt_id": 2, "mode": "divergent", "temperature": 0.8, "visual_prompt": LONG + " under a violet sky"}]}]}
    (workdir / "p.json").write_text(json.dumps(doc))
    assert run_cli("generate", "--prompts-file", "p.json", *model_flags(tiny_model), *SMALL, "--output-dir", out, *extra) == 0
    return read_json(workdir / out / "image_generation_log.json")["generated_images"]


def test_cli_chunks_by_default_truncates_on_request_and_logs_token_counts(workdir, tiny_model, capsys):
    chunked = _run(workdir, tiny_model, "chunked", "--batch-size", "3")
    err = capsys.readouterr().err
    assert err.count("2 of 3 prompts are longer than CLIP's 75 tokens: encoded whole, in 75-token chunks") == 1
    truncated = _run(workdir, tiny_model, "truncated", "--truncate-prompts")
    assert "only their first 75 tokens are used" in capsys.readouterr().err
    assert [e["prompt_encoding"] for e in chunked] == ["chunked", "full", "chunked"]
    assert [e["prompt_encoding"] for e in truncated] == ["truncated", "full", "truncated"]
    assert chunked[0]["token_count"] == truncated[0]["token_count"] > 75
    assert chunked[1]["token_count"] < 75

    def png(folder, pid):  # pixels only: the embedded recipes differ by design
        return Image.open(workdir / folder / "sample_000" / f"sample_000_prompt_{pid:02d}.png").tobytes()

    assert png("chunked", 0) != png("truncated", 0)  # the dropped words now change the image
    assert png("chunked", 1) == png("truncated", 1)  # a short prompt is encoded the same either way


def test_words_after_token_75_count_only_when_chunked(tiny_model):
    from music2image.engine import Engine, ImageRequest
    from music2image.settings import GenerationSettings

    # Two prompts that differ only after token 75, with one seed: cut, they are the same image; chunked, not.
    requests = [ImageRequest(LONG, 42), ImageRequest(LONG + " under a violet sky", 42)]
    for truncate, same in ((True, True), (False, False)):
        settings = GenerationSettings(model=str(tiny_model / "base"), width=64, height=64, steps=2,
                                      truncate_prompts=truncate)
        first, second = Engine.load(settings, device="cpu").generate(requests)
        assert (first.pixels.tobytes() == second.pixels.tobytes()) is same
