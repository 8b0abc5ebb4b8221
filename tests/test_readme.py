"""The README's code runs as written: every Python block is executed (on CPU), every `sgaplus` command line is
accepted by the command's parser, and every script it names exists."""
import re
import shlex
from pathlib import Path

import pytest

from sgaplus.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
PYTHON = [code for kind, code in BLOCKS if kind == "python"]
COMMANDS = [line.split("#")[0].strip() for kind, code in BLOCKS if kind == "bash" for line in code.splitlines()]


def test_the_readme_has_code_to_check():
    assert len(PYTHON) >= 2 and any(c.startswith("sgaplus ") for c in COMMANDS)


@pytest.mark.parametrize("number", range(len(PYTHON)))
def test_python_blocks_run(number, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(PYTHON[number], f"README.md python block {number + 1}", "exec"), {})


@pytest.mark.parametrize("line", [c for c in COMMANDS if c.startswith(("sgaplus ", "torchrun "))])
def test_command_lines_parse(line):
    words = shlex.split(line)
    if "..." in words:
        pytest.skip("a placeholder line")
    if words[0] == "torchrun":
        words = ["sgaplus"] + words[words.index("sgaplus.cli") + 1:]
    build_parser().parse_args(words[1:])


@pytest.mark.parametrize("line", [c for c in COMMANDS if c.startswith("python ") and ".py" in c])
def test_named_scripts_exist(line):
    script = next(word for word in shlex.split(line) if word.endswith(".py"))
    assert (ROOT / script).is_file(), script
