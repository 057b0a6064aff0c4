"""The node script templates, their rendering, and the script contract lint."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

from harness.waits import wait_until
import pytest
from jinja2 import meta
from raydog import node_scripts
from raydog.node_scripts import (
    BUILTIN_TEMPLATES,
    LintFinding,
    ScriptError,
    builtin_source,
    builtin_variable_docs,
    builtin_variables,
    lint_script,
    render_builtin,
    render_text,
    sha256_hex,
    templates_dir,
)
from raydog.node_scripts.render import _text_environment

REPO = Path(__file__).resolve().parents[2]
BASH = shutil.which("bash")

OVERRIDES = {
    "head": {
        "venv": "/opt/ray env",
        "num_cpus": "2",
        "num_gpus": "1",
        "memory": "",
        "resources": '{"head": 1}',
        "grafana_iframe_host": "https://grafana.example.com",
        "alloy_config": "",
        "extra_ray_start_args": "--object-store-memory=2000000000 --disable-usage-stats",
    },
    "worker": {
        "venv": "/srv/venv",
        "num_cpus": "8",
        "memory": "17179869184",
        "resources": '{"pool_a": 1}',
        "extra_ray_start_args": '--labels=\'{"pool": "a b"}\'',
    },
    "observability": {
        "data_dir": "/data/obs",
        "prometheus_version": "3.4.0",
        "grafana_port": "3001",
        "ray_dashboards": "false",
    },
    "userdata": {
        "python_version": "3.12.11",
        "ray_version": "2.56.0",
        "extra_pip_packages": "numpy==2.3.1 'pandas>=2'",
        "ssh_public_key": "ssh-ed25519 AAAAC3Nza user@host",
        "install_alloy": "false",
        "disable_firewall": "no",
    },
}


def bash_syntax_errors(script: str) -> str:
    result = subprocess.run([BASH, "-n"], check=False, input=script, capture_output=True, text=True)
    return result.stderr if result.returncode else ""


# ---------------------------------------------------------------------------------------
# Templates


@pytest.mark.parametrize("name", BUILTIN_TEMPLATES)
def test_builtin_renders_with_defaults_to_valid_bash(name):
    content = render_builtin(name, {})
    assert content.startswith("#!/usr/bin/env bash\n")
    assert content.endswith("\n")
    assert "{{" not in content and "{%" not in content
    assert bash_syntax_errors(content) == ""


@pytest.mark.parametrize("name", BUILTIN_TEMPLATES)
def test_builtin_renders_with_overrides_to_valid_bash(name):
    content = render_builtin(name, OVERRIDES[name])
    assert bash_syntax_errors(content) == ""
    assert content != render_builtin(name, {})


@pytest.mark.parametrize("role", ["head", "worker"])
@pytest.mark.parametrize("overrides", [False, True])
def test_builtin_ray_scripts_pass_their_own_lint(role, overrides):
    content = render_builtin(role, OVERRIDES[role] if overrides else {})
    assert lint_script(content, role) == []


@pytest.mark.parametrize("role", ["head", "worker"])
def test_unrendered_builtin_templates_lint_clean_as_text(role):
    assert lint_script(builtin_source(role), role) == []


@pytest.mark.parametrize("name", BUILTIN_TEMPLATES)
def test_documented_variables_are_exactly_those_the_template_uses(name):
    used = meta.find_undeclared_variables(_text_environment().parse(builtin_source(name)))
    documented = builtin_variables(name)
    assert set(documented) == used
    assert all(v.description for v in builtin_variable_docs(name))


def test_head_defaults_match_raydog():
    content = render_builtin("head", {})
    start = _ray_start_line(content)
    for arg in ("--head", "--port=6379", "--num-cpus=0", "--memory=0", "--dashboard-host=0.0.0.0", "--block"):
        assert arg in start
    assert "RAY_NODE_IP_ADDRESS" not in content and "--node-ip-address" not in content, "Ray finds the node's IP"
    assert '"$VENV/bin/ray" start' in content
    assert "VENV=/opt/yellowdog/agent/venv" in content
    for name in ("RAY_GRAFANA_HOST", "RAY_GRAFANA_IFRAME_HOST", "RAY_PROMETHEUS_HOST", "RAY_PROMETHEUS_NAME"):
        assert f"export {name}=" in content


def test_worker_joins_the_head_by_either_variable():
    start = _ray_start_line(render_builtin("worker", {}))
    assert '--address="${RAY_HEAD_IP:-$RAY_HEAD_NODE_PRIVATE_IP}:6379"' in start
    assert "--head" not in start


def test_overrides_are_shell_quoted():
    head = render_builtin("head", {"venv": "/opt/ray env; rm -rf /", "resources": '{"a": 1}'})
    assert "VENV='/opt/ray env; rm -rf /'" in head
    assert "--resources='{\"a\": 1}'" in head
    worker = render_builtin("worker", OVERRIDES["worker"])
    assert 'EXTRA_RAY_START_ARGS=(\'--labels={"pool": "a b"}\')' in worker


def test_empty_numeric_variables_leave_the_flag_out():
    start = _ray_start_line(render_builtin("head", {"num_cpus": "", "memory": ""}))
    assert "--num-cpus" not in start and "--memory" not in start


def test_userdata_installs_the_requested_versions():
    content = render_builtin("userdata", OVERRIDES["userdata"])
    assert "PYTHON_VERSION=3.12.11" in content
    assert "RAY_VERSION=2.56.0" in content
    assert "EXTRA_PIP_PACKAGES=(numpy==2.3.1 'pandas>=2')" in content
    assert "'ssh-ed25519 AAAAC3Nza user@host'" in content
    assert "alloy" not in content and "ufw" not in content
    defaults = render_builtin("userdata", {})
    assert 'uv pip install --python "$VENV/bin/python" "ray[$RAY_EXTRAS]==$RAY_VERSION"' in defaults
    assert "alloy" not in defaults and "prometheus" not in defaults, "no agent, no observability packages by default"
    assert "/etc/alloy/config.alloy" in render_builtin("userdata", {"install_alloy": "true"})
    assert "authorized_keys" not in defaults


def test_userdata_installs_prometheus_and_grafana_from_packages_for_the_observability_node():
    content = render_builtin("userdata", {"install_observability": "true"})
    assert "apt-get -y install prometheus grafana" in content
    assert 'systemctl disable --now "$service"' in content
    assert "apt-get -y install alloy" not in content


def test_observability_defaults_run_prometheus_and_grafana():
    content = render_builtin("observability", {})
    assert "trap stop_observability EXIT" in content
    assert "--web.enable-remote-write-receiver" in content
    assert "GF_SECURITY_ALLOW_EMBEDDING=true" in content
    assert "grafana_dashboard_factory" in content
    assert "grafana_dashboard_factory" not in render_builtin("observability", {"ray_dashboards": "false"})


def _ray_start_line(content: str) -> str:
    return re.search(r'"\$VENV/bin/ray" start.*?--block', content.replace("\\\n", " "), re.DOTALL).group(0)


# ---------------------------------------------------------------------------------------
# Rendering errors


def test_unknown_variable_for_a_builtin_is_named():
    with pytest.raises(ScriptError) as err:
        render_builtin("userdata", {"ray_verion": "2.60.0"})
    assert err.value.variable == "ray_verion"
    assert "'ray_verion'" in err.value.message and "ray_version" in err.value.message


def test_unknown_builtin_is_an_error():
    with pytest.raises(ScriptError, match="choose one of: head, worker, observability, userdata"):
        render_builtin("gateway", {})


def test_undefined_variable_error_names_the_variable_and_line():
    with pytest.raises(ScriptError) as err:
        render_text(
            "#!/bin/bash\necho {{ greeting }}\nray start --num-cpus={{ cpus }} --block\n", {"greeting": "hi"}
        )
    assert err.value.variable == "cpus"
    assert err.value.line == 3
    assert "undefined variable 'cpus'" in str(err.value)
    assert "line 3" in str(err.value)


def test_undefined_variable_used_in_a_condition_is_an_error():
    with pytest.raises(ScriptError, match="undefined variable 'gpu'"):
        render_text("{% if gpu %}--num-gpus=1{% endif %}\n", {})


def test_syntax_error_reports_the_line():
    with pytest.raises(ScriptError) as err:
        render_text("#!/bin/bash\n\n{% if x %}\necho x\n", {"x": "1"})
    assert err.value.line == 4
    assert "syntax error" in err.value.message and "line 4" in err.value.message


def test_bash_length_expansion_gets_a_hint():
    with pytest.raises(ScriptError, match=r"raw"):
        render_text('ARGS=(a b)\necho "${#ARGS[@]}"\n', {})


def test_bad_flag_value_is_reported_with_its_variable():
    with pytest.raises(
        ScriptError, match="'install_alloy' must be \"true\" or \"false\", got 'maybe'"
    ) as err:
        render_builtin("userdata", {"install_alloy": "maybe"})
    assert err.value.variable == "install_alloy"
    with pytest.raises(ScriptError, match='line 1: expected "true" or "false", got \'maybe\''):
        render_text("{% if f | flag %}x{% endif %}", {"f": "maybe"})


def test_any_failure_in_a_users_template_is_a_script_error():
    with pytest.raises(ScriptError, match="line 2: division by zero"):
        render_text("ok\n{{ 1 / 0 }}\n", {})


def test_unbalanced_shell_words_are_reported():
    with pytest.raises(ScriptError, match="cannot split"):
        render_builtin("head", {"extra_ray_start_args": '--resources=\'{"a": 1}'})


def test_non_string_value_is_rejected():
    with pytest.raises(ScriptError, match="'num_cpus' must be a string"):
        render_builtin("worker", {"num_cpus": 4})


def test_render_text_keeps_the_trailing_newline_and_does_not_escape():
    assert render_text('echo "{{ a }}" <&>\n', {"a": "<b>"}) == 'echo "<b>" <&>\n'


def test_render_text_offers_the_shell_filters():
    template = "X={{ v | shquote }}\nA=({{ w | shwords }})\n{% if f | flag %}\non\n{% endif %}\n"
    out = render_text(template, {"v": "a b", "w": "x 'y z'", "f": "true"})
    assert out == "X='a b'\nA=(x 'y z')\non\n"


# ---------------------------------------------------------------------------------------
# Template loading


def test_templates_load_from_the_repository_in_an_editable_install():
    assert templates_dir() == REPO / "scripts"
    assert node_scripts.TEMPLATE_DIRS[-1] == REPO / "scripts"


def test_package_data_directory_wins_when_present(tmp_path):
    package = tmp_path / "templates"
    shutil.copytree(REPO / "scripts", package)
    assert templates_dir([package, REPO / "scripts"]) == package
    assert templates_dir([tmp_path / "missing", REPO / "scripts"]) == REPO / "scripts"


def test_incomplete_directory_is_skipped_and_nothing_found_is_an_error(tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(REPO / "scripts" / "head.sh.j2", partial)
    assert templates_dir([partial, REPO / "scripts"]) == REPO / "scripts"
    with pytest.raises(ScriptError, match="not found"):
        templates_dir([partial])


def test_wheel_layout_renders_from_package_data(tmp_path):
    """A copy of the package laid out as the wheel installs it uses raydog/node_scripts/templates/."""
    package = tmp_path / "site-packages" / "raydog" / "node_scripts"
    shutil.copytree(REPO / "provider" / "raydog" / "node_scripts", package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "scripts", package / "templates")
    marked = package / "templates" / "worker.sh.j2"
    marked.write_text(marked.read_text() + "# from the wheel\n")
    spec = importlib.util.spec_from_file_location("wheel_layout_render", package / "render.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        assert module.templates_dir() == package / "templates"
        assert module.render_builtin("worker", {}).endswith("# from the wheel\n")
    finally:
        del sys.modules[spec.name]


def test_sha256_is_stable_and_matches_hashlib():
    content = render_builtin("head", {})
    assert sha256_hex(content) == sha256_hex(content.encode())
    assert sha256_hex(content) == sha256_hex(render_builtin("head", {}))
    assert sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert sha256_hex(content) != sha256_hex(render_builtin("head", {"num_cpus": "1"}))


def test_node_scripts_guide_lists_every_variable_with_its_default():
    guide = (REPO / "docs" / "guides" / "node-scripts.md").read_text()
    for name in BUILTIN_TEMPLATES:
        for variable in builtin_variable_docs(name):
            row = (
                f"| `{variable.name}` | `{variable.default}` |"
                if variable.default
                else f"| `{variable.name}` | (empty) |"
            )
            assert row in guide, f"{name}: {row}"


# ---------------------------------------------------------------------------------------
# The script contract lint

RAYDOG_HEAD = """\
#!/usr/bin/bash
trap "ray stop; echo Ray stopped" EXIT
set -eo pipefail
RAY_ARGS="--head --port=6379 --num-cpus=0 --memory=0 --dashboard-host=0.0.0.0 --block"
if [[ -n "$OBSERVABILITY_HOST" ]]; then
    RAY_ARGS="$RAY_ARGS --metrics-export-port=10002 --min-worker-port=10003 --max-worker-port=19999"
    alloy run /etc/alloy/config.alloy &
fi
VENV=/opt/yellowdog/agent/venv
source $VENV/bin/activate
ray start $RAY_ARGS
"""

RAYDOG_WORKER = """\
#!/usr/bin/bash
trap "ray stop; echo Ray stopped" EXIT
set -eo pipefail
RAY_ARGS="--address=$RAY_HEAD_NODE_PRIVATE_IP:6379 --block"
VENV=/opt/yellowdog/agent/venv
source $VENV/bin/activate
ray start $RAY_ARGS --num-cpus=1
"""

RAYDOG_DOCKER_HEAD = """\
#!/usr/bin/bash
set -eo pipefail
CONTAINER_NAME=yd-container-$$
cleanup_docker() {
  CONTAINER_ID=$(docker ps -aq --filter name=$CONTAINER_NAME)
  if [ -n "$CONTAINER_ID" ]
  then
    docker stop "$CONTAINER_ID" > /dev/null
  fi
}
trap cleanup_docker EXIT
docker run --rm --name $CONTAINER_NAME --network=host ray-container \\
           bash -c 'ray start --disable-usage-stats --head --port=6379 \\
                              --num-cpus=0 --memory=0 --block'
"""


def _script(body: str) -> str:
    return "#!/bin/bash\n" + textwrap.dedent(body)


GOOD = {
    "raydog default head": ("head", RAYDOG_HEAD),
    "raydog default worker (deprecated variable)": ("worker", RAYDOG_WORKER),
    "raydog docker head": ("head", RAYDOG_DOCKER_HEAD),
    "single-quoted trap": (
        "head",
        _script("""
        trap 'ray stop' EXIT
        ray start --head --port=6379 --block
    """),
    ),
    "trap with -- and several signals, lower-case exit": (
        "worker",
        _script("""
        trap -- "ray stop --force" INT TERM exit
        ray start --address="$RAY_HEAD_IP:6379" --block
    """),
    ),
    "function defined after the trap": (
        "head",
        _script("""
        trap cleanup EXIT
        function cleanup {
            echo "stopping"
            /opt/yellowdog/agent/venv/bin/ray stop
        }
        /opt/yellowdog/agent/venv/bin/ray start --head --block
    """),
    ),
    "one-line function and a chain of functions": (
        "worker",
        _script("""
        stop_ray() { sudo -E ray stop; }
        on_exit() { echo bye; stop_ray; }
        trap 'on_exit; echo done' 0
        ray start --address=${RAY_HEAD_IP}:6379 --block
    """),
    ),
    "ray binary in a variable": (
        "head",
        _script("""
        VENV=/opt/yellowdog/agent/venv
        RAY="$VENV/bin/ray"
        trap "$RAY stop" EXIT
        "$RAY" start --head --port=6379 --block
    """),
    ),
    "multi-line ray start with the flags in an array": (
        "worker",
        _script("""
        trap "ray stop" EXIT
        ARGS=(
            --address="${RAY_HEAD_IP:-$RAY_HEAD_NODE_PRIVATE_IP}:6379"
            --block
        )
        ray start \\
            --num-cpus=4 \\
            "${ARGS[@]}"
    """),
    ),
    "args from the task environment": (
        "head",
        _script("""
        trap "ray stop" EXIT
        ray start $RAY_START_ARGS
    """),
    ),
    "backgrounded ray start and wait": (
        "worker",
        _script("""
        trap 'ray stop' EXIT
        ray start --address="$RAY_HEAD_IP:6379" --block &
        wait $!
    """),
    ),
    "unrendered jinja template": (
        "head",
        _script("""
        {# my head script #}
        trap "{{ venv }}/bin/ray stop" EXIT
        {% if gpus %}
        export CUDA_VISIBLE_DEVICES=0
        {% endif %}
        {{ venv }}/bin/ray start --head --num-gpus={{ gpus }} {{ extra }} --block
    """),
    ),
    "sudo, a full path, set -u and a saved exit code": (
        "worker",
        _script("""
        set -euo pipefail
        cleanup() {
            local rc=$?
            sudo /opt/yellowdog/agent/venv/bin/ray stop --grace-period 30 || true
            exit $rc
        }
        trap cleanup EXIT
        ray start --address "${RAY_HEAD_IP}:6379" --num-cpus "$(nproc)" --block
    """),
    ),
    "trap set inside a function, ray start inside an if": (
        "head",
        _script("""
        setup() { trap 'ray stop' EXIT; }
        setup
        if (( $(nproc) > 1 )); then ray start --head --num-cpus=$(( $(nproc) - 1 )) --block; fi
    """),
    ),
    "python -m ray and an environment prefix": (
        "worker",
        _script("""
        trap 'python -m ray.scripts.scripts stop' EXIT
        RAY_memory_monitor_refresh_ms=0 python -m ray.scripts.scripts start --address=$RAY_HEAD_IP:6379 --block
    """),
    ),
    "windows line endings": ("head", "trap 'ray stop' EXIT\r\nray start --head \\\r\n  --block\r\n"),
    "heredocs and comments with quotes in them": (
        "head",
        _script("""
        trap 'ray stop' EXIT  # the node's Ray stops here
        read -r WORD <<< here-string
        cat > /tmp/note <<EOF
        don't "trap" anything here
        EOF
        ray start --head --block  # it's blocking
    """),
    ),
}

BAD = {
    "no trap": (
        "head",
        _script("""
        ray start --head --block
    """),
        {"exit-trap-missing"},
    ),
    "trap only in a comment": (
        "worker",
        _script("""
        # trap "ray stop" EXIT
        ray start --address=$RAY_HEAD_IP:6379 --block
    """),
        {"exit-trap-missing"},
    ),
    "trap without ray stop": (
        "head",
        _script("""
        trap 'echo Ray stopped' EXIT
        ray start --head --block
    """),
        {"exit-trap-no-ray-stop"},
    ),
    "trap function without ray stop": (
        "worker",
        _script("""
        cleanup() { echo "cleaning up"; rm -rf /tmp/scratch; }
        trap cleanup EXIT
        ray start --address="$RAY_HEAD_IP:6379" --block
    """),
        {"exit-trap-no-ray-stop"},
    ),
    "trap on TERM only": (
        "head",
        _script("""
        trap 'ray stop' TERM
        ray start --head --block
    """),
        {"exit-trap-missing"},
    ),
    "docker stop without a container": (
        "head",
        _script("""
        trap 'docker stop ray' EXIT
        ray start --head --block
    """),
        {"exit-trap-no-ray-stop"},
    ),
    "no --block": (
        "head",
        _script("""
        trap 'ray stop' EXIT
        ray start --head --port=6379
        sleep infinity
    """),
        {"ray-start-no-block"},
    ),
    "no --block in the assigned args": (
        "worker",
        _script("""
        trap 'ray stop' EXIT
        ARGS="--address=$RAY_HEAD_IP:6379"
        ray start $ARGS
    """),
        {"ray-start-no-block"},
    ),
    "head without --head": (
        "head",
        _script("""
        trap 'ray stop' EXIT
        ray start --port=6379 --block
    """),
        {"ray-start-no-head"},
    ),
    "worker with a hard-coded address": (
        "worker",
        _script("""
        trap 'ray stop' EXIT
        ray start --address=10.0.0.5:6379 --block
    """),
        {"worker-head-address"},
    ),
    "worker starting a head": (
        "worker",
        _script("""
        trap 'ray stop' EXIT
        ray start --head --address="$RAY_HEAD_IP:6379" --block
    """),
        {"worker-starts-head"},
    ),
    "no ray start at all": (
        "worker",
        _script("""
        trap 'ray stop' EXIT
        echo "$RAY_HEAD_IP"
        python train.py
    """),
        {"ray-start-missing"},
    ),
    "exec ray start": (
        "head",
        _script("""
        trap 'ray stop' EXIT
        exec ray start --head --block
    """),
        {"ray-start-exec"},
    ),
    "empty script": ("worker", "", {"exit-trap-missing", "ray-start-missing", "worker-head-address"}),
    "everything wrong": (
        "head",
        _script("""
        ray start --address=10.0.0.5:6379
    """),
        {"exit-trap-missing", "ray-start-no-block", "ray-start-no-head"},
    ),
}


@pytest.mark.parametrize("role,content", GOOD.values(), ids=GOOD.keys())
def test_lint_accepts_contract_keeping_variants(role, content):
    assert lint_script(content, role) == []


@pytest.mark.parametrize("role,content,codes", BAD.values(), ids=BAD.keys())
def test_lint_reports_contract_violations(role, content, codes):
    findings = lint_script(content, role)
    assert {f.code for f in findings} == codes
    assert all(isinstance(f, LintFinding) and f.summary and f.detail for f in findings)


def test_lint_finding_names_the_hard_coded_address():
    (finding,) = lint_script(BAD["worker with a hard-coded address"][1], "worker")
    assert "'10.0.0.5:6379'" in finding.detail
    assert "RAY_HEAD_IP" in finding.summary


def test_lint_finding_names_the_trap_action():
    (finding,) = lint_script(BAD["trap without ray stop"][1], "head")
    assert "'echo Ray stopped'" in finding.detail


def test_lint_rejects_an_unknown_role():
    with pytest.raises(ValueError, match="role"):
        lint_script(RAYDOG_HEAD, "observability")


# ---------------------------------------------------------------------------------------
# Running the rendered scripts (with a stand-in for the ray CLI)

STUB_RAY = """\
#!/usr/bin/env bash
# Stands in for the ray CLI: records its calls; `start` blocks until `stop`.
echo "$* | grafana=${RAY_GRAFANA_HOST:-} prometheus=${RAY_PROMETHEUS_HOST:-}" >> "$RAY_STUB_LOG"
case "$1" in
    start) echo $$ > "$RAY_STUB_LOG.pid"; exec sleep 60 ;;
    stop) if [[ -f "$RAY_STUB_LOG.pid" ]]; then kill "$(cat "$RAY_STUB_LOG.pid")" 2>/dev/null || true; fi ;;
esac
"""


def ray_calls(log: Path, process: subprocess.Popen) -> str:
    """What the stubs logged so far; fails at once if the script has already ended."""
    assert process.poll() is None, f"the script ended (exit {process.returncode}) before starting its services"
    return log.read_text() if log.exists() else ""


def _run_until_started(tmp_path: Path, role: str, env: dict[str, str]) -> list[str]:
    """Run the rendered script, SIGTERM it once Ray has started, return the ray calls."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    stub = venv / "bin" / "ray"
    stub.write_text(STUB_RAY)
    stub.chmod(0o755)
    log = tmp_path / "ray.log"
    script = tmp_path / "taskdata.txt"
    script.write_text(render_builtin(role, {"venv": str(venv), "alloy_config": ""}))
    full_env = {"PATH": os.environ["PATH"], "RAY_STUB_LOG": str(log), **env}
    process = subprocess.Popen([BASH, str(script)], env=full_env, cwd=tmp_path, start_new_session=True)
    try:
        wait_until(lambda: ray_calls(log, process), "the script starts Ray", until=lambda calls: "start" in calls)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return log.read_text().splitlines()


def test_head_script_starts_a_blocking_head_and_its_trap_stops_ray(tmp_path):
    start, stop = _run_until_started(tmp_path, "head", {"RAY_NODE_IP_ADDRESS": "10.1.2.3"})
    assert start.startswith("start --head --port=6379 --dashboard-host=0.0.0.0 --num-cpus=0 --memory=0")
    assert "--block" in start
    assert "--node-ip-address" not in start, "what runs in the sandbox is what runs on YellowDog"
    assert stop.startswith("stop")


def test_head_script_points_ray_at_the_observability_node(tmp_path):
    start, _stop = _run_until_started(tmp_path, "head", {"OBSERVABILITY_HOST": "10.9.9.9"})
    assert "grafana=http://10.9.9.9:3000 prometheus=http://10.9.9.9:9090" in start
    assert "--metrics-export-port=10002 --min-worker-port=10003" in start


@pytest.mark.parametrize("variable", ["RAY_HEAD_IP", "RAY_HEAD_NODE_PRIVATE_IP"])
def test_worker_script_joins_the_head_and_its_trap_stops_ray(tmp_path, variable):
    start, stop = _run_until_started(
        tmp_path, "worker", {variable: "10.0.0.7", "RAY_NODE_IP_ADDRESS": "10.0.0.8"}
    )
    assert start.startswith("start --address=10.0.0.7:6379 --block")
    assert stop.startswith("stop")


def test_worker_script_without_a_head_fails_and_still_stops_ray(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "ray").write_text(STUB_RAY)
    (venv / "bin" / "ray").chmod(0o755)
    log = tmp_path / "ray.log"
    script = render_builtin("worker", {"venv": str(venv)})
    result = subprocess.run(
        [BASH, "-c", script],
        check=False,
        env={"PATH": os.environ["PATH"], "RAY_STUB_LOG": str(log)},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 1
    assert "Neither RAY_HEAD_IP nor RAY_HEAD_NODE_PRIVATE_IP is set" in result.stderr
    assert [line.split(" |")[0] for line in log.read_text().splitlines()] == ["stop"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def put_targets(port: int, body: str) -> int | str:
    """PUT a document to the observability script's targets receiver: the HTTP status, or "down"."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/targets", data=body.encode(), method="PUT")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return "down"


STUB_SERVICE = """\
#!/usr/bin/env bash
# Stands in for Prometheus or Grafana: records its arguments and runs until killed.
echo "$(basename "$0") $*" >> "$STUB_LOG"
exec sleep 60
"""


def test_observability_script_runs_both_services_until_aborted(tmp_path):
    """Installed Prometheus and an already downloaded Grafana are used; the trap stops both."""
    bin_dir, data_dir = tmp_path / "bin", tmp_path / "obs"
    grafana_bin = data_dir / "grafana-12.0.0" / "bin"
    for stub in (bin_dir / "prometheus", grafana_bin / "grafana"):
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text(STUB_SERVICE)
        stub.chmod(0o755)
    log = tmp_path / "services.log"
    script = tmp_path / "taskdata.txt"
    venv = Path(sys.executable).parent.parent  # this virtual environment has Ray
    port = free_port()
    script.write_text(render_builtin("observability", {"venv": str(venv), "data_dir": str(data_dir),
                                                       "targets_port": str(port)}))
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_LOG": str(log)}
    process = subprocess.Popen([BASH, str(script)], env=env, cwd=tmp_path, start_new_session=True)
    try:
        wait_until(lambda: ray_calls(log, process).splitlines(), "the script starts both services", timeout=30,
                   until=lambda started: len(started) == 2)
        targets = data_dir / "prometheus" / "ray_targets.json"
        assert json.loads(targets.read_text()) == []
        document = [{"labels": {"job": "ray"}, "targets": ["10.0.0.5:10002", "10.0.0.6:10002"]}]
        assert wait_until(lambda: put_targets(port, json.dumps(document)), "the targets receiver answers",
                          timeout=30, until=lambda status: status != "down") == 204
        assert json.loads(targets.read_text()) == document
        for bad in ('{"targets": []}', '[{"targets": "10.0.0.5:10002"}]', '[{"targets": ["x"], "extra": 1}]', "not json"):
            assert put_targets(port, bad) == 400, bad
        assert json.loads(targets.read_text()) == document, "a bad document changes nothing"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        assert subprocess.run(["pgrep", "-g", str(process.pid)], check=False).returncode == 1
    finally:
        if subprocess.run(["pgrep", "-g", str(process.pid)], check=False).returncode == 0:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    calls = sorted(log.read_text().splitlines())
    assert calls[0].startswith(f"grafana server --homepath {data_dir}/grafana-12.0.0")
    assert "--web.enable-remote-write-receiver" in calls[1]
    config = (data_dir / "prometheus" / "prometheus.yml").read_text()
    assert f"files: [\"{data_dir}/prometheus/ray_targets.json\"]" in config
    assert (data_dir / "grafana" / "dashboards" / "ray" / "default_grafana_dashboard.json").is_file()
    datasource = (data_dir / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    assert "url: http://localhost:9090" in datasource
