"""terraform-provider-raydog: Ray clusters on YellowDog, managed by Terraform."""

__version__ = "0.1.0"
