"""`python -m mmsearch` runs the command line."""

from mmsearch.cli import main

main()
