"""`python -m edge_ser` = the `edge-ser` command."""
import sys

from .cli import main

sys.exit(main())
