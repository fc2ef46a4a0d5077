"""Copy a run's verified checkpoints into egan_lib/weights/<profile>/ (shipped with the package).

    python tools/ship_weights.py --profile cpu [--artifacts artifacts]

Networks whose exact weights other checkpoints or results depend on (G: the encoder's config names G's
sha256; C: the attacks are computed on it; E: the budget study measured this very encoder, and its sha256
is checked against the study's file) are kept in float32; the others are stored in half precision.
A manifest.json lists every file with its sha256, size, precision and producing config.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from egan_lib.checkpoints import load_checkpoint, save_checkpoint  # noqa: E402

FULL_PRECISION = {"generator", "classifier", "encoder"}
LIMIT_BYTES = 20 * 1024 * 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--artifacts", default=str(ROOT / "artifacts"))
    a = ap.parse_args()
    src = Path(a.artifacts) / "checkpoints" / a.profile
    dst = ROOT / "egan_lib" / "weights" / a.profile
    dst.mkdir(parents=True, exist_ok=True)
    manifest = {"profile": a.profile, "files": {}}
    for path in sorted(src.glob("*.pt")):
        ck = load_checkpoint(path)
        half = ck.kind not in FULL_PRECISION
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
