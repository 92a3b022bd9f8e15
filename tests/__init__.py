# A package, so that tests import their helpers as ``tests.helpers`` / ``tests.reference``
# whatever the working directory (pytest puts the repository root on sys.path).
