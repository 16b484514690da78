#!/usr/bin/env python3
"""The original tool's entry point, kept so existing commands work unchanged:

    python3 generate_images_from_prompts.py --limit 10

is `music2image generate --limit 10`. Install first (see README): `pip install -e .`
"""

import sys

try:
    from music2image import BatchImageGenerator  # noqa: F401  (the seed's scripts import it from here)
    from music2image.cli import main
except ImportError as exc:  # pragma: no cover - only without an install
    sys.exit(f"music2image is not installed ({exc}); run `pip install -e .` in this folder first (see README.md)")

if __name__ == "__main__":
    # Its help and errors name this script, not `music2image generate`.
    sys.exit(main(["generate", *sys.argv[1:]], generate_prog="generate_images_from_prompts.py"))
