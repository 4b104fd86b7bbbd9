"""tokenshift: token-level datasets of how RL fine-tuning shifts a language model's distributions."""

__version__ = "0.1.0"
