"""Build hook: pyproject.toml holds the project's configuration; this adds one step to
``build_py``. A wheel gets copies of the repository's bundled files (the embedded dataset, the
bundled teachers, the experiment files and the notebooks: ``BUNDLE`` in ``dihkit/resources.py``)
under ``dihkit/bundle/{data,configs,notebooks}/`` in the build folder. The source tree is never
written to, and an editable install (``pip install -e .``) copies nothing: it reads the files
where they are developed, at the top of the checkout."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _resources():
    """``dihkit/resources.py`` loaded on its own (the package needs torch; the build does not)."""
    spec = importlib.util.spec_from_file_location("_dihkit_resources", ROOT / "dihkit/resources.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithBundle(build_py):
    """``build_py`` that also copies the bundled files into ``BUILD_LIB/dihkit/bundle/``."""

    def _copies_bundle(self) -> bool:
        return not (self.editable_mode or getattr(self, "inplace", False))

    def _bundle_mapping(self) -> dict[str, Path]:
        """Target path in the build folder -> source file in the repository."""
        resources = _resources()
        target_root = Path(self.build_lib) / "dihkit" / resources.BUNDLE_DIR
        mapping = {}
        for kind, names in resources.bundle_files(ROOT).items():
            if not names:
                raise SystemExit(
                    f"dihkit build: no files for {kind}/ ({', '.join(resources.BUNDLE[kind])}) "
                    f"under {ROOT}: build from a complete checkout or sdist"
                )
            for name in names:
                mapping[str(target_root / kind / name)] = ROOT / kind / name
        return mapping

    def run(self) -> None:
        super().run()
        if not self._copies_bundle():
            return
        mapping = self._bundle_mapping()
        # A bundle left in the build folder by an earlier build may hold files since removed.
        shutil.rmtree(Path(self.build_lib) / "dihkit" / _resources().BUNDLE_DIR, ignore_errors=True)
        for target, source in mapping.items():
            self.mkpath(str(Path(target).parent))
            self.copy_file(str(source), target, preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if self._copies_bundle():
            outputs += sorted(self._bundle_mapping())
        return outputs


setup(cmdclass={"build_py": BuildPyWithBundle})
