"""The README's and docs' code runs as written: every Python block is executed (on CPU), every `sgaplus` command
line is accepted by the command's parser, every script they name exists, and every relative link points at a
file. The README stays a front page (at most 300 lines)."""
import re
import shlex
from pathlib import Path

import pytest

from sgaplus.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def blocks(kind):
    """(page name, number, code) of every fenced block of `kind` in the README and docs."""
    found = []
    for page in PAGES:
        code_blocks = [code for k, code in re.findall(r"```(\w*)\n(.*?)```", page.read_text(), re.S) if k == kind]
        found += [(page.relative_to(ROOT).as_posix(), i + 1, code) for i, code in enumerate(code_blocks)]
    return found


PYTHON = blocks("python")
COMMANDS = [(page, line.split("#")[0].strip()) for page, _, code in blocks("bash") for line in code.splitlines()]
LINKS = [(page, target) for page in PAGES for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text())
         if not target.startswith(("http://", "https://"))]


def test_the_pages_have_code_to_check():
    assert len(PYTHON) >= 3 and any(c.startswith("sgaplus ") for _, c in COMMANDS) and len(LINKS) >= 10
    assert {page for page, _, _ in PYTHON} >= {"README.md", "docs/op.md", "docs/cli.md"}


def test_the_readme_is_a_front_page():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


@pytest.mark.parametrize("page,number,code", PYTHON, ids=[f"{p} block {n}" for p, n, _ in PYTHON])
def test_python_blocks_run(page, number, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{page} python block {number}", "exec"), {})


@pytest.mark.parametrize("page,line", [(p, c) for p, c in COMMANDS if c.startswith(("sgaplus ", "torchrun "))])
def test_command_lines_parse(page, line):
    words = shlex.split(line)
    if "..." in words:
        pytest.skip("a placeholder line")
    if words[0] == "torchrun":
        words = ["sgaplus"] + words[words.index("-m") + 2:]  # -m sgaplus or -m sgaplus.cli
    if "--help" in words:  # argparse prints the help and exits with status 0
        with pytest.raises(SystemExit, match="0"):
            build_parser().parse_args(words[1:])
        return
    build_parser().parse_args(words[1:])


@pytest.mark.parametrize("page,line", [(p, c) for p, c in COMMANDS if c.startswith("python ") and ".py" in c])
def test_named_scripts_exist(page, line):
    script = next(word for word in shlex.split(line) if word.endswith(".py"))
    assert (ROOT / script).is_file(), f"{page}: {script}"


@pytest.mark.parametrize("page,target", LINKS)
def test_links_point_at_files(page, target):
    assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"
