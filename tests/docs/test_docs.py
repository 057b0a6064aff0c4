"""The docs never drift from the code.

1. Each resource and data source page documents exactly its schema: every argument in
   "## Argument Reference" (with Required/Optional, Sensitive and "Forces replacement" as
   the schema says), every computed-only attribute in "## Attribute Reference", and the
   members of the `timeouts` and `autoscaling` blocks in "## Timeouts" and "## Autoscaling". The provider block's arguments are checked
   against docs/index.md the same way.
2. Every ```hcl block in docs/ passes `terraform validate`: each block is a complete
   configuration (the `required_providers` block is added when missing; a block calling
   `source = "./modules/raydog"` gets a copy of the module there). Blocks are validated
   together, each as a child module of one root (one init, one provider start); a block
   that can only be a root module (it has `import` blocks or variables without defaults)
   is validated on its own, and so is every block when the batch fails, to say which.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness.terraform import PROVIDER_BLOCK, REPO, Terraform
from raydog.provider import RaydogProvider
from tf import types
from tf.utils import Diagnostics

DOCS = REPO / "docs"
MODULE = REPO / "terraform" / "modules" / "raydog"
MODULE_SOURCE = "./modules/raydog"

# Pages with examples known not to validate, each with why; the test fails when such a page
# validates again, so the entry cannot outlive the fix.
KNOWN_BROKEN: dict[str, str] = {}

BULLET = re.compile(r"^- `([A-Za-z0-9_]+)` \(([^)]*)\)")


# --- schema <-> reference sections ----------------------------------------------------


def sections(markdown: str) -> dict[str, list[str]]:
    """`## Title` -> the lines under it (fenced code left out)."""
    found: dict[str, list[str]] = {}
    current = None
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        if line.startswith("## "):
            current = line[3:].strip()
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return found


def bullets(lines: list[str]) -> dict[str, str]:
    """`- `name` (flags) ...` bullets: name -> flags."""
    found = {}
    for line in lines:
        match = BULLET.match(line)
        if match:
            assert match.group(1) not in found, f"`{match.group(1)}` documented twice"
            found[match.group(1)] = match.group(2)
    return found


def type_name(type_) -> str:
    if isinstance(type_, types.Map):
        return f"Map of {type_name(type_.element_type)}"
    if isinstance(type_, types.Set):
        return f"Set of {type_name(type_.element_type)}"
    if isinstance(type_, types.List):
        return f"List of {type_name(type_.element_type)}"
    return {types.String: "String", types.Number: "Number", types.Bool: "Boolean"}[type(type_)]


def reference_problems(schema, page: Path) -> list[str]:
    """Every way ``page`` disagrees with ``schema``."""
    if not page.is_file():
        return [f"{page.relative_to(REPO)} is missing"]
    parts = sections(page.read_text())
    arguments = bullets(parts.get("Argument Reference", []))
    attributes = bullets(parts.get("Attribute Reference", []))
    problems = []

    schema_arguments = {a.name: a for a in schema.attributes if a.required or a.optional}
    schema_attributes = {a.name: a for a in schema.attributes if not (a.required or a.optional)}
    blocks = {b.type_name: b for b in schema.block_types}
    for name in sorted((set(schema_arguments) | set(blocks)) - set(arguments)):
        problems.append(f"argument `{name}` is not in the Argument Reference")
    for name in sorted(set(arguments) - set(schema_arguments) - set(blocks)):
        problems.append(f"the Argument Reference documents `{name}`, which is not an argument")
    for name in sorted(set(schema_attributes) - set(attributes)):
        problems.append(f"attribute `{name}` is not in the Attribute Reference")
    for name in sorted(set(attributes) - set(schema_attributes)):
        problems.append(f"the Attribute Reference documents `{name}`, which is not a computed attribute")

    for name, attribute in schema_arguments.items():
        if name not in arguments:
            continue
        flags = [f.strip() for f in arguments[name].split(",")]
        expected = {
            type_name(attribute.type): True,
            "Required": bool(attribute.required),
            "Optional": bool(attribute.optional),
            "Sensitive": bool(attribute.sensitive),
            "Forces replacement": bool(attribute.requires_replace),
        }
        for flag, wanted in expected.items():
            if (flag in flags) != wanted:
                problems.append(f"`{name}` should{'' if wanted else ' not'} say {flag!r} (it says: {', '.join(flags)})")
    for name, attribute in schema_attributes.items():
        if name in attributes and attributes[name] != type_name(attribute.type):
            problems.append(f"attribute `{name}` is a {type_name(attribute.type)}, not {attributes[name]}")

    for block_name in ("timeouts", "autoscaling"):
        title = block_name.capitalize()
        documented = bullets(parts.get(title, []))
        if block_name in blocks:
            members = {a.name for a in blocks[block_name].block.attributes}
            if set(documented) != members:
                problems.append(f"## {title} documents {sorted(documented)}; the block has {sorted(members)}")
        elif title in parts:
            problems.append(f"## {title} is documented but there is no {block_name} block")
    return problems


PROVIDER = RaydogProvider()
RESOURCES = {f"raydog_{cls.get_name()}": cls for cls in PROVIDER.get_resources()}
DATA_SOURCES = {f"raydog_{cls.get_name()}": cls for cls in PROVIDER.get_data_sources()}


@pytest.mark.parametrize("name", sorted(RESOURCES))
def test_resource_page_documents_its_schema(name):
    cls = RESOURCES[name]
    problems = reference_problems(cls.get_schema(), DOCS / "resources" / f"{cls.get_name()}.md")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(DATA_SOURCES))
def test_data_source_page_documents_its_schema(name):
    cls = DATA_SOURCES[name]
    problems = reference_problems(cls.get_schema(), DOCS / "data-sources" / f"{cls.get_name()}.md")
    assert not problems, "\n".join(problems)


def test_index_documents_the_provider_block():
    problems = reference_problems(PROVIDER.get_provider_schema(Diagnostics()), DOCS / "index.md")
    assert not problems, "\n".join(problems)


def test_every_doc_page_has_registry_front_matter():
    for page in [DOCS / "index.md", *sorted((DOCS / "resources").glob("*.md")),
                 *sorted((DOCS / "data-sources").glob("*.md")), *sorted((DOCS / "guides").glob("*.md"))]:
        text = page.read_text()
        assert re.match(r"---\npage_title: .+\n(?:.*\n)*?---\n", text), f"{page.relative_to(REPO)}: no front matter"


def test_reference_check_catches_drift(tmp_path):
    """The check itself: a page missing an argument, or documenting a ghost, fails."""
    page = tmp_path / "cluster.md"
    good = (DOCS / "resources" / "cluster.md").read_text()
    page.write_text(good.replace("- `tag` (String, Optional)", "- `flavour` (String, Optional)"))
    problems = reference_problems(RESOURCES["raydog_cluster"].get_schema(), page)
    assert any("`tag`" in p for p in problems) and any("`flavour`" in p for p in problems)
    page.write_text(good.replace("- `status` (String)", "- `status` (Number)"))
    assert reference_problems(RESOURCES["raydog_cluster"].get_schema(), page)


# --- hcl examples validate --------------------------------------------------------------


@dataclass
class Example:
    page: Path
    line: int
    text: str

    @property
    def label(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"

    @property
    def root_only(self) -> bool:
        """Can only be validated as a root module (not as a child of the batch)."""
        return bool(re.search(r"^\s*import\s*\{", self.text, re.MULTILINE)) or any(
            "default" not in body for body in variable_bodies(self.text)
        )


def variable_bodies(text: str) -> list[str]:
    bodies = []
    for match in re.finditer(r'^\s*variable\s+"[^"]+"\s*\{', text, re.MULTILINE):
        depth, index = 1, match.end()
        while depth and index < len(text):
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            index += 1
        bodies.append(text[match.end():index])
    return bodies


def hcl_examples() -> list[Example]:
    examples = []
    for page in sorted(DOCS.rglob("*.md")):
        lines = page.read_text().splitlines()
        index = 0
        while index < len(lines):
            opening = re.match(r"^(\s*)```(hcl|terraform)\s*$", lines[index])
            if opening:
                indent, start = len(opening.group(1)), index + 1
                index += 1
                while not lines[index].strip().startswith("```"):
                    index += 1
                body = "\n".join(line[indent:] for line in lines[start:index])
                examples.append(Example(page, start, textwrap.dedent(body) + "\n"))
            index += 1
    return examples


def write_example(example: Example, directory: Path) -> None:
    directory.mkdir(parents=True)
    text = example.text
    if "required_providers" not in text:
        text = PROVIDER_BLOCK + text
    (directory / "main.tf").write_text(text)
    if MODULE_SOURCE in text:
        shutil.copytree(MODULE, directory / MODULE_SOURCE, ignore=shutil.ignore_patterns(".terraform*", "tests"))


def validate(directory: Path, env: dict) -> str | None:
    """None when `terraform init` and `terraform validate` pass in ``directory``, else their output."""
    tf = Terraform(directory, env)
    init = tf.run("init", "-input=false", "-no-color", "-backend=false", check=False)
    if init.returncode != 0:
        return init.output
    result = tf.run("validate", "-no-color", check=False)
    return None if result.returncode == 0 else result.output


def test_docs_have_hcl_examples():
    pages = {e.page.relative_to(DOCS).as_posix() for e in hcl_examples()}
    for page in ["index.md", "resources/cluster.md", "resources/head.md", "resources/observability.md",
                 "resources/worker_pool.md", "data-sources/node_script.md",
                 "guides/migrating-from-raydog-builder.md"]:
        assert page in pages, f"docs/{page} has no ```hcl example"


def test_every_hcl_example_in_the_docs_validates(tmp_path, terraform_env):
    examples = hcl_examples()
    batch = [e for e in examples if not e.root_only and page_key(e) not in KNOWN_BROKEN]
    alone = [e for e in examples if e not in batch]

    root = tmp_path / "batch"
    root.mkdir()
    calls = []
    for number, example in enumerate(batch):
        write_example(example, root / f"example_{number}")
        calls.append(f'module "example_{number}" {{\n  source = "./example_{number}"\n}}\n')
    (root / "main.tf").write_text(PROVIDER_BLOCK + "\n".join(calls))
    if validate(root, terraform_env) is not None:
        alone = examples  # find out which

    def one(item: tuple[int, Example]) -> str | None:
        number, example = item
        directory = tmp_path / f"alone_{number}"
        write_example(example, directory)
        output = validate(directory, terraform_env)
        return None if output is None else f"{example.label}:\n{output}"

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, enumerate(alone)))
    failures = [f for f, e in zip(results, alone) if f and page_key(e) not in KNOWN_BROKEN]
    assert not failures, "hcl examples that do not validate:\n\n" + "\n\n".join(failures)
    broken = {page_key(e) for f, e in zip(results, alone) if f}
    assert set(KNOWN_BROKEN) <= broken, f"these validate now; remove them from KNOWN_BROKEN: {set(KNOWN_BROKEN) - broken}"


def page_key(example: Example) -> str:
    return example.page.relative_to(DOCS).as_posix()


def test_validation_catches_a_broken_example(tmp_path, terraform_env):
    """The check itself: an example missing a required argument does not pass."""
    broken = Example(DOCS / "index.md", 1, 'resource "raydog_cluster" "this" {\n  name = "x"\n}\n')
    write_example(broken, tmp_path / "broken")
    output = validate(tmp_path / "broken", terraform_env)
    assert output is not None and "namespace" in output
