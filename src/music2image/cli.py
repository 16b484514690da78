"""The command line: parses arguments, calls the library, turns domain errors into messages and exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import __version__
from .errors import ExitStatus, Music2ImageError
from .prompts import DEFAULT_PROMPTS_FILE
from .settings import (
    DEFAULT_MODEL,
    DEFAULT_REFINER_MODEL,
    DTYPES,
    IMAGE_FORMATS,
    OFFLOAD_MODES,
    SCHEDULERS,
    TIMESTEP_SPACINGS,
    GenerationSettings,
)

EXIT_CODES_HELP = """exit codes:
  0    every image succeeded
  1    the run finished but some images failed (see the log), or results could not be written (disk full)
  2    bad input or usage: nothing was written
  130  interrupted (Ctrl-C / SIGTERM): run the same command again to resume
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and exit 2), not a usage dump."""

    def error(self, message):
        self.exit(ExitStatus.USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _sample_range(text: str) -> tuple[int, int]:
    start, sep, stop = text.partition(":")
    try:
        first = int(start) if start else 0
        last = int(stop) if stop else 10**9
    except ValueError:
        first = last = -1
    if not sep or first < 0 or last <= first:
        raise argparse.ArgumentTypeError(f"{text!r} must be A:B with 0 <= A < B (sample_idx A up to, not including, B)")
    return (first, last)


def _batch_size(text: str) -> int | str:
    return "auto" if text == "auto" else _positive_int(text)


def _add_generation_flags(p: argparse.ArgumentParser) -> None:
    d = GenerationSettings()
    p.add_argument("--prompts-file", default=DEFAULT_PROMPTS_FILE, help="visual-prompts JSON (default: %(default)s)")
    p.add_argument("--output-dir", default="images", help="where images, log and summary go (default: %(default)s)")
    p.add_argument("--width", type=_int, default=d.width, help="image width, multiple of 8, >= 64 (default: %(default)s)")
    p.add_argument("--height", type=_int, default=d.height, help="image height, multiple of 8, >= 64 (default: %(default)s)")
    p.add_argument("--steps", type=_int, default=d.steps, help="denoising steps (default: %(default)s)")
    p.add_argument("--refiner", action="store_true", help="finish with the SDXL refiner (ensemble of experts)")
    p.add_argument("--device", default=d.device, help="auto (cuda, then mps, then cpu), cpu, mps, cuda, cuda:N (default: %(default)s)")
    p.add_argument("--limit", type=_positive_int, help="at most N prompts (after sample selection)")
    p.add_argument("--samples", type=_positive_int, help="only the first N samples of the file")
    p.add_argument("--sample-range", type=_sample_range, metavar="A:B", help="only samples with A <= sample_idx < B")
    p.add_argument("--no-save", action="store_true", help="generate and write log + summary, but no image files")
    p.add_argument("--model", default=d.model,
                   help=f"base model: hub id, local diffusers folder, single-file .safetensors checkpoint (A1111/Civitai "
                        f"layout), or 'tiny' (default: {DEFAULT_MODEL})")
    p.add_argument("--model-config", metavar="FOLDER_OR_ID",
                   help="for a single-file --model: the diffusers configs of its architecture (a local folder works "
                        "offline; default: inferred by diffusers and read from the hub)")
    p.add_argument("--vae", default=None,
                   help="another VAE (hub id, folder or single .safetensors file), e.g. madebyollin/sdxl-vae-fp16-fix")
    p.add_argument("--refiner-model", default=d.refiner_model,
                   help=f"refiner model, as --model (default: {DEFAULT_REFINER_MODEL})")
    p.add_argument("--refiner-model-config", metavar="FOLDER_OR_ID",
                   help="for a single-file --refiner-model: the diffusers configs of its architecture")
    p.add_argument("--refiner-switch", type=_float, default=d.refiner_switch,
                   help="fraction of the steps run by the base before the refiner takes over (default: %(default)s)")
    p.add_argument("--seed", type=_int, default=d.seed,
                   help="base seed; each image's seed comes from (seed, sample_idx, prompt_id) (default: %(default)s)")
    p.add_argument("--guidance-scale", type=_float, default=d.guidance_scale, help="classifier-free guidance (default: %(default)s)")
    p.add_argument("--negative-prompt", default=None, help="negative prompt for every image (default: none)")
    p.add_argument("--scheduler", default=d.scheduler, choices=SCHEDULERS, help="sampler (default: %(default)s)")
    p.add_argument("--timestep-spacing", default=None, choices=TIMESTEP_SPACINGS,
                   help="override the scheduler's timestep spacing (few-step models want trailing)")
    p.add_argument("--dtype", default=d.dtype, choices=DTYPES, help="auto: float16 on cuda; on cpu bfloat16 where it has native bfloat16 (AVX-512 BF16 or AMX), else float32; float32 on mps (default: %(default)s)")
    p.add_argument("--batch-size", type=_batch_size, default=d.batch_size,
                   help="prompts per pipeline call; auto: from free GPU memory, 1 on CPU (default: %(default)s)")
    p.add_argument("--offload", default=d.offload, choices=OFFLOAD_MODES, help="move weights to the GPU only when used (default: %(default)s)")
    p.add_argument("--vae-tiling", action="store_true", help="decode in tiles (less memory at large sizes)")
    p.add_argument("--lora", metavar="PATH_OR_ID",
                   help="a LoRA for the base (.safetensors file, folder or hub id), fused into the weights; few-step "
                        "LoRAs (LCM, Lightning, Hyper-SD) also want --scheduler, --timestep-spacing trailing, low "
                        "--guidance-scale and --steps")
    p.add_argument("--lora-scale", type=_float, default=1.0, help="strength of --lora (default: %(default)s)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the UNet and VAE decoder for the run's fixed shapes (compile time reported apart)")
    p.add_argument("--format", dest="image_format", default=d.image_format, choices=IMAGE_FORMATS, help="image file format (default: %(default)s)")
    p.add_argument("--truncate-prompts", action="store_true",
                   help="keep only the first 75 CLIP tokens of each prompt, as stock SDXL does (default: encode long "
                        "prompts whole, in 75-token chunks)")
    p.add_argument("--overwrite", action="store_true", help="regenerate everything, even images already made with another recipe")
    p.add_argument("--quiet", action="store_true", help="no progress bar; only warnings and errors")


def _add_prompt_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--convergent", type=_int, default=3, help="convergent prompts per sample (default: %(default)s)")
    p.add_argument("--divergent", type=_int, default=2, help="divergent prompts per sample (default: %(default)s)")
    p.add_argument("--convergent-temperature", type=_float, default=0.4,
                   help="sampling temperature of convergent prompts; 0 = always the best match (default: %(default)s)")
    p.add_argument("--divergent-temperature", type=_float, default=0.8,
                   help="sampling temperature of divergent prompts (default: %(default)s)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="read upstream .npy datasets (np.load with pickle: can run code from the file; trusted files only)")
    p.add_argument("--text-model", metavar="DIR",
                   help="a local transformers causal-LM folder that writes the sentences (default: the built-in "
                        "descriptor vocabulary)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="music2image", description="Turn visual prompts (from music) into SDXL images.",
                     epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"music2image {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of errors (for developers)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    generate = commands.add_parser("generate", help="generate images from a visual-prompts file",
                                   description="Generate one image per prompt of a visual-prompts file.",
                                   epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_generation_flags(generate)
    generate.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                          help="show the full traceback of errors (for developers)")
    generate.set_defaults(func=_cmd_generate)

    show = commands.add_parser("show", help="print the recipe inside an image made by music2image")
    show.add_argument("image")
    show.add_argument("--json", action="store_true", help="only the recipe, as JSON")
    show.set_defaults(func=_cmd_show)

    regenerate = commands.add_parser("regenerate", help="make an image again from the recipe inside it")
    regenerate.add_argument("image")
    regenerate.add_argument("--output", help="where to write it (default: IMAGE.regenerated.png next to it)")
    regenerate.add_argument("--device", help="default: the device it was made on (byte-identical there)")
    regenerate.set_defaults(func=_cmd_regenerate)

    grid = commands.add_parser("grid", help="contact sheets: one per sample, plus an overview (OUTPUT_DIR/grids)")
    grid.add_argument("output_dir")
    grid.add_argument("--thumb-size", type=_positive_int, default=256, help="tile size in pixels (default: %(default)s)")
    grid.add_argument("--overview-thumb-size", type=_positive_int, default=128,
                      help="tile size in the overview (default: %(default)s)")
    grid.set_defaults(func=_cmd_grid)

    gallery = commands.add_parser("gallery", help="a static index.html in the output folder (works offline)")
    gallery.add_argument("output_dir")
    gallery.add_argument("--thumb-size", type=_positive_int, default=256, help="thumbnail size (default: %(default)s)")
    gallery.set_defaults(func=_cmd_gallery)

    summary = commands.add_parser("summary", help="success rate, by mode, by sample and failures, as a table")
    summary.add_argument("output_dir")
    summary.add_argument("--json", action="store_true", help="the summary JSON, for machines")
    summary.set_defaults(func=_cmd_summary)

    prompts = commands.add_parser(
        "prompts", help="analyse music and write a visual-prompts file",
        description="Analyse audio files (wav, flac, ogg, mp3, aiff) or folders of them and write visual prompts in "
                    "the schema `generate` reads.", epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    prompts.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files, folders, or an upstream .npy dataset")
    prompts.add_argument("--output", default=DEFAULT_PROMPTS_FILE, help="the visual-prompts JSON (default: %(default)s)")
    _add_prompt_flags(prompts)
    prompts.add_argument("--seed", type=_int, default=GenerationSettings().seed,
                         help="prompt sampling seed; each prompt's comes from (seed, sample_idx, prompt_id) (default: %(default)s)")
    prompts.add_argument("--overwrite", action="store_true", help="replace an existing, different --output file")
    prompts.add_argument("--quiet", action="store_true", help="no progress bar; only warnings and errors")
    prompts.set_defaults(func=_cmd_prompts)

    run = commands.add_parser(
        "run", help="music to images in one command: `prompts`, then `generate`",
        description="Analyse the audio, write the visual prompts to --prompts-file, then generate the images. "
                    "Every `generate` flag works here; running it again resumes.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files, folders, or an upstream .npy dataset")
    _add_generation_flags(run)
    _add_prompt_flags(run)
    run.set_defaults(func=_cmd_run)

    tiny = commands.add_parser("make-tiny-model", help="write the tiny random SDXL (base + refiner) used for offline tests")
    tiny.add_argument("directory", help="folder to write base/ and refiner/ into")
    tiny.set_defaults(func=_cmd_make_tiny_model)
    return parser


def _configure_logging(quiet: bool) -> None:
    logger = logging.getLogger("music2image")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for old in [h for h in logger.handlers if getattr(h, "_music2image_cli", False)]:
        logger.removeHandler(old)  # main() may run many times in one process (tests, notebooks)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    handler._music2image_cli = True
    logger.addHandler(handler)


def _settings_from_args(args) -> GenerationSettings:
    return GenerationSettings(
        model=args.model,
        model_config=args.model_config,
        refiner=args.refiner,
        refiner_model=args.refiner_model,
        refiner_model_config=args.refiner_model_config,
        refiner_switch=args.refiner_switch,
        width=args.width,
        height=args.height,
        steps=args.steps,
        guidance_scale=args.guidance_scale,
        negative_prompt=args.negative_prompt,
        scheduler=args.scheduler,
        timestep_spacing=args.timestep_spacing,
        seed=args.seed,
        dtype=args.dtype,
        device=args.device,
        batch_size=args.batch_size,
        offload=args.offload,
        vae_tiling=args.vae_tiling,
        compile=args.compile,
        lora=args.lora,
        lora_scale=args.lora_scale,
        image_format=args.image_format,
        truncate_prompts=args.truncate_prompts,
        vae=args.vae,
    )


def _cmd_generate(args) -> int:
    from .generator import BatchImageGenerator

    generator = BatchImageGenerator(
        prompts_file=args.prompts_file,
        output_dir=args.output_dir,
        limit=args.limit,
        samples=args.samples,
        sample_range=args.sample_range,
        save_images=not args.no_save,
        overwrite=args.overwrite,
        progress=False if args.quiet else None,
        settings=_settings_from_args(args),
    )
    result = generator.run()
    if result.process_index:  # under `accelerate launch`, the main process speaks for the launch
        return result.exit_status
    state = "interrupted" if result.interrupted else "done"
    print(
        f"{state}: {result.successful} succeeded, {result.failed} failed, "
        f"{result.total_prompts - len(result.images)} pending, {len(result.skipped_samples)} samples skipped "
        f"-> {result.log_path}"
    )
    return result.exit_status


def _write_prompts(args, output: str, overwrite: bool) -> dict:
    from .music import PromptPlan, write_prompts_file

    plan = PromptPlan(convergent=args.convergent, divergent=args.divergent,
                      convergent_temperature=args.convergent_temperature,
                      divergent_temperature=args.divergent_temperature, seed=args.seed)
    document = write_prompts_file(args.audio, output, plan, allow_pickle=args.allow_pickle, text_model=args.text_model,
                                  overwrite=overwrite, progress=not args.quiet and sys.stderr.isatty())
    meta = document["metadata"]
    prompts = sum(len(sample["prompts"]) for sample in document["samples"])
    print(f"prompts: {meta['total_samples'] - meta['skipped_samples']} samples, {prompts} prompts, "
          f"{meta['skipped_samples']} skipped -> {output}")
    return document


def _cmd_prompts(args) -> int:
    document = _write_prompts(args, args.output, args.overwrite)
    return ExitStatus.OK if document["metadata"]["skipped_samples"] < document["metadata"]["total_samples"] else ExitStatus.SOME_FAILED


def _cmd_run(args) -> int:
    from .engine import available_device, resolved_dtype_name

    # Check the image settings, and that they suit the device, before spending minutes on audio analysis
    # (the same checks `generate` makes before it loads a model).
    settings = _settings_from_args(args).validate()
    resolved_dtype_name(settings.dtype, available_device(settings.device), settings.offload)
    document = _write_prompts(args, args.prompts_file, args.overwrite)
    if not any(sample["prompts"] for sample in document["samples"]):
        print("music2image: no sample gave prompts (see the warnings above); no images to make", file=sys.stderr)
        return ExitStatus.SOME_FAILED
    return _cmd_generate(args)


def _cmd_show(args) -> int:
    import json

    from .generator import read_recipe

    document = read_recipe(args.image)
    parameters = document.pop("parameters", None)
    if not args.json and parameters:
        print(parameters)
        print()
    print(json.dumps(document, indent=2, ensure_ascii=False))
    return ExitStatus.OK


def _cmd_regenerate(args) -> int:
    from .generator import regenerate_image

    print(f"written: {regenerate_image(args.image, args.output, args.device)}")
    return ExitStatus.OK


def _cmd_grid(args) -> int:
    from .report import make_grids

    written = make_grids(args.output_dir, args.thumb_size, args.overview_thumb_size)
    print(f"{len(written)} contact sheets in {written[-1].parent if written else args.output_dir}")
    return ExitStatus.OK


def _cmd_gallery(args) -> int:
    from .report import make_gallery

    print(f"gallery: {make_gallery(args.output_dir, args.thumb_size)}")
    return ExitStatus.OK


def _cmd_summary(args) -> int:
    import json
    from pathlib import Path

    from .outputs import SUMMARY_NAME
    from .report import read_json_file, summary_text

    if args.json:
        print(json.dumps(read_json_file(Path(args.output_dir) / SUMMARY_NAME), indent=2, ensure_ascii=False))
    else:
        print(summary_text(Path(args.output_dir)))
    return ExitStatus.OK


def _cmd_make_tiny_model(args) -> int:
    from .tiny import make_tiny_model

    path = make_tiny_model(args.directory)
    print(f"tiny SDXL written: --model {path / 'base'} --refiner-model {path / 'refiner'}\n"
          f"as single files: --model {path / 'base.safetensors'} --model-config {path / 'base'} "
          f"--refiner-model {path / 'refiner.safetensors'} --refiner-model-config {path / 'refiner'}")
    return ExitStatus.OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed as one line)
        return int(exc.code or 0)
    # Under `accelerate launch` only the main process (RANK 0) talks; the others report warnings and errors.
    _configure_logging(getattr(args, "quiet", False) or os.environ.get("RANK", "0") != "0")
    try:
        return int(args.func(args))
    except Music2ImageError as exc:
        if args.traceback:
            raise
        if not getattr(exc, "shared", False) or os.environ.get("RANK", "0") == "0":  # one message per launch
            print(f"music2image: error: {exc}", file=sys.stderr)
        return int(exc.exit_status)
    except KeyboardInterrupt:
        if args.traceback:
            raise
        print("music2image: interrupted; run the same command again to resume", file=sys.stderr)
        return int(ExitStatus.INTERRUPTED)


def main_exit() -> None:
    """Console-script entry point."""
    sys.exit(main())
