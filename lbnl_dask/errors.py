"""Exceptions raised for bad input: one line each, naming the file and the problem.

Every error the command line reports cleanly derives from :class:`LbnlDaskError`;
the CLI prints ``str(err)`` on one line and exits non-zero, without a traceback.
"""

import os
import re


def os_reason(e: OSError) -> str:
    """An OSError's reason in a few words ("Permission denied"): h5py's text is long."""
    return os.strerror(e.errno) if e.errno else str(e)


class LbnlDaskError(Exception):
    """Base class of every error lbnl_dask reports as one line."""

    def __str__(self) -> str:
        # one line whatever a library's message held (HDF5's has a newline in its timestamp)
        return re.sub(r"\s*\n\s*", " ", super().__str__()).strip()


class InputFileError(LbnlDaskError, OSError):
    """The input master cannot be used: missing, a directory, not HDF5."""


class NotEigerError(LbnlDaskError, ValueError):
    """An HDF5 file without Eiger/NXmx image data (no /entry/data...)."""


class MissingDataFileError(LbnlDaskError, FileNotFoundError):
    """A data file linked from the master does not exist."""


class TruncatedDataError(LbnlDaskError, ValueError):
    """The data files hold fewer frames than the master says, or a frame cannot be decoded."""


class ImageRangeError(LbnlDaskError, ValueError):
    """A 1-based image range that lies outside the data, or first after last."""


class OptionError(LbnlDaskError, ValueError):
    """An option value that cannot be honoured (bin 0, unknown codec, ...)."""


class OutputError(LbnlDaskError, OSError):
    """The output cannot be written: exists without --overwrite, unwritable, would hit the input."""


class SchedulerError(LbnlDaskError, ConnectionError):
    """The dask scheduler given by address cannot be reached."""


class LimitError(LbnlDaskError, ValueError):
    """A job too large to plan, or frames too large for a worker's memory."""


class NoSpaceError(OutputError):
    """The output's file system is full."""


class Interrupted(LbnlDaskError):
    """The run was stopped (Ctrl-C, SIGTERM): ``str()`` says what was kept; ``signal`` is
    the signal number (SIGINT or SIGTERM)."""

    def __init__(self, message: str, cause: BaseException | None = None):
        super().__init__(message)
        self.signal = getattr(cause, "signal", 2)


class SeriesError(LbnlDaskError, ValueError):
    """The files of a miniCBF series do not belong together (frame sizes, pixel types)."""


class MetadataError(LbnlDaskError, ValueError):
    """A master's field that the output needs is of the wrong type or cannot be right."""


class MismatchError(LbnlDaskError, ValueError):
    """A compressed dataset compared with an original it cannot be an output of."""


class DataFileError(LbnlDaskError, ValueError):
    """Data files that cannot be the images in the order the master links them."""
