"""HelioCloud-as-code: config, command line and local sandbox of a HelioCloud instance."""
__version__ = "0.1.0"
