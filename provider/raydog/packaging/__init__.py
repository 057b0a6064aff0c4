"""The provider as Terraform installs it: a self-contained executable tree per platform.

``build`` freezes the provider (PyInstaller, one-dir: the interpreter, the provider's code
and its libraries, no Python needed where Terraform runs) reproducibly and caches the
result by a hash of its inputs; ``archive`` packs it as Terraform's release zip with
SHA256SUMS and an optional signature; ``mirror`` writes the network-mirror JSON and
computes Terraform's ``h1:`` hash; ``install`` lays a zip into a filesystem mirror
atomically; ``cli`` is ``raydog package``, ``raydog install`` and ``raydog --version``.
``layout`` holds the names all of them share.
"""
