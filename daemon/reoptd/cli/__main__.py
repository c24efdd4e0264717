"""``python -m reoptd.cli``: the same as the ``reoptd`` command."""

from reoptd.cli import main

main()
