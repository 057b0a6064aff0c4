"""Migration from RayDog's saved JSON state (``raydog import-state``).

``inventory`` reads the saved state and asks the platform what each id is (through the
provider's own Terraform import, so what is written will import); ``hcl`` writes the
import blocks and the module call and reads existing configuration with an HCL parser;
``cli`` is the command.
"""
