"""egan_lib: the small, tested library behind the EGAN tutorial book.

EGAN (Pérez-Bravo et al.) defends an image classifier by replacing an input x with
G(E(x)): E is an encoder trained to invert a frozen DCGAN generator G.

One module per concern:
    config       profiles (smoke / cpu / paper), device and seeding helpers
    data         MNIST / Fashion-MNIST as uint8-exact tensors, offline-safe loaders
    models       the paper's G, D, E and classifier C
    attacks      FGSM and the eps grid
    training     the DCGAN update, the paper's encoder algorithm, the classifier
    checkpoints  load-or-train with atomic, verified checkpoint files
    defenses     the seven methods behind one purify(x) interface (EGAN and the five baselines)
    evaluate     the paper's protocol, Wilson intervals, the results JSON
    adaptive     PGD, BPDA, on-manifold attacks: attacking the whole defended system
    claims       the paper's claims checked against our numbers
    plots, slider  the figures and the epsilon sliders
    workflow     the chapters' shared setup: a Workspace with load-or-train getters
    explore      small measurements the chapters show (statistics, reconstructions, timing)
    pipeline     executes the whole book headlessly (python -m egan_lib.pipeline)
"""

__version__ = "0.1.0"

from .config import PROFILES, Profile, device, get_profile, seed_everything  # noqa: E402,F401


def setup(*args, **kwargs):
    """The setup cell of every chapter; see ``egan_lib.workflow.setup``."""
    from .workflow import setup as _setup
    return _setup(*args, **kwargs)
