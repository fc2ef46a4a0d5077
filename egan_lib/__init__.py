"""egan_lib: the small, tested library behind the EGAN tutorial book.

EGAN (Pérez-Bravo et al.) defends an image classifier by replacing an input x with
G(E(x)): E is an encoder trained to invert a frozen DCGAN generator G.

One module (or package) per concern; CONTRIBUTING.md draws the picture:
    _validate    the input contract every public function follows (its docstring states it)
    config       profiles (smoke / cpu / paper) and their checks, device, seeding, machine, eps grid
    data         MNIST / Fashion-MNIST as uint8-exact tensors, offline-safe loaders (datacache: the digest)
    models       the paper's G, D, E and classifier C
    training     the shared mini-batch loop, the GAN step, the trainers of G, E and C
    checkpoints  verified checkpoint files (written atomically)
    workflow     the chapters' Workspace and its one load-or-train recipe
    defenses/    the methods behind one purify(x) interface, one module each, and their registry
    attacks/     FGSM, PGD, BPDA, the on-manifold search, AutoAttack, EOT, on a shared base
    eval/        statistics, timing, the protocol, results files and their schema, stored evaluations,
                 the adaptive study and campaign, the paper's claims, published references
    explore, plots, slider, show   the measurements, figures and shown source of the chapters
    pipeline     executes the whole book headlessly (python -m egan_lib.pipeline)
    studies/     long, resumable studies (the training budget of G and E)
"""

__version__ = "0.1.0"

from .config import PROFILES, Profile, device, get_profile, seed_everything  # noqa: E402,F401


def setup(*args, **kwargs):
    """The setup cell of every chapter; see ``egan_lib.workflow.setup``."""
    from .workflow import setup as _setup
    return _setup(*args, **kwargs)
