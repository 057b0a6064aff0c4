"""``make bench``: speed, scale and API economy of the provider through real Terraform (see README.md)."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The Terraform harness the tests use (tests/harness/terraform.py) is reused as it is.
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))
