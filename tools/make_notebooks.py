"""Write the source notebooks notebooks/01..07 (stripped, one `parameters` cell each).

The notebooks are the committed sources the book executes; this script is how they are authored,
so that every chapter shares the same frame (title, Colab link, install cell, parameters, setup).
Run: python tools/make_notebooks.py [chapter ...]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nbtools import code, header, md, setup_cell, write  # noqa: E402

from chapters import CHAPTERS  # noqa: E402


def main(argv) -> None:
    wanted = set(argv) or set(CHAPTERS)
    for name, build in CHAPTERS.items():
        if name in wanted or name.split("_")[0] in wanted:
            print("wrote", write(name, build(header, setup_cell, md, code)))


if __name__ == "__main__":
    main(sys.argv[1:])
