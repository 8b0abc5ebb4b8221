"""The package's public face and its layers: every name of sgaplus.__all__ imports from sgaplus itself and is
documented (README or docs/); no module imports from a layer above its own (kernels -> ops -> codecs -> refine and
files -> pipeline and command line)."""
import ast
import re
from pathlib import Path

import pytest

import sgaplus

ROOT = Path(__file__).resolve().parent.parent
DOCS = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
# a module's layer by its place; modules of the same layer may import each other only within their own folder
LAYERS = {"kernels": 0, "errors": 0, "option_fields": 0, "ops": 1, "codecs": 2, "refine": 3, "files": 3}
TOP = 4  # the pipeline, evaluate, the command line, distributed running, BD metrics, the package's face


def layer_of(module):
    """(layer, folder) of a dotted module under sgaplus."""
    parts = module.split(".")[1:]
    head = parts[0] if parts else ""
    return LAYERS.get(head, TOP), head


def sgaplus_imports(path, module):
    """The sgaplus modules a file imports (relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            found += [name] if node.module or not node.level else [f"{name}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return [name for name in found if name == "sgaplus" or name.startswith("sgaplus.")]


def modules():
    for path in sorted((ROOT / "sgaplus").rglob("*.py")):
        yield path, ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for path in sorted((ROOT / "kernels").glob("*.py")):
        yield path, "sgaplus.kernels." + path.stem if path.stem != "__init__" else "sgaplus.kernels"


@pytest.mark.parametrize("name", sgaplus.__all__)
def test_every_public_name_imports_from_sgaplus_and_is_documented(name):
    assert getattr(sgaplus, name) is not None
    assert re.search(rf"\b{re.escape(name)}\b", DOCS), f"{name} is public but no page of README or docs/ names it"


def test_no_import_points_up_a_layer():
    upward = []
    for path, module in modules():
        layer, folder = layer_of(module)
        for target in sgaplus_imports(path, module):
            target_layer, target_folder = layer_of(target)
            if target_layer > layer or (target_layer == layer and layer < TOP and target_folder != folder
                                        and target_layer != 0):
                upward.append(f"{module} imports {target}")
    assert not upward, upward


def test_the_layer_check_sees_an_upward_import(tmp_path):
    """Negative control: an import of the refiner from the codecs is found."""
    path = tmp_path / "planted.py"
    path.write_text("from ..refine.refiner import LatentRefiner\n")
    assert sgaplus_imports(path, "sgaplus.codecs.planted") == ["sgaplus.refine.refiner"]
    assert layer_of("sgaplus.refine.refiner")[0] > layer_of("sgaplus.codecs.planted")[0]
