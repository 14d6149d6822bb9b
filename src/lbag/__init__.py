"""lbag: real-world local motion deblurring (ReLoBlur data tools and the LBAG network)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lbag")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
