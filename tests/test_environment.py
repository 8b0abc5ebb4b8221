"""The test environment is what the README installs: every third-party package the suite, the scripts it runs and
the package itself import is a requirement of `pip install -e ".[test]"` (or of the package), and .ci/run runs the
README's own install and test commands in a fresh virtual environment."""
import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from readme_commands import install_and_test_commands  # noqa: E402

LOCAL = {"sgaplus", "helpers", "conftest", "machine", "registry", "timing", "run", "compile_kernels",
         "readme_commands", "golden_spread", "test_cli", "test_refine_golden", "kernels", "published_models",
         "published_checkerboard", "published_idioms", "refine_throughput", "test_forward_idioms"}
PLUGINS = {"--benchmark": "pytest-benchmark"}  # used by option, never imported


def normalized(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(extra):
    """Names of the package's own requirements and of those of `extra`."""
    names = set()
    for line in metadata.requires("sgaplus") or []:
        name, _, marker = line.partition(";")
        if "extra ==" not in marker or f'extra == "{extra}"' in marker:
            names.add(normalized(re.split(r"[<>=!~\[ ]", name.strip())[0]))
    return names


def imported_modules(paths):
    """Top-level modules imported anywhere in the files (at any depth: inside functions too)."""
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def sources():
    return [p for folder in ("tests", "bench", "tools", "sgaplus", "kernels") for p in (ROOT / folder).rglob("*.py")]


def test_every_third_party_import_is_a_test_requirement():
    providers = metadata.packages_distributions()
    needed = requirements("test")
    third_party = imported_modules(sources()) - set(sys.stdlib_module_names) - LOCAL
    missing = {module: providers.get(module) for module in third_party
               if not {normalized(d) for d in providers.get(module, [])} & needed}
    assert missing == {}
    assert {"matplotlib", "hypothesis", "scipy", "PIL", "skimage"} <= third_party  # the walk finds imports


def test_pytest_plugins_used_by_option_are_test_requirements():
    text = "\n".join(p.read_text() for p in sources() + [ROOT / "tools" / "gpu.sh"])
    for option, package in PLUGINS.items():
        assert option in text and package in requirements("test"), package


def test_ci_runs_the_readmes_two_commands_in_a_fresh_environment():
    install, test = install_and_test_commands((ROOT / "README.md").read_text())
    assert install.startswith("pip install torch==") and 'pip install -e ".[test]"' in install
    assert test.startswith("python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m venv" in ci and "readme_commands.py README.md" in ci and "mktemp -d" in ci


def test_the_readme_block_must_exist():
    with pytest.raises(SystemExit, match="no bash block"):
        install_and_test_commands("# sgaplus\n\n## Install and test\n\nnothing here\n")
