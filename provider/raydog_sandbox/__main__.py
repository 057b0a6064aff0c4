"""``python -m raydog_sandbox``: run the sandbox (see ``cli.py``); ``raydog sandbox`` runs this."""

import sys

try:
    from .cli import main
except ModuleNotFoundError as error:
    if error.name not in ("starlette", "uvicorn"):
        raise
    sys.exit(f"raydog sandbox needs {error.name}: pip install 'terraform-provider-raydog[sandbox]'")

sys.exit(main())
