"""PathGen: synthetic, classifier-validated colorectal histopathology tiles for teaching."""

__version__ = "0.1.0"
