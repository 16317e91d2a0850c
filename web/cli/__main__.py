"""``python -m web.cli``: the same as the ``lookalike`` console script."""
from . import main

main()
