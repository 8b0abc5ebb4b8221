"""Prints the commands of the README's "Install and test" block, one a line: what .ci/run runs, and what a user
types on a fresh machine.

    python3 tools/readme_commands.py README.md
"""
import re
import sys
from pathlib import Path

SECTION = "## Install and test"


def install_and_test_commands(readme_text):
    """The command lines of the first bash block under the README's install-and-test heading."""
    section = readme_text.split(SECTION, 1)[1] if SECTION in readme_text else ""
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    if block is None:
        raise SystemExit(f"no bash block under {SECTION!r}")
    lines = (line.split("#")[0].strip() for line in block.group(1).splitlines())
    return [line for line in lines if line]


if __name__ == "__main__":
    print("\n".join(install_and_test_commands(Path(sys.argv[1]).read_text())))
