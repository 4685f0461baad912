"""data-aggregator: bundle small S3 files into verified .tar.gz bundles without losing any."""

__version__ = "0.1.0"
