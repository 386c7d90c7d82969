"""Build COUNT per-tenant model folders: one feature extractor shared by all, one head each.

    python build.py --count 1000 --out build/     # build/t0001 .. build/t1000, build/tenants.txt

Every folder holds the same extractor file (byte for byte: the store keeps it once, whatever the
count) and a head of its own, seeded by the tenant's number, so the build is deterministic.
Safetensors are written with numpy alone (see ../build.py).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from build import write_safetensors  # noqa: E402  (examples/build.py, the writer both share)

FEATURES, HIDDEN, CLASSES = 16, 64, 4


def tenant_name(number: int) -> str:
    return f"t{number:04d}"


def build(count: int, out: Path) -> list[str]:
    """Write the folders and tenants.txt; return the tenant names in order."""
    rng = np.random.default_rng(0)
    extractor = out / "extractor.safetensors"
    write_safetensors(
        extractor,
        {
            "weight": rng.normal(0, 0.25, (FEATURES, HIDDEN)).astype(np.float32),
            "bias": np.zeros(HIDDEN, np.float32),
        },
        {"role": "shared feature extractor"},
    )
    tenants = []
    for number in range(1, count + 1):
        name = tenant_name(number)
        folder = out / name
        shutil.copytree(HERE / "model", folder, dirs_exist_ok=True)
        (folder / "weights").mkdir(exist_ok=True)
        shutil.copyfile(extractor, folder / "weights" / "extractor.safetensors")
        head = np.random.default_rng(number)
        write_safetensors(
            folder / "weights" / "head.safetensors",
            {
                "weight": head.normal(0, 0.5, (HIDDEN, CLASSES)).astype(np.float32),
                "bias": head.normal(0, 0.1, CLASSES).astype(np.float32),
            },
            {"tenant": name},
        )
        tenants.append(name)
    (out / "tenants.txt").write_text("".join(f"{t}\n" for t in tenants))
    return tenants


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=HERE / "build")
    args = parser.parse_args()
    tenants = build(args.count, args.out)
    print(f"wrote {len(tenants)} tenant models under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
