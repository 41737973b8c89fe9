"""Build step of rsseg's wheel (the project itself is described in pyproject.toml): the wheel records the git
commit it is built from as ``rsseg/_commit.txt``, so an installed rsseg's results.json, tables and exports name
the code that made them (``rsseg._version``). A build outside a git checkout records nothing; an editable install
reads its checkout's commit directly.
"""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _version_module():
    spec = importlib.util.spec_from_file_location("_rsseg_version", ROOT / "src" / "rsseg" / "_version.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithCommit(build_py):
    """setuptools' build_py, then the commit of the checkout written beside the package's modules."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        version = _version_module()
        commit = version.git_commit()
        if commit:
            target = Path(self.build_lib) / "rsseg" / version.COMMIT_FILE
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(commit + "\n")


setup(cmdclass={"build_py": BuildPyWithCommit})
