"""The package version, in one place (read by the CLI's --version and the HTML report)."""

__version__ = "0.1.0"
