"""The standard note templates (统一备注模板, N2) that administrators edit: a name, the
note kind they preset, a prompt per section, which sections a note made from them
must fill in, and whether they are offered at all.

Every change is flushed with its audit line into the caller's transaction; the
caller commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from extensions import db
from models import SECTIONS, NoteKind, NoteTemplate, User
from services import audit
from services.errors import DomainError, refused_if_taken

NAME_MAX = 50
PROMPT_MAX = 200


@dataclass
class TemplateData:
    name: str
    kind: str = NoteKind.CALL.value
    prompts: dict[str, str] = field(default_factory=dict)
    required_sections: list[str] = field(default_factory=list)
    active: bool = True


def list_templates() -> list[NoteTemplate]:
    """Every template, active ones first, in display order."""
    return list(db.session.scalars(
        select(NoteTemplate).order_by(NoteTemplate.active.desc(), NoteTemplate.position, NoteTemplate.name)
    ))


def get(template_id: int) -> NoteTemplate | None:
    return db.session.get(NoteTemplate, template_id)


def _clean(data: TemplateData, *, exclude_id: int | None = None) -> TemplateData:
    """The data trimmed and checked. Raises DomainError(field) for an empty, too long
    or taken name, an unknown kind or section, or a too long prompt."""
    name = (data.name or "").strip()
    if not name:
        raise DomainError(_l("Give the template a name."), "name")
    if len(name) > NAME_MAX:
        raise DomainError(_l("At most %(max)d characters.", max=NAME_MAX), "name")
    taken = select(NoteTemplate.id).where(func.lower(NoteTemplate.name) == name.lower())
    if exclude_id is not None:
        taken = taken.where(NoteTemplate.id != exclude_id)
    if db.session.scalar(taken.limit(1)) is not None:
        raise DomainError(_l("Another template has this name."), "name")
    if data.kind not in {kind.value for kind in NoteKind}:
        raise DomainError(_l("Choose a kind of note."), "kind")
    prompts = {}
    for section in SECTIONS:
        prompt = str((data.prompts or {}).get(section) or "").strip()
        if len(prompt) > PROMPT_MAX:
            raise DomainError(_l("At most %(max)d characters.", max=PROMPT_MAX), f"prompt_{section}")
        prompts[section] = prompt
    required = [section for section in SECTIONS if section in (data.required_sections or [])]
    if set(data.required_sections or []) - set(SECTIONS):
        raise DomainError(_l("Unknown section."), "required_sections")
    return TemplateData(name, data.kind, prompts, required, bool(data.active))


def _apply(template: NoteTemplate, data: TemplateData) -> None:
    template.name, template.kind, template.active = data.name, data.kind, data.active
    template.prompts = data.prompts
    template.required_sections = data.required_sections


def _name_taken_meanwhile():
    """The same name saved by someone else in the meantime: a refusal."""
    return refused_if_taken(_l("Another template has this name."))


def create_template(actor: User, data: TemplateData, *, ip: str | None = None) -> NoteTemplate:
    """Add a template at the end of the list. Raises DomainError(field) for bad
    input (see :func:`_clean`)."""
    data = _clean(data)
    position = (db.session.scalar(select(func.max(NoteTemplate.position))) or 0) + 1
    template = NoteTemplate(position=position)
    _apply(template, data)
    with _name_taken_meanwhile():
        db.session.add(template)
    audit.record("note_template.create", actor, ip=ip, target=template, name=template.name)
    db.session.flush()
    return template


def update_template(actor: User, template: NoteTemplate, data: TemplateData, *, ip: str | None = None) -> None:
    """Save changes to a template; notes made from it keep their text. Raises
    DomainError(field) for bad input (see :func:`_clean`)."""
    data = _clean(data, exclude_id=template.id)
    with _name_taken_meanwhile():
        _apply(template, data)
    audit.record("note_template.update", actor, ip=ip, target=template, name=template.name,
                 active=template.active)
    db.session.flush()
