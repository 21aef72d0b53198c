"""Prompt versions: files in prompts/ synced into PromptVersion by content hash.

A file is `vN.toml` (keys: system, user, optional name and description) or `vN.txt` (the whole text
is the system prompt; the user message is DEFAULT_USER). The original scripts' prompt files (Python
source with SYSTEM_PROMPT and USER_PROMPT_TEMPLATE) are imported as they are by `import_original`. The hash covers name, system and user
text, so an edited file becomes a new version and the old one stays exactly as it was: verdicts
made under it keep pointing at the text that produced them. Nothing here ever updates a row.
"""
import ast
import hashlib
import json
import re
import string
import tomllib
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from vlm.models import PromptVersion

DEFAULT_USER = (
    "Judge this photo for the dataset. Answer with JSON only: "
    '{"decision": "keep" or "reject", "score": 0 to 1, "reason": "...", "tags": ["..."]}'
)


class PromptError(ValueError):
    pass


@dataclass
class PromptFile:
    name: str
    system: str
    user: str
    path: Path

    @property
    def content_hash(self):
        blob = json.dumps({"name": self.name, "system": self.system, "user": self.user}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def prompts_dir():
    return Path(settings.SCENEIMG_VLM_PROMPTS_DIR or Path(settings.BASE_DIR) / "prompts")


def read_prompt_file(path):
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PromptError(f"{path}: not valid TOML: {exc}") from None
        system, user = data.get("system"), data.get("user", DEFAULT_USER)
        if not isinstance(system, str) or not system.strip():
            raise PromptError(f"{path}: needs a non-empty `system` string")
        if not isinstance(user, str) or not user.strip():
            raise PromptError(f"{path}: `user` must be a non-empty string")
        name = data.get("name") or path.stem
    else:
        system, user, name = text, DEFAULT_USER, path.stem
        if not system.strip():
            raise PromptError(f"{path}: empty prompt")
    return PromptFile(name=str(name).strip(), system=system.strip(), user=user.strip(), path=path)


def prompt_files(directory=None):
    directory = Path(directory or prompts_dir())
    if not directory.is_dir():
        raise PromptError(f"prompt folder {directory} does not exist (setting SCENEIMG_VLM_PROMPTS_DIR)")
    files = [p for p in directory.iterdir() if p.suffix in (".toml", ".txt") and p.is_file()]
    return sorted(files, key=lambda p: natural_key(p.stem))


def sync_prompts(directory=None):
    """Load every prompt file; return (created, unchanged) lists of PromptVersion."""
    parsed = [read_prompt_file(p) for p in prompt_files(directory)]
    names = [p.name for p in parsed]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise PromptError(f"two prompt files claim the same name: {', '.join(sorted(dupes))}")
    known = PromptVersion.objects.in_bulk([p.content_hash for p in parsed], field_name="content_hash")
    created, unchanged = [], []
    base = Path(settings.BASE_DIR)
    for p in parsed:
        if p.content_hash in known:
            unchanged.append(known[p.content_hash])
            continue
        source = str(p.path.relative_to(base)) if p.path.is_relative_to(base) else str(p.path)
        version, was_created = PromptVersion.objects.get_or_create(
            content_hash=p.content_hash,
            defaults={"name": p.name, "system_text": p.system, "user_template": p.user, "source_file": source},
        )
        (created if was_created else unchanged).append(version)
    return created, unchanged


ORIGINAL_NAMES = ("SYSTEM_PROMPT", "USER_PROMPT_TEMPLATE")


def read_original_prompt(path, name=None):
    """A PromptFile from one of the original scripts' prompt files (prompt/filter_vlm_vN.txt, or
    filter_vlm.py itself): Python source whose SYSTEM_PROMPT and USER_PROMPT_TEMPLATE are string
    literals. Parsed with `ast`, never run. The name defaults to `original-vN` (or `original-<stem>`),
    which never takes the place of a prompts/ file's version."""
    path = Path(path)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(f"{path}: cannot read it: {exc}") from None
    except SyntaxError as exc:
        raise PromptError(f"{path}: not Python source (line {exc.lineno}: {exc.msg})") from None
    found = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Name) and target.id in ORIGINAL_NAMES and node.value is not None:
                try:
                    value = ast.literal_eval(node.value)
                except ValueError:
                    raise PromptError(f"{path}: {target.id} is not a plain string literal") from None
                if not isinstance(value, str) or not value.strip():
                    raise PromptError(f"{path}: {target.id} must be a non-empty string")
                found[target.id] = value
    missing = [n for n in ORIGINAL_NAMES if n not in found]
    if missing:
        raise PromptError(f"{path}: no {' or '.join(missing)} string at the top level")
    if not name:
        version = re.search(r"v\d+$", path.stem)
        name = f"original-{version.group(0) if version else path.stem}"
    # Stripped as the original stripped them before sending.
    return PromptFile(name=name, system=found["SYSTEM_PROMPT"].strip(), user=found["USER_PROMPT_TEMPLATE"].strip(),
                      path=path)


def import_original(path, name=None):
    """(PromptVersion, created) for an original prompt file; the same text under the same name is the
    version already there."""
    p = read_original_prompt(path, name)
    version, created = PromptVersion.objects.get_or_create(
        content_hash=p.content_hash,
        defaults={"name": p.name, "system_text": p.system, "user_template": p.user, "source_file": str(p.path)},
    )
    return version, created


def natural_key(name):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def latest_version(name):
    """The newest PromptVersion called `name` (its file's current text once synced)."""
    version = PromptVersion.objects.filter(name=name).order_by("-id").first()
    if version is None:
        known = sorted(set(PromptVersion.objects.values_list("name", flat=True)), key=natural_key)
        raise PromptError(
            f"no prompt version named {name!r}; known: {', '.join(known) or 'none'} "
            f"(run `python manage.py sync_prompts` after adding a file to prompts/)"
        )
    return version


def active_version():
    """The version whose verdicts drive Image.auto_decision: setting SCENEIMG_VLM_PROMPT, else the newest name."""
    name = settings.SCENEIMG_VLM_PROMPT
    if not name:
        names = set(PromptVersion.objects.values_list("name", flat=True))
        if not names:
            return None
        name = max(names, key=natural_key)
    return PromptVersion.objects.filter(name=name).order_by("-id").first()


def render_user(version, *, width=None, height=None):
    """The user message; a template may mention $width and $height of the stored image."""
    return string.Template(version.user_template).safe_substitute(width=width or "", height=height or "")
