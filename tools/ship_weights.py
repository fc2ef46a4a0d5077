"""Copy a run's verified checkpoints into egan_lib/weights/<profile>/ (shipped with the package).

    python tools/ship_weights.py --profile cpu [--artifacts artifacts]

Networks whose exact weights other checkpoints or results depend on (G: the encoder's config names G's
sha256; C: the attacks are computed on it; E: the budget study measured this very encoder, and its sha256
is checked against the study's file) are kept in float32; the others are stored in half precision.
A manifest.json lists every file with its sha256, size, precision and producing config; files shipped
earlier whose networks are not in the artifacts (trained in another sitting) keep their entries.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from egan_lib.checkpoints import load_checkpoint, save_checkpoint, state_sha256  # noqa: E402

FULL_PRECISION = {"generator", "classifier", "encoder"}
LIMIT_BYTES = 20 * 1024 * 1024


def already_shipped(path: Path, ck, half: bool) -> bool:
    """Whether ``path`` already holds ``ck``'s weights (at the precision they ship in): then it is kept
    byte for byte, since other checkpoints and stored results name its sha256."""
    if not path.is_file():
        return False
    shipped = load_checkpoint(path)
    state = {k: v.half() if half and v.is_floating_point() else v for k, v in ck.state_dict.items()}
    return shipped.kind == ck.kind and state_sha256(shipped.state_dict) == state_sha256(state)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--artifacts", default=str(ROOT / "artifacts"))
    a = ap.parse_args()
    src = Path(a.artifacts) / "checkpoints" / a.profile
    dst = ROOT / "egan_lib" / "weights" / a.profile
    dst.mkdir(parents=True, exist_ok=True)
    # files shipped before and not in this run's artifacts (networks trained in an earlier sitting) stay listed
    old = dst / "manifest.json"
    manifest = json.loads(old.read_text()) if old.is_file() else {"profile": a.profile, "files": {}}
    manifest["files"] = {k: v for k, v in manifest.get("files", {}).items() if (dst / k).is_file()}
    for path in sorted(src.glob("*.pt")):
        ck = load_checkpoint(path)
        half = ck.kind not in FULL_PRECISION
        if already_shipped(dst / path.name, ck, half):
            print(f"{path.name}: already shipped with these weights (kept as it is)")
            out = dst / path.name
        else:
            out = save_checkpoint(dst / path.name, ck.state_dict, ck.config, kind=ck.kind, extra=ck.extra, half=half)
        data = out.read_bytes()
        manifest["files"][path.name] = {"kind": ck.kind, "sha256": hashlib.sha256(data).hexdigest(),
                                        "bytes": len(data), "precision": "float16" if half else "float32",
                                        "config": ck.config}
        print(f"{path.name}: {len(data) / 1e6:.2f} MB ({'fp16' if half else 'fp32'})")
    total = sum(f["bytes"] for f in manifest["files"].values())
    if total > LIMIT_BYTES:
        raise SystemExit(f"shipped weights are {total / 1e6:.1f} MB, over the 20 MiB limit")
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"total {total / 1e6:.2f} MB in {dst}")


if __name__ == "__main__":
    main()
