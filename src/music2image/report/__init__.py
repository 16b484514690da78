"""Looking at results: the summary as a table (summary.py), contact-sheet grids (grids.py), and static HTML gallery
pages (gallery.py, from templates/).

All three read the output folder's log or summary as a stranger's file (entries.py validates every entry), never
guess paths, and write only inside the output folder, never through a link (safe_paths).
"""

from .entries import Entry, by_sample, load_entries, read_json_file, read_log
from .gallery import make_gallery
from .grids import make_grids
from .summary import summary_text

__all__ = ["Entry", "by_sample", "load_entries", "make_gallery", "make_grids", "read_json_file", "read_log",
           "summary_text"]
