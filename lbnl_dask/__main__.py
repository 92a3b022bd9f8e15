import sys

from .scripts import compress

sys.exit(compress())
