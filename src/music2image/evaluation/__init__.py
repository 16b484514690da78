"""`music2image evaluate`: measure a finished output folder against its prompts and its music.

embeddings (CLIP) · colour (CIELAB) · diversity (pairwise distance, Vendi) · statistics (SciPy) · analysis (the
answers) · documents (CSV, JSON, and reading them back) · report (HTML) · run (`evaluate()`, the one entry point).
Heavy libraries (torch, transformers, SciPy, scikit-image, Matplotlib) load only when `evaluate()` runs.
"""

from .analysis import ImageMeasures, MusicSample, SampleModeMeasures
from .documents import headline, image_measures
from .embeddings import DEFAULT_CLIP_MODEL
from .run import EvaluationResult, evaluate
from .statistics import Correlation, GroupDifference, PairedTest

__all__ = [
    "DEFAULT_CLIP_MODEL",
    "Correlation",
    "EvaluationResult",
    "GroupDifference",
    "ImageMeasures",
    "MusicSample",
    "PairedTest",
    "SampleModeMeasures",
    "evaluate",
    "headline",
    "image_measures",
]
