"""vl12's data side: converters from the official releases to one versioned HDF5 file."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vl12")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
