"""``python -m subdistill ...`` is the ``subdistill`` console script."""

from subdistill.cli import main

main()
