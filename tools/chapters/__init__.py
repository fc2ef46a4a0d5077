"""One module per chapter; each exposes build(header, setup_cell, md, code) -> list of cells."""
from importlib import import_module

NAMES = ("01_data", "02_gan", "03_encoder", "04_attack", "05_baselines", "06_results", "07_adaptive")
CHAPTERS = {}
for _name in NAMES:
    try:
        CHAPTERS[_name] = import_module(f"chapters.ch{_name[:2]}").build
    except ModuleNotFoundError:
        pass
