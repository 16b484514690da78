"""Files we write: images with their recipe inside (image.py), atomic writes, the lock and the write seam
(files.py), and the log and summary documents (documents.py). The journal, which resume reads, is journal.py."""

from .documents import LOG_NAME, SUMMARY_NAME, TEXT_LOG_NAME, log_document, summary_document
from .files import (
    LOCK_NAME,
    DEFAULT_FILES,
    Files,
    OutputLock,
    atomic_write_bytes,
    atomic_write_json,
    now_iso,
    remove_stale_temporaries,
)
from ..image_text import read_image_text  # read back without decoding pixels
from .image import a1111_parameters, a1111_quote, encode_image

__all__ = [
    "DEFAULT_FILES", "Files", "LOCK_NAME", "LOG_NAME", "OutputLock", "SUMMARY_NAME", "TEXT_LOG_NAME",
    "a1111_parameters", "a1111_quote", "atomic_write_bytes", "atomic_write_json", "encode_image", "log_document",
    "now_iso", "read_image_text", "remove_stale_temporaries", "summary_document",
]
