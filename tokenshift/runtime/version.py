"""The package version, recorded in manifests, reports and cards (beside tokenshift.__version__)."""

__version__ = "0.1.0"
