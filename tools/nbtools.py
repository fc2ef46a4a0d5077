"""Authoring helpers for the source notebooks (notebooks/*.ipynb are the committed sources;
the chapter scripts in tools/chapters/ write them, stripped of outputs).

Usage: python tools/make_notebooks.py   (rewrites notebooks/NN_*.ipynb)
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


def repo_url() -> str:
    """The repository URL, read from the one place it is set: _config.yml (repository.url)."""
    cfg = ROOT / "_config.yml"
    m = re.search(r"^repository:\s*\n(?:\s+.*\n)*?\s+url:\s*(\S+)", cfg.read_text(), re.M)
    if not m:
        raise RuntimeError("_config.yml: no repository.url; it is the one place the URL is set")
    return m.group(1).strip().strip('"\'')


def header(number: str, title: str, name: str) -> list:
    url = repo_url()
    gh = url.replace("https://github.com/", "")
    colab = f"https://colab.research.google.com/github/{gh}/blob/main/notebooks/{name}.ipynb"
    return [
        md(f"# {number}. {title}\n\n[Open this chapter in Colab]({colab}) · "
           f"[source notebook]({url}/blob/main/notebooks/{name}.ipynb)"),
        code(
            "# Colab only: install egan_lib from the repository (it never reinstalls Colab's torch).\n"
            "# Anywhere else this cell does nothing.\n"
            "import subprocess, sys\n"
            "if \"google.colab\" in sys.modules:\n"
            f"    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", \"egan_lib @ git+{url}\"], check=True)",
            tags=["colab-install", "hide-input"]),
        code(
            "# Parameters (papermill overrides them; see the Reproduce page)\n"
            "profile = \"cpu\"           # smoke | cpu | paper\n"
            "seed = 0\n"
            "device = \"auto\"           # auto | cpu | cuda | mps\n"
            "data_dir = None           # MNIST cache (default $EGAN_DATA or ~/.cache/egan_lib)\n"
            "artifacts_dir = \"artifacts\"  # checkpoints of the models this chapter trains or loads\n"
            "results_dir = \"results\"      # where the results chapters write their JSON\n"
            "retrain = False           # True: train from scratch even if weights exist",
            tags=["parameters"]),
    ]


def setup_cell(extra: str = "") -> dict:
    return code(
        "%matplotlib inline\n"
        "import matplotlib.pyplot as plt\n"
        "import torch\n"
        "import egan_lib as el\n"
        "from egan_lib import explore, plots\n"
        + extra +
        "\nws = el.setup(profile, seed, device, data_dir, artifacts_dir, retrain=retrain)\n"
        "print(f\"profile {ws.profile.name}, device {ws.device}, seed {ws.seed}, torch {torch.__version__}, \"\n"
        "      f\"{torch.get_num_threads()} threads\")")


def md(text: str, tags=None) -> dict:
    c = nbformat.v4.new_markdown_cell(text.strip("\n"))
    if tags:
        c.metadata["tags"] = list(tags)
    return c


def code(text: str, tags=None) -> dict:
    text = text.strip("\n")
    # egan_lib's figures live outside pyplot: a cell shows one by ending with it
    if re.search(r"^fig = (plots|study)\.", text, re.M) and not text.rstrip().endswith("\nfig"):
        text += "\nfig"
    c = nbformat.v4.new_code_cell(text)
    if tags:
        c.metadata["tags"] = list(tags)
    return c


def write(name: str, cells: list) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    for i, c in enumerate(nb.cells):          # stable ids: regenerating gives the same file
        c["id"] = f"{name[:2]}-{i:02d}"
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["colab"] = {"provenance": []}
    path = ROOT / "notebooks" / f"{name}.ipynb"
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return path
