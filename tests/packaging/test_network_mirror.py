"""``raydog package``'s directory is a provider network mirror (and a packed filesystem mirror)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import textwrap

import pytest
from raydog.packaging import layout, mirror

from packaging_helpers import CLI, run, workdir


def cli_config(path, block: str):
    path.write_text(textwrap.dedent(f"""\
        provider_installation {{
          {block}
          direct {{
            exclude = ["{layout.ADDRESS}"]
          }}
        }}
        """))
    return str(path)


def test_a_network_mirror_over_https_installs_the_provider_on_a_clean_home(https_mirror, release, make_home, tmp_path):
    env = make_home(tmp_path / "home")
    block = f'network_mirror {{\n    url     = "{https_mirror.url}"\n    include = ["{layout.ADDRESS}"]\n  }}'
    env.update(TF_CLI_CONFIG_FILE=cli_config(tmp_path / "terraformrc", block), SSL_CERT_FILE=str(https_mirror.ca_file))
    tf = workdir(tmp_path / "work", env)
    tf.init()
    lock = (tf.workdir / ".terraform.lock.hcl").read_text()
    assert f'"{mirror.h1_of_zip(release.archive)}"' in lock, lock
    installed = tf.workdir / ".terraform" / "providers" / layout.ADDRESS / layout.VERSION / layout.host_platform()
    assert (installed / layout.executable_name()).stat().st_mode & 0o111
    base = f"/{layout.ADDRESS}/"
    assert {base + "index.json", base + f"{layout.VERSION}.json", base + layout.archive_name()} <= set(
        https_mirror.requests
    ), https_mirror.requests


def test_the_release_directory_is_also_a_packed_filesystem_mirror(release, make_home, tmp_path):
    env = make_home(tmp_path / "home")
    block = f'filesystem_mirror {{\n    path    = "{release.directory}"\n    include = ["{layout.ADDRESS}"]\n  }}'
    env["TF_CLI_CONFIG_FILE"] = cli_config(tmp_path / "terraformrc", block)
    tf = workdir(tmp_path / "work", env)
    tf.init()
    assert f'"{mirror.h1_of_zip(release.archive)}"' in (tf.workdir / ".terraform.lock.hcl").read_text()


def test_sums_and_mirror_documents_describe_the_zips(release):
    directory = release.provider_dir
    sums = (directory / layout.sums_name()).read_text().splitlines()
    assert sums == [f"{hashlib.sha256(release.archive.read_bytes()).hexdigest()}  {release.archive.name}"]
    assert json.loads((directory / "index.json").read_text()) == {"versions": {layout.VERSION: {}}}
    archives = json.loads((directory / f"{layout.VERSION}.json").read_text())["archives"]
    assert archives == {
        layout.host_platform(): {"url": release.archive.name, "hashes": [mirror.h1_of_zip(release.archive)]}
    }


@pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")
def test_sums_are_signed_with_the_given_key(release, make_home, tmp_path):
    env = make_home(tmp_path / "home")
    env["GNUPGHOME"] = str(tmp_path / "gnupg")
    (tmp_path / "gnupg").mkdir(mode=0o700)
    key = "raydog release test <release@example.invalid>"
    try:
        run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", key, "ed25519", "sign", "never"], env=env)
        out = tmp_path / "release"
        shutil.copytree(release.directory, out)
        run([*CLI, "package", "--index-only", "--out", str(out), "--sign-key", "release@example.invalid"], env=env)
        sums = layout.provider_dir(out) / layout.sums_name()
        verify = subprocess.run(["gpg", "--batch", "--verify", f"{sums}.sig", str(sums)], env=env,
                                capture_output=True)
        assert verify.returncode == 0, verify.stderr
    finally:  # gpg starts an agent for this GNUPGHOME that outlives the test otherwise
        subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True, check=False)
