"""The JavaScript the offline HTML book needs, fetched once at install time (``make`` runs
``python -m dihkit.book.assets``), never while a book is written.

nbconvert's HTML pages load require.js, the Jupyter widgets HTML manager and MathJax from CDNs.
The book serves local copies instead: three pinned npm packages, fetched with ``npm pack``
(or, without npm, straight from the npm registry, checked against the pinned sha512), of which
only the files the pages load are kept, in ``<venv>/share/dihkit-js/``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
ENV_VAR = "DIHKIT_JS_DIR"


@dataclass(frozen=True)
class JsPackage:
    """One pinned npm package and the files of it the book serves (paths inside the tarball,
    without the leading ``package/``; a trailing ``/`` keeps a whole folder)."""

    folder: str  # where the files go under the assets directory
    name: str
    version: str
    integrity: str  # the registry's sha512, as ``npm pack`` reports it
    keep: tuple[str, ...]
    entry: str  # the file a page's <script src> points at, relative to ``folder``

    @property
    def tarball_url(self) -> str:
        base = self.name.rsplit("/", 1)[-1]
        return f"{REGISTRY}/{self.name}/-/{base}-{self.version}.tgz"


PACKAGES = (
    JsPackage(
        folder="requirejs",
        name="requirejs",
        version="2.3.8",
        integrity="sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw==",
        keep=("require.js",),
        entry="require.js",
    ),
    JsPackage(
        folder="html-manager",
        name="@jupyter-widgets/html-manager",
        version="1.0.15",
        integrity="sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        keep=("dist/embed-amd.js", "dist/*.woff2", "dist/*.woff", "dist/*.ttf", "dist/*.eot"),
        entry="dist/embed-amd.js",
    ),
    JsPackage(
        folder="mathjax",
        name="mathjax",
        version="3.2.2",
        integrity="sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
        keep=("es5/tex-chtml-full.js", "es5/output/chtml/fonts/woff-v2/"),
        entry="es5/tex-chtml-full.js",
    ),
)


def default_js_dir() -> Path:
    """Where the assets live: ``$DIHKIT_JS_DIR`` if set, else ``<sys.prefix>/share/dihkit-js``
    (inside the kit's virtual environment)."""
    return Path(os.environ.get(ENV_VAR) or Path(sys.prefix) / "share" / "dihkit-js")


def available(js_dir: str | Path | None = None) -> dict[str, Path]:
    """Folder name -> entry file of every package present in ``js_dir``."""
    root = Path(js_dir) if js_dir is not None else default_js_dir()
    found = {}
    for package in PACKAGES:
        entry = root / package.folder / package.entry
        if entry.is_file():
            found[package.folder] = entry
    return found


def _wanted(member: str, keep: tuple[str, ...]) -> bool:
    from fnmatch import fnmatch

    path = member.removeprefix("package/")
    return any(path.startswith(k) if k.endswith("/") else fnmatch(path, k) for k in keep)


def _tarball(package: JsPackage, workdir: Path) -> bytes:
    """The package's tarball: ``npm pack`` if npm is installed, else the registry download; either
    way checked against the pinned sha512."""
    spec = f"{package.name}@{package.version}"
    npm = shutil.which("npm")
    if npm:
        subprocess.run(
            [npm, "pack", spec, "--pack-destination", str(workdir), "--silent"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        data = next(workdir.glob("*.tgz")).read_bytes()
    else:
        with urllib.request.urlopen(package.tarball_url, timeout=60) as response:
            data = response.read()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != package.integrity:
        raise RuntimeError(f"{spec}: sha512 mismatch (got {digest}, pinned {package.integrity})")
    return data


def fetch(js_dir: str | Path | None = None, *, force: bool = False) -> dict[str, Path]:
    """Fetch every missing package (all of them with ``force``) into ``js_dir`` and return what
    is available. A package that cannot be fetched is reported on stderr and skipped: the book
    then leaves that script out."""
    root = Path(js_dir) if js_dir is not None else default_js_dir()
    have = available(root)
    for package in PACKAGES:
        if package.folder in have and not force:
            continue
        target = root / package.folder
        try:
            with tempfile.TemporaryDirectory() as tmp:
                data = _tarball(package, Path(tmp))
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
                members = [
                    m for m in archive.getmembers() if m.isfile() and _wanted(m.name, package.keep)
                ]
                shutil.rmtree(target, ignore_errors=True)
                for member in members:
                    path = target / member.name.removeprefix("package/")
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(archive.extractfile(member).read())
        except (OSError, subprocess.CalledProcessError, RuntimeError, tarfile.TarError) as error:
            print(
                f"dihkit: could not fetch {package.name}@{package.version} ({error}); the HTML "
                "book will leave its script out",
                file=sys.stderr,
            )
    return available(root)


def main(argv: list[str] | None = None) -> int:
    """``python -m dihkit.book.assets [DIR] [--force]``: fetch the book's JavaScript."""
    args = list(sys.argv[1:] if argv is None else argv)
    force = "--force" in args
    args = [a for a in args if a != "--force"]
    root = Path(args[0]) if args else default_js_dir()
    found = fetch(root, force=force)
    print(f"dihkit: book JavaScript in {root}: {', '.join(sorted(found)) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
