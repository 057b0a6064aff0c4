"""The hostile-input catalogue's machinery: HCL builders, cases, and running a table of
cases through real Terraform (tests/provider/test_hostile_input.py holds the cases)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness.config import Expr, literal
from harness.terraform import PROVIDER_BLOCK, Terraform

WR_ID = "ydid:workreq:000000:11111111-2222-3333-4444-555555555555"
CLUSTER = {"name": "demo", "namespace": "tests"}
POOL = {
    "cluster_id": WR_ID,
    "cluster_name": "demo",
    "name": "cpu",
    "compute_requirement_template_id": "sandbox/ray-worker",
    "head_private_ip": "10.0.0.1",
    "node_count": 1,
}
HEAD = {"cluster_id": WR_ID, "cluster_name": "demo", "compute_requirement_template_id": "sandbox/ray-head"}
OBSERVABILITY = {**HEAD, "compute_requirement_template_id": "sandbox/ray-observability"}
LABEL = "__LABEL__"  # stands for the case's block label in a case's HCL
NAME_RULE = "must start with a lowercase letter, end with a letter or digit"


# ---------------------------------------------------------------------------------------
# HCL builders: a case is written as Python values so that the table stays readable.




def block(kind: str, type_: str, attrs: dict, label: str = LABEL) -> str:
    """One block; ``None`` leaves an attribute out, a "timeouts" or "autoscaling" dict becomes a nested block."""
    lines = [f'{kind} "{type_}" "{label}" {{']
    for key, value in attrs.items():
        if value is None:
            continue
        if key in ("timeouts", "autoscaling"):
            lines += [f"  {key} {{", *(f"    {k} = {literal(v)}" for k, v in value.items()), "  }"]
        else:
            lines.append(f"  {key} = {literal(value)}")
    return "\n".join([*lines, "}", ""])


def cluster(**attrs) -> str:
    return block("resource", "raydog_cluster", {**CLUSTER, **attrs})


def pool(**attrs) -> str:
    return block("resource", "raydog_worker_pool", {**POOL, **attrs})


def head(**attrs) -> str:
    return block("resource", "raydog_head", {**HEAD, **attrs})


def observability(**attrs) -> str:
    return block("resource", "raydog_observability", {**OBSERVABILITY, **attrs})


def script(**attrs) -> str:
    return block("data", "raydog_node_script", attrs)


def aliased_provider(**attrs) -> str:
    """A provider configuration of its own (alias = the case label) and a resource that uses it."""
    body = "".join(f"  {k} = {literal(v)}\n" for k, v in attrs.items())
    return (
        f'provider "raydog" {{\n  alias = "{LABEL}"\n{body}}}\n'
        + block("resource", "raydog_cluster", {"provider": Expr(f"raydog.{LABEL}"), **CLUSTER})
    )



# ---------------------------------------------------------------------------------------
# Cases


@dataclass(frozen=True)
class Case:
    """An invalid configuration and what Terraform must say about it.

    ``attribute`` is the attribute, nested attribute or map key whose line the diagnostic
    points at (None: the block itself), in the case's first block or in the block of type
    ``block``; ``message`` is part of its summary or detail.
    """

    id: str
    hcl: str
    attribute: str | None
    message: str
    severity: str = "error"
    block: str | None = None

    @property
    def label(self) -> str:
        return self.id.replace("-", "_")


# ---------------------------------------------------------------------------------------
# Running a table through Terraform


@dataclass
class Diagnostic:
    severity: str
    summary: str
    detail: str
    line: int | None

    @property
    def text(self) -> str:
        return " ".join(f"{self.summary} {self.detail}".split())


@dataclass
class TableRun:
    """main.tf of a table, where each case's block sits, and what Terraform said."""

    text: str
    spans: dict[str, tuple[int, int]]
    validate: dict = field(default_factory=dict)
    plan: list[Diagnostic] = field(default_factory=list)
    plan_output: str = ""
    requests: dict = field(default_factory=dict)
    apply: list[Diagnostic] = field(default_factory=list)
    apply_output: str = ""

    def caught(self, case: Case) -> tuple[str, list[Diagnostic]]:
        """Where the case's diagnostic first appeared (validate, plan or apply), and the diagnostics there."""
        for phase, found in (("validate", self.diagnostics(case)), ("plan", self.plan_diagnostics(case)),
                             ("apply", self.apply_diagnostics(case))):
            if any(d.severity == case.severity for d in found):
                return phase, found
        return "not caught", []

    def apply_diagnostics(self, case: Case) -> list[Diagnostic]:
        first, last = self.spans[case.id]
        return [d for d in self.apply if d.line is not None and first <= d.line <= last]

    def diagnostics(self, case: Case) -> list[Diagnostic]:
        first, last = self.spans[case.id]
        found = [
            Diagnostic(d["severity"], d["summary"], d.get("detail", ""), _line(d))
            for d in self.validate.get("diagnostics", [])
        ]
        return [d for d in found if d.line is not None and first <= d.line <= last]

    def plan_diagnostics(self, case: Case) -> list[Diagnostic]:
        first, last = self.spans[case.id]
        return [d for d in self.plan if d.line is not None and first <= d.line <= last]

    def expected_line(self, case: Case) -> int:
        """The line of ``case.attribute`` in the case's block (the block's header when None)."""
        first, last = self.spans[case.id]
        lines = self.text.splitlines()
        header = re.compile(r'^(resource|data|provider) "')
        headers = [n for n in range(first, last + 1) if header.match(lines[n - 1])]
        if case.block is not None:
            headers = [n for n in headers if f'"{case.block}"' in lines[n - 1]]
        start = headers[0]
        if case.attribute is None:
            return start
        pattern = re.compile(rf'^\s*"?{re.escape(case.attribute)}"?\s*=')
        for number in range(start, last + 1):
            if pattern.match(lines[number - 1]):
                return number
            if number > start and lines[number - 1] == "}":
                break
        raise AssertionError(f"{case.id}: no line for {case.attribute!r} in its block")


def _line(diagnostic: dict) -> int | None:
    return diagnostic.get("range", {}).get("start", {}).get("line")


def table_text(cases: list[Case]) -> tuple[str, dict[str, tuple[int, int]]]:
    """One main.tf body holding every case's blocks, and each case's (first, last) line."""
    text = PROVIDER_BLOCK + 'provider "raydog" {}\n'
    spans = {}
    for case in cases:
        body = case.hcl.replace(LABEL, case.label)
        first = text.count("\n") + 2  # after the blank line below
        text += "\n" + body
        spans[case.id] = (first, text.count("\n"))
    return text, spans


PLAN_DIAGNOSTIC = re.compile(
    r"^(Error|Warning): (?P<summary>.*)\n\n(?:  with .*\n)?  on main\.tf line (?P<line>\d+)"
    r"(?:, in [^\n]*)?:\n(?:  *\d+:.*\n|  *[│├].*\n|.*\n)*?\n(?P<detail>(?:.+\n)*)",
    re.MULTILINE,
)


def parse_plan_output(output: str) -> list[Diagnostic]:
    return [
        Diagnostic(m.group(1).lower(), m.group("summary"), m.group("detail"), int(m.group("line")))
        for m in PLAN_DIAGNOSTIC.finditer(output)
    ]


class Workdir:
    """One initialised Terraform working directory whose main.tf each run rewrites."""

    def __init__(self, terraform: Terraform, sandbox) -> None:
        self.terraform = terraform
        self.sandbox = sandbox

    def run_table(self, cases: list[Case], *, validate: bool = True, plan: bool = True,
                  apply: bool = False) -> TableRun:
        """Validate, plan and (``apply``) apply then destroy the cases; requests counted up to the failure."""
        text, spans = table_text(cases)
        self.terraform.write(text, provider_block=False)
        run = TableRun(text, spans)
        self.sandbox.reset_requests()
        if validate:
            run.validate = self.terraform.run("validate", "-json", "-no-color", check=False).json()
        if plan:
            result = self.terraform.plan_exitcode()
            run.plan_output = result.output
            run.plan = parse_plan_output(result.output)
        if apply:
            result = self.terraform.apply(check=False)
            run.apply_output = result.output
            run.apply = parse_plan_output(result.output)
        run.requests = self.sandbox.requests()
        if apply:  # what the cases created goes; their configuration no longer validates, so it goes first
            self.terraform.write(PROVIDER_BLOCK + 'provider "raydog" {}\n', provider_block=False)
            self.terraform.destroy()
        return run


def check_case(run: TableRun, case: Case, diagnostics: list[Diagnostic], where: str) -> None:
    """The case produced exactly one diagnostic, of its severity, on its attribute's line."""
    expected = run.expected_line(case)
    problems = [d for d in diagnostics if d.severity == "error" or d.severity == case.severity]
    assert len(problems) == 1, f"{case.id} ({where}): expected one {case.severity}, got {problems}"
    (found,) = problems
    assert found.severity == case.severity, f"{case.id} ({where}): {found}"
    assert case.message in found.text, f"{case.id} ({where}): {case.message!r} not in {found.text!r}"
    assert found.line == expected, (
        f"{case.id} ({where}): points at line {found.line}, expected {expected} "
        f"({run.text.splitlines()[expected - 1].strip()!r})"
    )




@dataclass(frozen=True)
class Record:
    """One line of the catalogue's report: where a case was caught and the requests its run made."""

    case: str
    caught: str
    requests: int  # every API request the sandbox saw during the case's run (its table's run)
    beyond_credential_check: int  # the same, less configure's one credential check and plan's template reads
    changing: int  # requests that could change anything on the platform (not GET)

    @classmethod
    def of(cls, case: str, caught: str, requests: dict) -> Record:
        routes = requests.get("routes", {})
        check = min(routes.get(CREDENTIAL_CHECK, 0), 1)
        template_reads = sum(count for route, count in routes.items() if is_template_read(route))
        changing = sum(count for route, count in routes.items() if not route.startswith("GET "))
        return cls(case, caught, requests["total"], requests["total"] - check - template_reads, changing)


CREDENTIAL_CHECK = "GET /work/requirements"


def is_template_read(route: str) -> bool:
    """The plan's read of a compute requirement template (one per distinct template, cached)."""
    return route.startswith("GET /compute/") and "/templates/" in route


def summary(records: list[Record]) -> dict:
    """The figures the reliability guide quotes."""
    before_apply = [r for r in records if r.caught in ("validate", "plan")]
    return {
        "cases": len(records),
        "by_phase": {phase: sum(r.caught == phase for r in records) for phase in ("validate", "plan", "apply")},
        "zero_requests": sum(r.requests == 0 for r in records),
        "caught_before_apply": len(before_apply),
        "caught_before_apply_with_no_request_beyond_the_credential_check_and_template_reads": sum(
            r.beyond_credential_check == 0 for r in before_apply),
        "caught_before_apply_with_no_state_changing_request": sum(r.changing == 0 for r in before_apply),
    }
