"""`python -m sgaplus`: the `sgaplus` command (also what torchrun runs: torchrun -m sgaplus evaluate ...)."""
import sys

from .cli import main

sys.exit(main())
